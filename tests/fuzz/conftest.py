"""Fixtures of the fuzz tests: the servers under fuzz, started once per module over the session's Redis."""

from __future__ import annotations

from typing import Iterator

import pytest

from bot.redis_server import RedisServer
from tests.fuzz.channels import AppChannelUnderFuzz
from tests.fuzz.web import WebChannelUnderFuzz


@pytest.fixture(scope="module")
def app_channel(redis_server: RedisServer) -> Iterator[AppChannelUnderFuzz]:
    """The app channel on a real Sanic server over the session's Redis, a stub in place of Rasa."""
    with AppChannelUnderFuzz(redis_server.url) as channel:
        yield channel


@pytest.fixture(scope="module")
def web_channel(redis_server: RedisServer) -> Iterator[WebChannelUnderFuzz]:
    """The web channel (socket.io) on a real Sanic server over the session's Redis, a stub in place of Rasa."""
    with WebChannelUnderFuzz(redis_server.url) as channel:
        yield channel
