"""The desk's JSON API over HTTP against a real desk process and a real Redis."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Callable, Dict, List

import pytest
from websockets.client import connect as ws_connect

from bot.outbox import Outbox
from handoff import conversation, keys, queue
from handoff.models import CallbackTicket
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.http import http
from tests.support.waiting import wait_for

StartDesk = Callable[..., DeskProcess]


def enqueue(desk: DeskProcess, sender: str, **kwargs: Any) -> str:
    """Hand a conversation over as the bot does and wait until the desk has queued it."""
    req = request(sender, **kwargs)
    created, handoff_id = run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    assert created
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(handoff_id), "status") == "queued")
    return handoff_id


def outbox(desk: DeskProcess, sender: str) -> List[Dict[str, Any]]:
    async def fetch(ctx):
        messages, _ = await Outbox(ctx.redis, ttl_s=3600).fetch(sender)
        return messages

    return run(desk.redis_url, desk.policy_file, fetch)


def shopper_says(desk: DeskProcess, sender: str, text: str):
    return run(desk.redis_url, desk.policy_file, lambda ctx: conversation.route_shopper_message(ctx, sender, text))


@pytest.fixture()
def desk(start_desk: StartDesk) -> DeskProcess:
    desk = start_desk()
    desk.login("agent1")
    return desk


@pytest.fixture()
def supervised_desk(start_desk: StartDesk) -> DeskProcess:
    """A desk whose agents include a supervisor (who reads the metrics); agent1 and the supervisor logged in."""
    desk = start_desk(agents=("agent1", "agent2", "supervisor"))
    desk.login("agent1")
    desk.login("supervisor")
    return desk


def test_health_and_pages(desk: DeskProcess):
    assert http("GET", f"{desk.url}/health")[0] == 200
    status, page = http("GET", f"{desk.url}/")
    assert status == 200 and "客服登录" in page and "/static/console.js" in page
    status, page = http("GET", f"{desk.url}/charts")
    assert status == 200 and "数据看板" in page
    assert http("GET", f"{desk.url}/static/console.js")[0] == 200
    status, body = http("GET", f"{desk.url}/static/../app.py")
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"username": "agent1", "password": "wrong"}, 401, "invalid_credentials"),
        ({"username": "nobody", "password": "agent1-pass"}, 401, "invalid_credentials"),
        ({"username": "agent1"}, 400, "invalid_credentials_format"),
        ({"username": 5, "password": []}, 400, "invalid_credentials_format"),
        ([1, 2], 400, "invalid_json"),
    ],
)
def test_login_refusals_are_json_4xx(desk: DeskProcess, body, status, code):
    got, answer = http("POST", f"{desk.url}/api/login", body)
    assert (got, answer["error"]["code"]) == (status, code)


def test_login_with_broken_json_and_lockout(desk: DeskProcess):
    status, body = http("POST", f"{desk.url}/api/login", raw=b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_json")
    for _ in range(5):
        assert http("POST", f"{desk.url}/api/login", {"username": "agent2", "password": "nope"})[0] == 401
    status, body = http("POST", f"{desk.url}/api/login", {"username": "agent2", "password": "agent2-pass"})
    assert (status, body["error"]["code"]) == (429, "too_many_attempts")


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/api/queue"), ("GET", "/api/me"), ("POST", "/api/conversations/s-1/claim"), ("GET", "/api/metrics"), ("GET", "/api/callbacks")],
)
def test_api_needs_a_login(desk: DeskProcess, method: str, path: str):
    status, body = http(method, f"{desk.url}{path}", token="forged-token")
    assert (status, body["error"]["code"]) == (401, "unauthorized")


def test_unknown_routes_methods_and_big_bodies_are_json(desk: DeskProcess):
    status, body = http("GET", f"{desk.url}/api/nothing-here", token=desk.tokens["agent1"])
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = http("DELETE", f"{desk.url}/api/queue", token=desk.tokens["agent1"])
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    status, body = http("POST", f"{desk.url}/api/login", raw=b'{"username": "' + b"a" * 70000 + b'"}')
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_queue_claim_reply_resolve(desk: DeskProcess):
    sender = "conv-api-1"
    handoff_id = enqueue(desk, sender, tier="L4", reason="complaint")
    desk.login("agent2")

    status, q = desk.call("GET", "/api/queue", "agent1")
    assert status == 200
    (item,) = q["waiting"]
    assert item["sender"] == sender and item["handoff_id"] == handoff_id
    assert item["lane"] == "priority" and item["lane_label"] == "优先" and item["reason"] == "complaint"
    assert item["waiting_s"] >= 0 and item["claimable"]
    assert {a["username"]: a["online"] for a in q["agents"]} == {"agent1": True, "agent2": True}

    status, view = desk.call("GET", f"/api/conversations/{sender}", "agent1")
    assert status == 200 and view["handoff"]["status"] == "queued" and view["summary_text"].startswith("【转人工摘要】")
    assert not view["can_reply"]

    shopper_says(desk, sender, "我等了很久了")
    status, body = desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")
    assert (status, body["status"], body["agent"]) == (200, "assigned", "agent1")
    status, body = desk.call("POST", f"/api/conversations/{sender}/claim", "agent2")
    assert (status, body["error"]["code"], body["error"]["agent"]) == (409, "already_claimed", "agent1")

    status, body = desk.call("POST", f"/api/conversations/{sender}/messages", "agent2", {"text": "我来"})
    assert (status, body["error"]["code"]) == (403, "not_yours")
    status, body = desk.call("POST", f"/api/conversations/{sender}/messages", "agent1", {"text": "您好，我是客服小王"})
    assert status == 201 and body["entry"]["from"] == "agent"
    texts = [m["text"] for m in outbox(desk, sender)]
    assert texts[-1] == "您好，我是客服小王" and any("已接入" in t for t in texts)

    routed = shopper_says(desk, sender, "我的快递丢了")
    assert routed.status == "assigned" and routed.agent == "agent1" and routed.agent_name == "小王"
    status, body = desk.call("POST", f"/api/conversations/{sender}/notes", "agent1", {"text": "顾客说快递丢件，需查顺丰"})
    assert status == 201

    status, view = desk.call("GET", f"/api/conversations/{sender}", "agent1")
    assert view["can_reply"] and view["agent_name"] == "小王"
    assert [e["text"] for e in view["transcript"] if e["from"] != "system"] == ["我等了很久了", "您好，我是客服小王", "我的快递丢了"]
    assert view["notes"][0]["text"] == "顾客说快递丢件，需查顺丰"

    status, body = desk.call("POST", f"/api/conversations/{sender}/resolve", "agent1", {"code": "made_up"})
    assert (status, body["error"]["code"]) == (400, "invalid_code") and "resolved" in body["error"]["allowed"]
    status, body = desk.call("POST", f"/api/conversations/{sender}/resolve", "agent1", {"code": "resolved"})
    assert status == 200 and body["status"] == "resolved"

    client = sync_client(desk.redis_url)
    assert client.get(keys.active(sender)) is None
    assert client.get(keys.rating_pending(sender)) == handoff_id
    for key in (keys.record(handoff_id), keys.transcript(handoff_id), keys.notes(handoff_id)):
        assert 0 < client.ttl(key) <= 30 * 24 * 3600  # kept as long as the tracker, then gone (PIPL retention)
    prompt = outbox(desk, sender)[-1]
    assert prompt["from"] == "bot" and "打个分" in prompt["text"]
    assert prompt["buttons"][0]["payload"] == '/rate_service{"rating":"5"}'
    status, body = desk.call("POST", f"/api/conversations/{sender}/resolve", "agent1", {"code": "resolved"})
    assert status == 404
    status, view = desk.call("GET", f"/api/conversations/{sender}", "agent1")
    assert view["handoff"]["status"] == "resolved" and view["handoff"]["resolution_code"] == "resolved"


def test_sticky_routing_offers_a_returning_shopper_to_the_last_agent(desk: DeskProcess):
    desk.login("agent2")
    first = "conv-sticky-1"
    enqueue(desk, first, customer_id="C000003")
    assert desk.call("POST", f"/api/conversations/{first}/claim", "agent1")[0] == 200
    assert desk.call("POST", f"/api/conversations/{first}/resolve", "agent1", {"code": "info_only"})[0] == 200

    again = "conv-sticky-2"
    enqueue(desk, again, customer_id="C000003")
    _, q = desk.call("GET", "/api/queue", "agent2")
    (item,) = q["waiting"]
    assert item["offered_to"] == "agent1" and item["offered_to_name"] == "小王" and not item["claimable"]
    _, q = desk.call("GET", "/api/queue", "agent1")
    assert q["waiting"][0]["offered_to_me"] and q["waiting"][0]["claimable"]
    status, body = desk.call("POST", f"/api/conversations/{again}/claim", "agent2")
    assert (status, body["error"]["code"], body["error"]["agent"]) == (409, "offered_to_other", "agent1")
    assert desk.call("POST", f"/api/conversations/{again}/claim", "agent1")[0] == 200
    _, view = desk.call("GET", f"/api/conversations/{again}", "agent1")
    assert view["history"] == []  # a new conversation id; the customer's history is per conversation


def test_sticky_offer_is_skipped_when_the_last_agent_is_offline(desk: DeskProcess):
    desk.login("agent2")
    enqueue(desk, "conv-off-1", customer_id="C000004")
    desk.call("POST", "/api/conversations/conv-off-1/claim", "agent2")
    desk.call("POST", "/api/conversations/conv-off-1/resolve", "agent2", {"code": "resolved"})
    assert desk.call("POST", "/api/logout", "agent2")[0] == 200
    enqueue(desk, "conv-off-2", customer_id="C000004")
    _, q = desk.call("GET", "/api/queue", "agent1")
    assert q["waiting"][0]["offered_to"] == ""
    assert desk.call("POST", "/api/conversations/conv-off-2/claim", "agent1")[0] == 200


def test_capacity_and_transfer(start_desk: StartDesk):
    desk = start_desk(capacity={"default": 1, "agents": {}})
    desk.login("agent1")
    enqueue(desk, "conv-cap-1")
    enqueue(desk, "conv-cap-2")
    assert desk.call("POST", "/api/conversations/conv-cap-1/claim", "agent1")[0] == 200
    status, body = desk.call("POST", "/api/conversations/conv-cap-2/claim", "agent1")
    assert (status, body["error"]["code"]) == (409, "at_capacity")

    status, body = desk.call("POST", "/api/conversations/conv-cap-1/transfer", "agent1", {"to": "agent2"})
    assert (status, body["error"]["code"]) == (409, "offline")
    assert desk.call("POST", "/api/conversations/conv-cap-1/transfer", "agent1", {"to": "ghost"})[0] == 400
    desk.login("agent2")
    status, body = desk.call("POST", "/api/conversations/conv-cap-1/transfer", "agent1", {"to": "agent1"})
    assert (status, body["error"]["code"]) == (400, "same_agent")
    status, body = desk.call("POST", "/api/conversations/conv-cap-1/transfer", "agent1", {"to": "agent2"})
    assert (status, body["status"]) == (200, "transferred")
    assert "转接到客服小李" in outbox(desk, "conv-cap-1")[-1]["text"]
    assert desk.call("POST", "/api/conversations/conv-cap-2/claim", "agent1")[0] == 200  # capacity freed
    _, q = desk.call("GET", "/api/queue", "agent2")
    assert [m["sender"] for m in q["mine"]] == ["conv-cap-1"]


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        ("/api/conversations/bad sender!/claim", None, 400, "invalid_sender"),
        ("/api/conversations/nobody/claim", None, 404, "not_found"),
        ("/api/conversations/nobody", None, 404, "not_found"),
        ("/api/conversations/nobody/messages", {"text": ""}, 400, "invalid_text"),
        ("/api/conversations/nobody/messages", {"text": "x" * 2001}, 413, "text_too_long"),
        ("/api/conversations/nobody/messages", {"text": "您好"}, 404, "not_found"),
        ("/api/conversations/nobody/resolve", {"code": "resolved"}, 404, "not_found"),
        ("/api/callbacks/not-an-id/complete", {"code": "resolved"}, 400, "invalid_callback"),
        ("/api/metrics?days=0", None, 400, "invalid_days"),
        ("/api/metrics?days=abc", None, 400, "invalid_days"),
    ],
)
def test_bad_input_is_a_json_4xx(supervised_desk: DeskProcess, path: str, body, status: int, code: str):
    desk = supervised_desk
    method = "GET" if body is None and not path.endswith(("claim",)) else "POST"
    who = "supervisor" if path.startswith("/api/metrics") else "agent1"  # the metrics are for supervisors
    got, answer = desk.call(method, path.replace(" ", "%20").replace("!", "%21"), who, body)
    assert (got, answer["error"]["code"]) == (status, code)


def test_callbacks_by_due_time_with_overdue_flag(supervised_desk: DeskProcess):
    desk = supervised_desk
    from handoff.callbacks import create_callback

    now = __import__("time").time()

    def ticket(callback_id_suffix: str, end: float) -> CallbackTicket:
        return CallbackTicket(keys.new_callback_id(), f"conv-cb-{callback_id_suffix}", "C000001", "138****5678", "L4", "requested",
                              {"wanted": ["查询物流"]}, "【转人工摘要】", end - 3600, end, now, after_sales=True)

    late, soon = ticket("late", now - 60), ticket("soon", now + 1800)
    for made in (soon, late):
        assert run(desk.redis_url, desk.policy_file, functools.partial(create_callback, ticket=made))
    status, body = desk.call("GET", "/api/callbacks", "agent1")
    assert status == 200
    assert [c["callback_id"] for c in body["callbacks"]] == [late.callback_id, soon.callback_id]
    assert [c["overdue"] for c in body["callbacks"]] == [True, False]
    _, q = desk.call("GET", "/api/queue", "agent1")
    assert q["callbacks_overdue"] == 1
    status, body = desk.call("POST", f"/api/callbacks/{late.callback_id}/complete", "agent1", {"code": "resolved", "note": "已电话联系"})
    assert status == 200
    status, body = desk.call("POST", f"/api/callbacks/{late.callback_id}/complete", "agent1", {"code": "resolved"})
    assert (status, body["error"]["code"]) == (409, "done")
    _, body = desk.call("GET", "/api/callbacks", "agent1")
    assert [c["callback_id"] for c in body["callbacks"]] == [soon.callback_id]
    _, metrics = desk.call("GET", "/api/metrics", "supervisor")
    assert metrics["callbacks_open"] == {"open": 1, "overdue": 0, "done": 1, "late": 1}


def test_metrics_after_a_rated_handoff(supervised_desk: DeskProcess):
    desk = supervised_desk
    from handoff.stats import note_conversation_started, record_rating

    for _ in range(4):
        run(desk.redis_url, desk.policy_file, note_conversation_started)
    enqueue(desk, "conv-m-1", reason="complaint")
    desk.call("POST", "/api/conversations/conv-m-1/claim", "agent1")
    desk.call("POST", "/api/conversations/conv-m-1/messages", "agent1", {"text": "您好"})
    desk.call("POST", "/api/conversations/conv-m-1/resolve", "agent1", {"code": "compensation"})
    assert run(desk.redis_url, desk.policy_file, lambda ctx: record_rating(ctx, "conv-m-1", 4))
    assert run(desk.redis_url, desk.policy_file, lambda ctx: record_rating(ctx, "conv-m-1", 5)) is None  # once per handoff
    status, m = desk.call("GET", "/api/metrics?days=1", "supervisor")
    assert status == 200
    assert m["conversations"] == 4 and m["handoffs"] == 1 and m["handoff_rate"] == 0.25
    assert next(r for r in m["by_reason"] if r["reason"] == "complaint") == {"reason": "complaint", "label": "投诉", "count": 1, "rate": 0.25}
    assert m["satisfaction"] == {"count": 1, "mean": 4.0, "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}}
    assert m["waiting"]["count"] == 1 and m["handling"]["count"] == 1 and m["first_response"]["count"] == 1
    assert m["resolution_codes"]["compensation"] == 1 and m["after_sales"]["resolved"] == 1


def test_websocket_live_events_and_replies(desk: DeskProcess):
    sender = "conv-ws-1"
    enqueue(desk, sender)
    assert desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")[0] == 200
    ws_url = desk.url.replace("http://", "ws://") + "/api/ws"

    async def session() -> List[Dict[str, Any]]:
        received: List[Dict[str, Any]] = []
        async with ws_connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "forged"}))
            refused = json.loads(await ws.recv())
            assert refused["code"] == "unauthorized"
        async with ws_connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": desk.tokens["agent1"]}))
            assert json.loads(await ws.recv())["type"] == "hello"
            await asyncio.sleep(0.3)
            await asyncio.get_running_loop().run_in_executor(None, shopper_says, desk, sender, "有人吗？")
            await ws.send(json.dumps({"type": "reply", "request_id": "r1", "sender": sender, "text": "在的，您请说"}))
            await ws.send(json.dumps({"type": "reply", "request_id": "r2", "sender": sender, "text": ""}))
            await ws.send("not json")
            deadline = asyncio.get_running_loop().time() + 5
            while asyncio.get_running_loop().time() < deadline and len([e for e in received if e.get("type") == "reply_result"]) < 2:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=5)))
        return received

    received = asyncio.run(session())
    shopper_events = [e for e in received if e.get("type") == "message" and e["entry"]["from"] == "shopper"]
    assert shopper_events and shopper_events[0]["entry"]["text"] == "有人吗？"
    results = {e["request_id"]: e for e in received if e.get("type") == "reply_result"}
    assert results["r1"]["ok"] and results["r1"]["entry"]["text"] == "在的，您请说"
    assert not results["r2"]["ok"] and results["r2"]["error"]["code"] == "invalid_text"
    assert outbox(desk, sender)[-1]["text"] == "在的，您请说"


def test_shopper_cancel_while_waiting(desk: DeskProcess):
    sender = "conv-cancel"
    handoff_id = enqueue(desk, sender)
    assert run(desk.redis_url, desk.policy_file, lambda ctx: queue.cancel(ctx, sender, handoff_id, "不等了")) == "ok"
    client = sync_client(desk.redis_url)
    assert client.get(keys.active(sender)) is None and client.zcard(keys.QUEUE) == 0
    _, view = desk.call("GET", f"/api/conversations/{sender}", "agent1")
    assert view["handoff"]["status"] == "cancelled"


def test_a_reply_retried_with_its_client_id_reaches_the_shopper_once(desk: DeskProcess):
    sender = "conv-api-client-id"
    enqueue(desk, sender)
    assert desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")[0] == 200
    first = desk.call("POST", f"/api/conversations/{sender}/messages", "agent1", {"text": "稍等，我查一下", "client_id": "c-42"})
    retry = desk.call("POST", f"/api/conversations/{sender}/messages", "agent1", {"text": "稍等，我查一下", "client_id": "c-42"})
    assert first[0] == retry[0] == 201 and retry[1]["cursor"] == first[1]["cursor"]
    assert [m["text"] for m in outbox(desk, sender)].count("稍等，我查一下") == 1
    for bad in (42, "坏 id", "x" * 65):
        status, body = desk.call("POST", f"/api/conversations/{sender}/messages", "agent1", {"text": "再发", "client_id": bad})
        assert (status, body["error"]["code"]) == (400, "invalid_client_id")
