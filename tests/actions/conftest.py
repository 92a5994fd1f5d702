"""The reference CRM as a real HTTP service on a seeded SQLite file, for action tests."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from rasa_sdk import Tracker

from actions.crm import CRMClient, RetryPolicy, set_crm_client
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT

from .seeded_crm import seeded_crm

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "trackers"


@pytest.fixture(scope="session")
def crm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a freshly seeded reference CRM shared by the tests that only read."""
    with seeded_crm(tmp_path_factory.mktemp("crm")) as url:
        yield url


@pytest.fixture()
def crm(crm_url: str) -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at the test CRM."""
    yield from use_crm(crm_url)


@pytest.fixture(scope="module")
def own_crm_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CRM of the test module's own, for tests that change data (redeem, cancel, create returns)."""
    with seeded_crm(tmp_path_factory.mktemp(f"{request.module.__name__.rsplit('.', 1)[-1]}-crm")) as url:
        yield url


@pytest.fixture()
def own_crm(own_crm_url: str) -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at the module's own CRM."""
    yield from use_crm(own_crm_url)


@pytest.fixture()
def dead_crm() -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at a port where nothing listens (fails fast)."""
    client = unreachable_crm_client()
    set_crm_client(client)
    yield client
    set_crm_client(None)


def use_crm(url: str) -> Iterator[CRMClient]:
    """Point the actions' shared CRM client at ``url`` for one test."""
    client = CRMClient(url, "dev-crm-key", timeout_s=2.0)
    set_crm_client(client)
    yield client
    set_crm_client(None)


def unreachable_crm_client() -> CRMClient:
    """A CRM client to a port where nothing listens, with one quick retry: a CRM that is down."""
    return CRMClient(f"http://127.0.0.1:{free_port()}", "dev-crm-key", timeout_s=0.5, retry=RetryPolicy(retries=1, backoff_s=0.01))


def load_tracker(name: str, **changes: Any) -> Tracker:
    """A tracker from a JSON fixture, with ``latest_message`` / ``slots`` keys overridden."""
    state: Dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(state.get(key), dict):
            state[key] = {**state[key], **value}
        else:
            state[key] = value
    return Tracker.from_dict(state)


def run_action(action: Any, tracker: Tracker):
    """Run an action the way rasa-sdk does; returns (events, messages)."""
    from rasa_sdk.executor import CollectingDispatcher

    async def go():
        dispatcher = CollectingDispatcher()
        try:
            events = await action.run(dispatcher, tracker, {})
        finally:
            from actions.crm import get_crm_client

            await get_crm_client().close()
        return events, dispatcher.messages

    return asyncio.run(go())


def fetch(client_url: str, path: str) -> Any:
    """GET a CRM resource synchronously."""
    import urllib.request

    request = urllib.request.Request(f"{client_url}{path}", headers={"X-API-Key": "dev-crm-key"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


__all__ = ["Path", "fetch", "load_tracker", "run_action"]
