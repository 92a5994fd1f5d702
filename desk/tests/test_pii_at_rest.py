"""Personal data at rest in the handoff: what Redis holds and what the agent is shown is masked.

Against a real redis-server and a real desk process: the raw transcript stream, record, notes and
callback ticket are read straight from Redis, the agent's view through the desk's API and websocket.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any, Callable, Dict, List

from websockets.client import connect as ws_connect

from bot.outbox import Outbox
from handoff import callbacks, conversation, keys, queue
from handoff.models import CallbackTicket
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

SHOPPER_TEXT = "我的手机 138-1234-5678，新地址是北京市朝阳区建国路88号3单元502，订单880000010001 和运单 SF880000010001 别弄错"
STORED_TEXT = "我的手机 138****5678，新地址是北京市朝阳区****，订单880000010001 和运单 SF880000010001 别弄错"
CLEAR = ("13812345678", "138-1234-5678", "1234-5678", "建国路", "3单元502", "13912345678", "张伟")


def everything_stored(redis_url: str) -> str:
    """Every value of every key in the test Redis, as one text."""
    client = sync_client(redis_url)
    parts: List[str] = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        if kind == "string":
            parts.append(str(client.get(key)))
        elif kind == "hash":
            parts.append(json.dumps(client.hgetall(key), ensure_ascii=False))
        elif kind == "list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == "stream":
            parts.extend(json.dumps(fields, ensure_ascii=False) for _, fields in client.xrange(key))
    return "\n".join(parts)


def shown(stored: str) -> None:
    for clear in CLEAR:
        assert clear not in stored, clear


def test_a_shopper_message_during_a_handoff_is_stored_and_shown_masked(start_desk: Callable[..., DeskProcess]) -> None:
    desk = start_desk()
    desk.login("agent1")
    sender = "conv-pii-1"
    req = request(sender)
    assert run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))[0]
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(req.handoff_id), "status") == "queued")
    assert desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")[0] == 200
    ws_url = desk.url.replace("http://", "ws://") + "/api/ws"

    async def session() -> List[Dict[str, Any]]:
        received: List[Dict[str, Any]] = []
        async with ws_connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": desk.tokens["agent1"]}))
            assert json.loads(await ws.recv())["type"] == "hello"
            await asyncio.sleep(0.3)
            routed = await asyncio.get_running_loop().run_in_executor(
                None, lambda: run(desk.redis_url, desk.policy_file, lambda ctx: conversation.route_shopper_message(ctx, sender, SHOPPER_TEXT)))
            assert routed is not None and routed.status == "assigned"
            deadline = asyncio.get_running_loop().time() + 5
            while asyncio.get_running_loop().time() < deadline and not any(e.get("type") == "message" for e in received):
                received.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=5)))
        return received

    live = [e["entry"] for e in asyncio.run(session()) if e.get("type") == "message" and e["entry"]["from"] == "shopper"]
    assert [entry["text"] for entry in live] == [STORED_TEXT]

    raw = [fields for _, fields in client.xrange(keys.transcript(req.handoff_id)) if fields["from"] == "shopper"]
    assert [fields["text"] for fields in raw] == [STORED_TEXT]

    status, view = desk.call("GET", f"/api/conversations/{sender}", "agent1")
    assert status == 200
    assert [e["text"] for e in view["transcript"] if e["from"] == "shopper"] == [STORED_TEXT]

    reply = "已为您把收货地址改为北京市朝阳区建国路88号3单元502，联系电话 13812345678"
    status, body = desk.call("POST", f"/api/conversations/{sender}/messages", "agent1", {"text": reply})
    assert status == 201 and body["entry"]["text"] == "已为您把收货地址改为北京市朝阳区****，联系电话 138****5678"
    status, body = desk.call("POST", f"/api/conversations/{sender}/notes", "agent1", {"text": "顾客新号码 13912345678，需回电"})
    assert status == 201 and body["note"]["text"] == "顾客新号码 139****5678，需回电"

    async def delivered(ctx: Any) -> List[str]:
        messages, _ = await Outbox(ctx.redis, ttl_s=3600).fetch(sender)
        return [m["text"] for m in messages]

    assert run(desk.redis_url, desk.policy_file, delivered)[-1] == reply  # the shopper reads the agent's reply as typed
    client.delete(f"outbox:{sender}")  # the shopper's delivery queue: not handoff storage
    stored = everything_stored(desk.redis_url)
    assert STORED_TEXT in stored and "880000010001" in stored and "SF880000010001" in stored
    shown(stored)
    status, view = desk.call("GET", f"/api/conversations/{sender}", "agent1")
    shown(json.dumps(view, ensure_ascii=False))


def test_summaries_and_callback_tickets_are_kept_masked(start_desk: Callable[..., DeskProcess]) -> None:
    """A request or a ticket with clear personal data (an older bot, another writer) is stored masked."""
    desk = start_desk()
    desk.login("agent1")
    clear_summary: Dict[str, Any] = {
        "who": {"name": "张*", "phone": "13812345678", "customer_id": "C000001", "verified": True},
        "orders": [{"order_id": "880000010001", "tracking_number": "SF880000010001"}],
        "last_turns": [{"from": "shopper", "text": SHOPPER_TEXT, "at": time.time()}],
    }
    req = dataclasses.replace(request("conv-pii-2"), summary=clear_summary, summary_text=f"顾客：张*（13812345678）\n顾客：{SHOPPER_TEXT}")
    assert run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))[0]
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(req.handoff_id), "status") == "queued")
    record = client.hgetall(keys.record(req.handoff_id))
    assert json.loads(record["summary"])["last_turns"][0]["text"] == STORED_TEXT
    assert json.loads(record["summary"])["who"]["phone"] == "138****5678"
    assert record["summary_text"] == f"顾客：张*（138****5678）\n顾客：{STORED_TEXT}"

    ticket = CallbackTicket("c" + "1" * 24, "conv-pii-3", "C000001", "+86 138 1234 5678", "L2", "complaint", clear_summary,
                            f"顾客：{SHOPPER_TEXT}", time.time(), time.time() + 3600, time.time())
    assert run(desk.redis_url, desk.policy_file, lambda ctx: callbacks.create_callback(ctx, ticket))
    raw = client.hgetall(keys.callback(ticket.callback_id))
    assert raw["phone_masked"] == "+86 138****5678" and raw["summary_text"] == f"顾客：{STORED_TEXT}"
    status, body = desk.call("POST", f"/api/callbacks/{ticket.callback_id}/complete", "agent1",
                             {"code": "resolved", "note": "已回电 13812345678，地址改为北京市朝阳区建国路88号"})
    assert status == 200
    assert client.hget(keys.callback(ticket.callback_id), "note") == "已回电 138****5678，地址改为北京市朝阳区****"
    _, listed = desk.call("GET", "/api/callbacks?include_done=1", "agent1")
    shown(json.dumps(listed, ensure_ascii=False))
    shown(everything_stored(desk.redis_url))
