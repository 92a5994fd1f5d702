"""The desk's doors: login throttling that a stranger cannot turn against an agent, roles, and
websockets that end with their session. Against real desk processes and a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlparse

import pytest
from websockets.client import connect as ws_connect

from handoff import keys, queue
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.http import http
from tests.support.waiting import wait_for

StartDesk = Callable[..., DeskProcess]
WRONG = {"username": "agent1", "password": "not-the-password"}


def post_from(desk: DeskProcess, path: str, body: Any, source: str = "127.0.0.1", headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    """A POST from a chosen loopback source address (the desk sees it as the client address)."""
    url = urlparse(desk.url)
    connection = HTTPConnection(url.hostname, url.port, timeout=15, source_address=(source, 0))
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        connection.close()


def in_parallel(calls: List[Callable[[], Tuple[int, Any]]]) -> List[int]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [status for status, _ in pool.map(lambda call: call(), calls)]


def enqueue(desk: DeskProcess, sender: str) -> str:
    req = request(sender)
    created, handoff_id = run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    assert created
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(handoff_id), "status") == "queued")
    return handoff_id


def test_parallel_wrong_passwords_are_checked_at_most_the_limit_and_do_not_lock_the_agent_out(start_desk: StartDesk):
    desk = start_desk()
    statuses = in_parallel([lambda: http("POST", f"{desk.url}/api/login", WRONG)] * 40)
    assert len(statuses) == 40 and set(statuses) <= {401, 429}
    assert statuses.count(401) <= 5  # only a 401 had its password checked; the rest were refused before the hash
    assert statuses.count(429) >= 35
    client = sync_client(desk.redis_url)
    assert client.get(keys.login_attempts("agent1", "127.0.0.1")) == "5"

    status, body = http("POST", f"{desk.url}/api/login", {"username": "agent1", "password": "agent1-pass"})
    assert (status, body["error"]["code"]) == (429, "too_many_attempts") and body["error"]["retry_after_s"] > 0
    status, body = post_from(desk, "/api/login", {"username": "agent1", "password": "agent1-pass"}, source="127.0.0.2")
    assert status == 200 and body["agent"]["username"] == "agent1"  # the real agent, from their own address
    assert client.get(keys.login_attempts("agent1", "127.0.0.2")) is None  # a success clears its own counter


def test_a_spoofed_forwarded_for_header_is_ignored_without_a_trusted_proxy(start_desk: StartDesk):
    desk = start_desk()
    calls = [lambda n=n: post_from(desk, "/api/login", WRONG, headers={"X-Forwarded-For": f"198.51.100.{n}"}) for n in range(20)]
    statuses = in_parallel(calls)
    assert statuses.count(401) <= 5 and statuses.count(429) >= 15


def test_behind_a_trusted_proxy_each_client_has_its_own_allowance(start_desk: StartDesk):
    desk = start_desk(desk_env={"DESK_TRUSTED_PROXIES": "127.0.0.1"})
    stranger = {"X-Forwarded-For": "203.0.113.7"}
    assert [post_from(desk, "/api/login", WRONG, headers=stranger)[0] for _ in range(6)] == [401] * 5 + [429]
    status, _ = post_from(desk, "/api/login", {"username": "agent1", "password": "agent1-pass"}, headers={"X-Forwarded-For": "198.51.100.2"})
    assert status == 200
    status, _ = post_from(desk, "/api/login", {"username": "agent1", "password": "agent1-pass"}, headers=stranger)
    assert status == 429


def test_a_client_trying_many_usernames_is_stopped(start_desk: StartDesk):
    desk = start_desk()
    statuses = [http("POST", f"{desk.url}/api/login", {"username": f"guess{n}", "password": "x"})[0] for n in range(22)]
    assert statuses == [401] * 20 + [429] * 2


@pytest.fixture()
def team(start_desk: StartDesk) -> DeskProcess:
    desk = start_desk(agents=("agent1", "agent2", "supervisor"))
    for name in ("agent1", "agent2", "supervisor"):
        desk.login(name)
    return desk


def test_an_agent_cannot_read_another_agents_conversation_but_the_supervisor_can(team: DeskProcess):
    desk, sender = team, "conv-door-1"
    enqueue(desk, sender)
    assert desk.call("GET", f"/api/conversations/{sender}", "agent2")[0] == 200  # waiting: any agent may look before claiming
    assert desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")[0] == 200

    status, body = desk.call("GET", f"/api/conversations/{sender}", "agent2")
    assert (status, body["error"]["code"], body["error"]["agent"]) == (403, "not_yours", "agent1")
    assert "transcript" not in body and "summary" not in body
    status, body = desk.call("POST", f"/api/conversations/{sender}/notes", "agent2", {"text": "偷看"})
    assert (status, body["error"]["code"]) == (403, "not_yours")
    status, view = desk.call("GET", f"/api/conversations/{sender}", "supervisor")
    assert status == 200 and view["handoff"]["agent"] == "agent1" and not view["can_reply"]
    _, supervised = desk.call("GET", "/api/queue", "supervisor")
    assert [(c["sender"], c["agent"]) for c in supervised["in_service"]] == [(sender, "agent1")]
    assert "in_service" not in desk.call("GET", "/api/queue", "agent2")[1]
    assert desk.call("GET", f"/api/conversations/{sender}", "agent1")[0] == 200

    assert desk.call("POST", f"/api/conversations/{sender}/resolve", "agent1", {"code": "resolved"})[0] == 200
    assert desk.call("GET", f"/api/conversations/{sender}", "agent2")[0] == 403  # resolved history: its agent and supervisors
    assert desk.call("GET", f"/api/conversations/{sender}", "agent1")[0] == 200
    assert desk.call("GET", f"/api/conversations/{sender}", "supervisor")[0] == 200


def test_metrics_are_for_supervisors(team: DeskProcess):
    status, body = team.call("GET", "/api/metrics", "agent1")
    assert (status, body["error"]["code"]) == (403, "forbidden") and "主管" in body["error"]["message"]
    assert team.call("GET", "/api/metrics?days=1", "supervisor")[0] == 200
    assert team.call("GET", "/api/me", "agent1")[1]["agent"]["role"] == "agent"
    assert team.call("GET", "/api/me", "supervisor")[1]["agent"]["role"] == "supervisor"


async def _open_socket(desk: DeskProcess, agent: str):
    ws = await ws_connect(desk.url.replace("http://", "ws://") + "/api/ws")
    await ws.send(json.dumps({"type": "auth", "token": desk.tokens[agent]}))
    assert json.loads(await ws.recv())["type"] == "hello"
    return ws


async def _until_closed(ws, timeout_s: float) -> List[Dict[str, Any]]:
    received = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())))
    except asyncio.TimeoutError:
        raise AssertionError(f"the socket is still open; received {received}") from None
    except Exception:  # ConnectionClosed: what we wait for
        return received
    raise AssertionError(f"the socket is still open; received {received}")


def test_a_websocket_closes_after_logout(team: DeskProcess):
    async def scenario() -> Tuple[List[Dict[str, Any]], Optional[int]]:
        ws = await _open_socket(team, "agent1")
        status, _ = await asyncio.get_running_loop().run_in_executor(None, team.call, "POST", "/api/logout", "agent1")
        assert status == 200
        received = await _until_closed(ws, 5)
        return received, ws.close_code

    received, code = asyncio.run(scenario())
    assert code == 4401
    assert any(event.get("type") == "session_ended" for event in received)


def test_a_websocket_closes_when_its_session_expires(start_desk: StartDesk):
    desk = start_desk(desk_env={"DESK_WS_RECHECK_S": "1"})
    desk.login("agent1")

    async def scenario() -> Optional[int]:
        ws = await _open_socket(desk, "agent1")
        sync_client(desk.redis_url).delete(keys.session(desk.tokens["agent1"]))  # as when its TTL runs out
        await _until_closed(ws, 5)
        return ws.close_code

    assert asyncio.run(scenario()) == 4401


def test_conversation_events_reach_only_its_agent_and_the_supervisors(team: DeskProcess):
    desk, sender = team, "conv-door-ws"
    enqueue(desk, sender)
    assert desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")[0] == 200

    async def scenario() -> Dict[str, List[Dict[str, Any]]]:
        sockets = {name: await _open_socket(desk, name) for name in ("agent1", "agent2", "supervisor")}
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        assert (await loop.run_in_executor(None, desk.call, "POST", f"/api/conversations/{sender}/notes", "agent1", {"text": "内部备注"}))[0] == 201
        assert (await loop.run_in_executor(None, desk.call, "POST", f"/api/conversations/{sender}/resolve", "agent1",
                                           {"code": "resolved"}))[0] == 200
        received: Dict[str, List[Dict[str, Any]]] = {}
        for name, ws in sockets.items():
            events: List[Dict[str, Any]] = []
            while not any(e.get("type") == "resolved" for e in events):
                events.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=5)))
            received[name] = events
            await ws.close()
        return received

    received = asyncio.run(scenario())
    kinds = {name: {e["type"] for e in events} for name, events in received.items()}
    assert "note" in kinds["agent1"] and "note" in kinds["supervisor"]
    assert "note" not in kinds["agent2"] and "message" not in kinds["agent2"]
    assert "resolved" in kinds["agent2"]  # queue-level events reach everyone


def test_openapi_document_is_served(team: DeskProcess):
    status, document = http("GET", f"{team.url}/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    assert "/api/login" in document["paths"] and "/api/conversations/{sender}" in document["paths"]
