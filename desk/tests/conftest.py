"""Fixtures of the desk's tests: a real redis-server and desk processes on free ports."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List

import pytest

from tests.support.desk import DeskProcess, desk_process
from tests.support.redis import redis_server, redis_url  # noqa: F401  (fixtures)


@pytest.fixture()
def start_desk(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., DeskProcess]]:  # noqa: F811
    """Start desks over the test Redis; every desk started is stopped after the test."""
    started: List[DeskProcess] = []

    def start(name: str = "desk", agents=("agent1", "agent2"), desk_env=None, **policy_changes) -> DeskProcess:
        desk = desk_process(tmp_path / name, redis_url, agents, desk_env, **policy_changes).start()
        started.append(desk)
        return desk

    yield start
    for desk in started:
        desk.stop()
