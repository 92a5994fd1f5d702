"""The reference CRM as a real HTTP service on a seeded SQLite file, for action tests."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from rasa_sdk import Tracker

from actions.crm import CRMClient, set_crm_client
from bot.launcher import wait_healthy
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "trackers"


@pytest.fixture(scope="session")
def crm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a freshly seeded reference CRM."""
    var_dir = tmp_path_factory.mktemp("crm")
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "VAR_DIR": str(var_dir),
           "DATABASE_URL": f"sqlite:///{var_dir / 'crm.sqlite3'}"}
    subprocess.run([sys.executable, "-m", "crm", "seed"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "crm", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health", process, "crm", 60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture()
def crm(crm_url: str) -> Iterator[CRMClient]:
    """The actions' shared CRM client pointed at the test CRM."""
    client = CRMClient(crm_url, "dev-crm-key", timeout_s=2.0)
    set_crm_client(client)
    yield client
    set_crm_client(None)


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
