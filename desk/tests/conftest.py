"""Fixtures of the desk's tests: a real redis-server and desk processes on free ports."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from bot.redis_server import RedisServer, free_port
from tests.support.desk import DeskProcess, desk_process
from tests.support.handoff import sync_client


@pytest.fixture(scope="session")
def desk_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server with append-only persistence for the desk's tests."""
    server = RedisServer(free_port(), Path(tmp_path_factory.mktemp("desk-redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(desk_redis: RedisServer) -> Iterator[str]:
    """The test Redis, emptied after each test."""
    yield desk_redis.url
    client = sync_client(desk_redis.url)
    client.flushdb()
    client.close()


@pytest.fixture()
def start_desk(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., DeskProcess]]:
    """Start desks over the test Redis; every desk started is stopped after the test."""
    started: List[DeskProcess] = []

    def start(name: str = "desk", agents=("agent1", "agent2"), desk_env=None, **policy_changes) -> DeskProcess:
        desk = desk_process(tmp_path / name, redis_url, agents, desk_env, **policy_changes).start()
        started.append(desk)
        return desk

    yield start
    for desk in started:
        desk.stop()
