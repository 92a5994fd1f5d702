"""The promise a late order's urge makes is kept: tracking the order records a carrier-urge ticket for
the conversation, and the worker relays the carrier's answer (or apologises) there once it is due.

A real CRM whose clock the test moves on, the session's real Redis, the action run as rasa-sdk runs it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple
from zoneinfo import ZoneInfo

import pytest
import redis

from actions.crm import CRMClient, CRMError, set_crm_client
from actions.orders import ActionTrackOrder
from bot.outbox import outbox_key
from bot.settings import PROJECT_ROOT
from crm.tests.clock_support import MovableClock, MovedContext, crm_with_clock
from crm.tests.support import API_KEY, CrmServer
from handoff import carrier_urges
from handoff.context import redis_client
from handoff.policy import load_policy
from handoff.texts import clock as clock_text

from .conftest import load_tracker, run_action, sender_of

LATE_ORDER = "880000010001"
SHOP = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def late_crm(tmp_path: Path) -> Iterator[Tuple[CrmServer, MovableClock]]:
    with crm_with_clock("sqlite", tmp_path / "crm") as (server, clock):
        set_crm_client(CRMClient(server.base_url, API_KEY, timeout_s=5.0))
        try:
            yield server, clock
        finally:
            set_crm_client(None)


def tickets_of(redis_url: str, sender: str) -> List[Dict[str, str]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    found = [client.hgetall(carrier_urges.ticket_key(ticket_id)) for ticket_id in client.zrange(carrier_urges.OPEN, 0, -1)]
    return [ticket for ticket in found if ticket.get("sender") == sender]


def outbox(redis_url: str, sender: str) -> List[Dict[str, Any]]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    return [json.loads(fields["message"]) for _, fields in client.xrange(outbox_key(sender))]


def test_tracking_a_late_order_records_the_promise_and_its_answer_reaches_the_conversation(late_crm, redis_url: str) -> None:
    crm, clock = late_crm
    sender = sender_of("signed_track_order")
    run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    (urge,) = crm.ok(f"/api/orders/{LATE_ORDER}/urges")["items"]
    (ticket,) = tickets_of(redis_url, sender)
    assert (ticket["order_id"], ticket["urge_id"], ticket["status"], ticket["who"]) == (LATE_ORDER, str(urge["urge_id"]), "waiting", "顺丰速运")
    assert float(ticket["due_at"]) == dt.datetime.fromisoformat(urge["answer_due_at"]).timestamp()
    assert ticket["customer_id"] == "C000001"

    # asked again in the same conversation: the same urge, the same ticket
    run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    assert len(tickets_of(redis_url, sender)) == 1 and crm.ok(f"/api/orders/{LATE_ORDER}/urges")["total"] == 1
    # asked in another conversation (the shopper urges from another device): that one is told the answer too
    other = sender_of("signed_urge_delivery")
    assert other != sender
    run_action(ActionTrackOrder(), load_tracker("signed_urge_delivery"))
    assert len(tickets_of(redis_url, other)) == 1 and crm.ok(f"/api/orders/{LATE_ORDER}/urges")["total"] == 1

    # the due time passes (the CRM's clock and the worker's move on together)
    clock.advance_past(dt.datetime.fromisoformat(urge["answer_due_at"]))

    async def poll() -> carrier_urges.PollResult:
        ctx = MovedContext(redis_client(redis_url), load_policy(PROJECT_ROOT / "handoff" / "service.yml"), SHOP, clock=clock)
        client = CRMClient(crm.base_url, API_KEY, timeout_s=5.0)
        try:
            return await carrier_urges.poll_due(ctx, client, (CRMError,))
        finally:
            await client.close()
            await ctx.redis.connection_pool.disconnect()

    result = asyncio.run(poll())
    (seen,) = crm.ok(f"/api/orders/{LATE_ORDER}/urges")["items"]
    answer = seen["answer"]
    (message,) = outbox(redis_url, sender)
    (other_message,) = outbox(redis_url, other)
    now = clock.now().astimezone(SHOP)
    if answer["status"] == "answered":
        assert result.counts == {"answered": 2}
        told = clock_text(dt.datetime.fromisoformat(answer["answered_at"]).astimezone(SHOP), now)
        what = answer["scan"]["description"] if answer["kind"] == "scan" else f"延误原因是{answer['reason']['label']}，{answer['reason']['detail']}"
        assert message["text"].startswith(f"关于您的订单 {LATE_ORDER} 的催件，顺丰速运已于 {told} 回复：{what}。")
        assert other_message["text"] == message["text"]
    else:
        assert result.counts == {"overdue": 2} and answer["status"] == "unanswered"
        for told_message in (message, other_message):
            assert told_message["text"].startswith(f"非常抱歉，您的订单 {LATE_ORDER} 的催件，顺丰速运没有在承诺的")
