"""What the fuzz campaign (schemathesis against ``/openapi.json``) found at the desk's HTTP edges,
through a real desk process: a plain request to the websocket route answered 500, ids the console
percent-encodes (a ``:`` in a conversation id) were refused as invalid, the document admitted
``days``, ``limit`` and resolution codes the API refuses, and a ``days`` or ``limit`` in other digits
(``²``) or of more digits than ``int`` reads answered 500."""

from __future__ import annotations

import asyncio
import json
import re
from http.client import HTTPConnection
from typing import Any, Callable, Dict, Tuple
from urllib.parse import quote, urlparse

from websockets.client import connect as ws_connect

from handoff import keys, queue
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.http import http
from tests.support.waiting import wait_for

StartDesk = Callable[..., DeskProcess]


def raw_get(url: str, headers: Dict[str, str]) -> Tuple[int, Any]:
    """A GET with exactly these headers (urllib would add its own ``Connection``); (status, JSON body)."""
    parsed = urlparse(url)
    connection = HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=15)
    try:
        connection.request("GET", parsed.path, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b"null")
    finally:
        connection.close()


def test_the_websocket_route_answers_a_request_that_is_no_handshake_with_a_4xx(start_desk: StartDesk) -> None:
    desk = start_desk()
    token = desk.login("agent1")
    status, body = raw_get(f"{desk.url}/api/ws", {})
    assert status == 426 and body["error"]["code"] == "bad_request"
    status, body = raw_get(f"{desk.url}/api/ws", {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"})
    assert status == 400 and body["error"]["code"] == "bad_request"

    async def handshake() -> Dict[str, Any]:
        async with ws_connect(desk.url.replace("http://", "ws://") + "/api/ws") as socket:
            await socket.send(json.dumps({"type": "auth", "token": token}))
            return dict(json.loads(await asyncio.wait_for(socket.recv(), 10)))

    assert asyncio.run(handshake())["type"] == "hello"  # a real websocket still opens
    assert "desk.unexpected" not in desk.log.read_text(errors="replace")


def test_percent_encoded_ids_are_read_as_the_console_sends_them(start_desk: StartDesk) -> None:
    desk = start_desk(agents=("agent1", "supervisor"))
    desk.login("agent1")
    desk.login("supervisor")
    sender = "app:fz-1"
    created, handoff_id = run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, request(sender)))
    assert created
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(handoff_id), "status") == "queued")
    status, body = desk.call("GET", "/api/conversations/app%3Afz-1", "agent1")  # encodeURIComponent("app:fz-1")
    assert status == 200 and body["sender"] == sender
    status, body = desk.call("POST", "/api/conversations/app%3Afz-1/claim", "agent1")
    assert status == 200 and body["handoff_id"] == handoff_id
    assert desk.call("GET", "/api/conversations/app%2Ffz-1", "agent1")[0] == 400  # a decoded "/" is still no id
    status, body = desk.call("POST", "/api/push/dead-letters/web%3A1-0/retry", "supervisor")
    assert status == 404 and body["error"]["code"] == "not_found"
    for entry in ("18446744073709551616-0", "0-18446744073709551616"):  # past 64 bits: no stream id (once Redis refused it: 503)
        status, body = desk.call("POST", f"/api/push/dead-letters/app%3A{entry}/retry", "supervisor")
        assert status == 400 and body["error"]["code"] == "invalid_dead_letter"
    assert http("GET", f"{desk.url}/api/conversations/app%3Afz-1")[0] == 401


def test_the_document_admits_what_the_api_admits(start_desk: StartDesk) -> None:
    desk = start_desk(agents=("agent1", "supervisor"))
    desk.login("supervisor")
    status, document = http("GET", f"{desk.url}/openapi.json")
    assert status == 200
    codes = [entry["code"] for entry in desk.call("GET", "/api/me", "supervisor")[1]["resolution_codes"]]
    schemas = document["components"]["schemas"]
    assert codes and schemas["ResolveBody"]["properties"]["code"]["enum"] == codes == schemas["CompleteBody"]["properties"]["code"]["enum"]
    days = document["paths"]["/api/metrics"]["get"]["parameters"][0]["schema"]["pattern"]
    limit = document["paths"]["/api/nlu/inbox"]["get"]["parameters"][1]["schema"]["pattern"]
    assert document["paths"]["/api/push/dead-letters"]["get"]["parameters"][0]["schema"]["pattern"] == limit
    for value in ("0", "1", "7", "90", "91", "100", "500", "501", "²", "٣", "１", "9" * 5000):  # other digits, 5000 digits: 400, once a 500
        query = quote(value)
        expected = 200 if re.fullmatch(days, value) else 400
        assert desk.call("GET", f"/api/metrics?days={query}", "supervisor")[0] == expected, value
        for path in ("/api/push/dead-letters", "/api/nlu/inbox"):
            expected = 200 if re.fullmatch(limit, value) else 400
            assert desk.call("GET", f"{path}?limit={query}", "supervisor")[0] == expected, (path, value)
    assert set(document["paths"]["/api/ws"]["get"]["responses"]) == {"101", "400", "426"}
