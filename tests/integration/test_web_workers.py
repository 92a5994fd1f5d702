"""The web widget's socket.io against a real Rasa server with two Sanic workers.

Engine.io keeps a socket's HTTP long-polling state in the memory of the worker that accepted its
handshake; the workers share one port, so the polling requests of one socket land on either. With
worker routing (:mod:`connectors.worker_routing`) every sid names its worker and a request reaching
the other worker is handed to the owner, so each session gets its bot reply whatever transport the
client uses: long-polling only, or rasa-webchat's default (long-polling, then the websocket upgrade).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import pytest
import socketio

from bot import launcher
from connectors import worker_routing

from .conftest import RunningStack, new_sender

pytestmark = pytest.mark.integration

SESSIONS = 10
WAIT_S = 60.0
"""Longest wait for an event that must come (a failure guard, not a timing assertion)."""


@pytest.fixture(autouse=True)
def websocket_client_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-engineio's client passes ``aiohttp.ClientWSTimeout`` (aiohttp 3.10+); Rasa 3.6's aiohttp takes a number."""
    if not hasattr(aiohttp, "ClientWSTimeout"):
        monkeypatch.setattr(aiohttp, "ClientWSTimeout", lambda ws_receive=None, ws_close=None: float(ws_close or 10.0), raising=False)


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """A trained model: the one for the current data, else the newest one (the transport does not
    depend on what the model learned, only on the bot answering)."""
    current = launcher.model_path()
    if current.exists():
        return current
    found = sorted(launcher.MODEL_DIR.glob("shop-*.tar.gz"), key=lambda path: path.stat().st_mtime)
    if not found:
        pytest.fail(f"no trained model: run `make train` first ({current.name})")
    return found[-1]


async def one_session(url: str, token: str, transports: Optional[List[str]]) -> Tuple[str, str, List[Dict[str, Any]]]:
    """Connect, open a session for a signed customer, say hello; the engine.io sid, the transport
    the socket ended on and the ``bot_uttered`` payloads of the turn."""
    # a TCP connection per HTTP request, as behind a load balancer: the kernel gives each to either worker
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    client = socketio.AsyncClient(reconnection=False, http_session=http)
    events: asyncio.Queue[Tuple[str, Any]] = asyncio.Queue()

    @client.on("*")
    async def record(event: str, *args: Any) -> None:
        events.put_nowait((event, args[0] if len(args) == 1 else list(args)))

    async def next_event(*names: str) -> Tuple[str, Any]:
        while True:
            event = await asyncio.wait_for(events.get(), WAIT_S)
            if event[0] in names:
                return event

    await client.connect(url, transports=transports, wait_timeout=WAIT_S)
    try:
        session_id = new_sender("web")
        await client.emit("session_request", {"session_id": session_id, "customData": {"identity_token": token}})
        confirmed = await next_event("session_confirm", "error")
        assert confirmed[0] == "session_confirm", confirmed
        await client.emit("user_uttered", {"message": "你好", "session_id": session_id, "customData": {"identity_token": token}})
        replies = []
        while True:
            name, data = await next_event("bot_uttered", "turn_done")
            if name == "turn_done":
                break
            replies.append(data)
        return client.eio.sid, client.transport(), replies
    finally:
        await client.disconnect()
        await http.close()


async def sessions(url: str, token: str, transports: Optional[List[str]]) -> List[Tuple[str, str, List[Dict[str, Any]]]]:
    return list(await asyncio.gather(*(one_session(url, token, transports) for _ in range(SESSIONS))))


def handoff_counts(log: str) -> Dict[str, Tuple[int, int]]:
    """Per worker, the connections it handed over and adopted, from the lines it logs when it stops."""
    found = re.findall(r"web\.worker_routing\.stopped worker=(\S+) handed_off=(\d+) adopted=(\d+)", log)
    return {worker: (int(handed), int(adopted)) for worker, handed, adopted in found}


def test_every_session_gets_its_bot_reply_with_two_workers(running_stack: RunningStack) -> None:
    assert running_stack.settings.rasa_workers == 2
    url = f"http://127.0.0.1:{running_stack.settings.rasa_port}"
    for transports in (["polling"], None):  # long-polling only; rasa-webchat's default: polling, then the websocket upgrade
        results = asyncio.run(sessions(url, running_stack.identity_token("C000001"), transports))
        for sid, _, replies in results:  # a standard client: Rasa's format, the sender under metadata
            assert replies and all(reply["metadata"]["from"] == "bot" and reply.get("text") for reply in replies), (transports, sid, replies)
            assert worker_routing.parse_sid(sid) is not None, sid
        if transports is None:
            assert {transport for _, transport, _ in results} == {"websocket"}
    log_path = running_stack.child("rasa").log_path
    assert log_path is not None
    seen = log_path.stat().st_size
    with running_stack.stopped("rasa"):  # each worker logs what it handed over and adopted as it stops
        with open(log_path, "rb") as log:
            log.seek(seen)
            counts = handoff_counts(log.read().decode(errors="replace"))
    assert len(counts) == 2, counts
    handed, adopted = (sum(count[i] for count in counts.values()) for i in (0, 1))
    assert handed == adopted and handed > 0, counts  # requests did reach the other worker, and were served by the owner
