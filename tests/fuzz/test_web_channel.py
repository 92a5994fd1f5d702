"""Fuzz: the web channel answers any event, payload and raw socket.io packet without an exception;
every refusal is an ``error`` or a ``bot_uttered`` with a known code; every accepted message reaches
the bot (or the agent's transcript) exactly once; the server goes on serving new clients."""

from __future__ import annotations

from typing import List

from hypothesis import given

from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.web import Event, WebChannelUnderFuzz, sessions


@fuzz_settings(0.4)  # a session takes about half a second
@given(sessions())
def test_socket_sessions(web_channel: WebChannelUnderFuzz, steps: List[Event]) -> None:
    assert web_channel.session(steps) == []
