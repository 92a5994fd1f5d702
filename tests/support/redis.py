"""A real redis-server of the test session's own, emptied after each test (pytest fixtures: import
them into a conftest; each conftest that does gets its own server)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import redis

from bot.redis_server import RedisServer, free_port


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server on a free port, with append-only persistence."""
    server = RedisServer(free_port(), Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """URL of the session's Redis, with the database flushed after each test."""
    yield redis_server.url
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
