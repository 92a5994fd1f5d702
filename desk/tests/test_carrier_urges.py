"""Carrier-urge tickets end to end: the bot's promise recorded in a real Redis, the worker polling a real
CRM whose clock the test moves on (and the bot's with it), the answer reaching the shopper's channel
through the push path, an unanswered urge overdue on the desk until an agent answers it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple, TypeVar
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from actions.crm import CRMClient, CRMError
from bot.outbox import outbox_key
from bot.push import PushDelivery, register_conversation
from crm.tests.clock_support import MovableClock, MovedContext, crm_with_clock
from crm.tests.support import API_KEY, CrmServer
from crm.tests.test_carrier_answers import parse, shop_time, urge_with_outcome
from handoff import carrier_urges, tickets
from handoff.context import HandoffContext
from handoff.policy import load_policy
from handoff.texts import clock as clock_text
from tests.support.desk import POLICY_FILE
from tests.support.handoff import sync_client

SHOP = ZoneInfo("Asia/Shanghai")
FOLLOW_UP = "如需人工客服进一步跟进，随时发“转人工”。"
T = TypeVar("T")


@pytest.fixture(scope="module")
def crm_clock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[CrmServer, MovableClock]]:
    with crm_with_clock("sqlite", tmp_path_factory.mktemp("urge-crm")) as pair:
        yield pair


def run(redis_url: str, clock: Optional[MovableClock], work: Callable[[HandoffContext, CRMClient], Awaitable[T]],
        crm_url: str = "") -> T:
    """Run a coroutine over a handoff context with the moved clock and a CRM client (own loop and connections)."""

    async def go() -> T:
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
        crm = CRMClient(crm_url, API_KEY, timeout_s=5.0)
        try:
            return await work(MovedContext(client, load_policy(POLICY_FILE), SHOP, clock=clock), crm)
        finally:
            await crm.close()
            await client.close()

    return asyncio.run(go())


def outbox_texts(redis_url: str, sender: str) -> List[Dict[str, Any]]:
    import json

    return [json.loads(fields["message"]) for _, fields in sync_client(redis_url).xrange(outbox_key(sender))]


async def delivered_to_channel(ctx: HandoffContext, crm: CRMClient, sender: str) -> Tuple[carrier_urges.PollResult, List[str]]:
    """Poll the due tickets while the web channel's push consumer runs; what the channel delivered."""
    received: List[str] = []

    async def deliver(who: str, registration: Dict[str, str], entries: List[Tuple[str, Dict[str, Any]]]) -> Optional[str]:
        received.extend(message["text"] for _, message in entries if who == sender)
        return entries[-1][0]

    await register_conversation(ctx.redis, sender, "web")
    consumer = PushDelivery(ctx.redis, "web", deliver, block_ms=100)
    await consumer.start()
    try:
        result = await carrier_urges.poll_due(ctx, crm, (CRMError,))
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()
    return result, received


def promise(redis_url: str, clock: MovableClock, crm_url: str, urge: Dict[str, Any], sender: str) -> str:
    ticket_id = run(redis_url, clock, lambda ctx, crm: carrier_urges.promise(ctx, urge, sender, urge["customer_id"]), crm_url)
    assert ticket_id is not None and carrier_urges.TICKET_ID.fullmatch(ticket_id)
    return ticket_id


def shop_clock(moment: str, now: dt.datetime) -> str:
    return clock_text(parse(moment).astimezone(SHOP), now.astimezone(SHOP))


# ----------------------------------------------------------------------------------- answers
def test_a_new_scan_reaches_the_shopper_once_with_its_time(crm_clock, redis_url: str) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "scan")
    sender = "conv-urge-scan"
    ticket_id = promise(redis_url, clock, crm.base_url, urge, sender)
    # telling the shopper again in the same conversation records nothing new
    assert run(redis_url, clock, lambda ctx, c: carrier_urges.promise(ctx, urge, sender), crm.base_url) is None

    # before any answer nothing is due and nothing is sent
    result = run(redis_url, clock, lambda ctx, c: carrier_urges.poll_due(ctx, c, (CRMError,)), crm.base_url)
    assert result.counts == {} and outbox_texts(redis_url, sender) == []

    clock.advance_past(parse(urge["answer_due_at"]) - dt.timedelta(seconds=1))
    result, received = run(redis_url, clock, lambda ctx, c: delivered_to_channel(ctx, c, sender), crm.base_url)
    answer = next(item for item in crm.ok(f"/api/orders/{urge['order_id']}/urges")["items"] if item["urge_id"] == urge["urge_id"])["answer"]
    assert result.counts == {"answered": 1} and answer["kind"] == "scan"
    expected = (f"关于您的订单 {urge['order_id']} 的催件，{urge['carrier_name']}已于 {shop_clock(answer['answered_at'], clock.now())} "
                f"回复：{answer['scan']['description']}。{FOLLOW_UP}")
    assert received == [expected]
    (message,) = outbox_texts(redis_url, sender)
    assert (message["text"], message["from"], message["ticket_id"]) == (expected, "system", ticket_id)

    # the ticket is settled: polled again, nothing more is sent
    assert run(redis_url, clock, lambda ctx, c: carrier_urges.poll_due(ctx, c, (CRMError,)), crm.base_url).counts == {}
    record = run(redis_url, clock, lambda ctx, c: carrier_urges.get_ticket(ctx, ticket_id), crm.base_url)
    assert record is not None and (record["status"], record["outcome"], record["overdue"]) == ("answered", "scan", False)
    assert len(outbox_texts(redis_url, sender)) == 1


def test_a_reason_reaches_the_shopper_with_its_time(crm_clock, redis_url: str) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "reason")
    sender = "conv-urge-reason"
    promise(redis_url, clock, crm.base_url, urge, sender)
    clock.advance_past(parse(urge["answer_due_at"]) - dt.timedelta(seconds=1))
    result, received = run(redis_url, clock, lambda ctx, c: delivered_to_channel(ctx, c, sender), crm.base_url)
    answer = next(item for item in crm.ok(f"/api/orders/{urge['order_id']}/urges")["items"] if item["urge_id"] == urge["urge_id"])["answer"]
    reason = answer["reason"]
    assert result.counts == {"answered": 1}
    assert received == [
        f"关于您的订单 {urge['order_id']} 的催件，{urge['carrier_name']}已于 {shop_clock(answer['answered_at'], clock.now())} 回复："
        f"延误原因是{reason['label']}，{reason['detail']}。给您带来不便，非常抱歉；{FOLLOW_UP}"
    ]


def test_no_answer_by_the_due_time_is_an_apology_and_an_overdue_ticket(crm_clock, redis_url: str) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "none", hours=1)
    sender = "conv-urge-none"
    ticket_id = promise(redis_url, clock, crm.base_url, urge, sender)
    due = parse(urge["answer_due_at"])

    # polled before the due time: still waiting, nothing sent, polled again at the due time at the latest
    clock.advance_past(due - dt.timedelta(minutes=5))
    result = run(redis_url, clock, lambda ctx, c: carrier_urges.poll_due(ctx, c, (CRMError,)), crm.base_url)
    assert result.counts == {"waiting": 1} and outbox_texts(redis_url, sender) == []
    assert sync_client(redis_url).zscore(carrier_urges.WAITING, ticket_id) == pytest.approx(due.timestamp())

    clock.advance_past(due)
    result, received = run(redis_url, clock, lambda ctx, c: delivered_to_channel(ctx, c, sender), crm.base_url)
    assert result.counts == {"overdue": 1}
    assert received == [
        f"非常抱歉，您的订单 {urge['order_id']} 的催件，{urge['carrier_name']}没有在承诺的 {shop_clock(urge['answer_due_at'], clock.now())} "
        f"前回复。已为您转人工跟进（工单 {ticket_id}），客服查明进度后会在这里回复您。"
    ]
    counts = run(redis_url, clock, lambda ctx, c: tickets.overdue_counts(ctx), crm.base_url)
    assert counts["carrier_urges"] == 1
    (listed,) = run(redis_url, clock, lambda ctx, c: carrier_urges.list_tickets(ctx), crm.base_url)
    assert (listed["ticket_id"], listed["status"], listed["overdue"], listed["order_id"]) == (ticket_id, "overdue", True, urge["order_id"])
    # an overdue ticket is not polled again: the apology is sent once
    assert run(redis_url, clock, lambda ctx, c: carrier_urges.poll_due(ctx, c, (CRMError,)), crm.base_url).counts == {}
    assert len(outbox_texts(redis_url, sender)) == 1


def test_a_crm_that_does_not_answer_is_asked_again_then_the_promise_counts_as_broken(redis_url: str, tmp_path: Path) -> None:
    clock = MovableClock(tmp_path / "offset")
    due = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=30)
    urge = {"urge_id": 7, "order_id": "202611150023", "target": "carrier", "carrier_name": "顺丰速运",
            "created_at": shop_time(dt.datetime.now(dt.timezone.utc)), "answer_due_at": shop_time(due), "customer_id": "C000001"}
    from bot.redis_server import free_port

    down = f"http://127.0.0.1:{free_port()}"
    ticket_id = promise(redis_url, clock, down, urge, "conv-urge-down")
    clock.advance(31 * 60)
    poll = lambda ctx, c: carrier_urges.poll_due(ctx, c, (CRMError,))  # noqa: E731
    assert run(redis_url, clock, poll, down).counts == {"retry": 1} and outbox_texts(redis_url, "conv-urge-down") == []
    clock.advance(carrier_urges.CRM_GRACE_S)
    assert run(redis_url, clock, poll, down).counts == {"overdue": 1}
    (message,) = outbox_texts(redis_url, "conv-urge-down")
    assert message["text"].startswith("非常抱歉，您的订单 202611150023 的催件，顺丰速运没有在承诺的") and ticket_id in message["text"]


# ------------------------------------------------------------------------------ several desks
def test_two_workers_at_once_tell_the_shopper_once(crm_clock, redis_url: str) -> None:
    crm, clock = crm_clock
    urges = [urge_with_outcome(crm, clock, outcome) for outcome in ("scan", "reason")]
    senders = [f"conv-urge-twice-{n}" for n in range(len(urges))]
    for urge, sender in zip(urges, senders, strict=False):
        promise(redis_url, clock, crm.base_url, urge, sender)
    clock.advance_past(max(parse(urge["answer_due_at"]) for urge in urges) - dt.timedelta(seconds=1))

    async def two_desks(ctx: HandoffContext, crm_client: CRMClient) -> List[carrier_urges.PollResult]:
        other = Redis.from_url(redis_url, decode_responses=True)
        try:
            second = dataclasses.replace(ctx, redis=other)
            return list(await asyncio.gather(carrier_urges.poll_due(ctx, crm_client, (CRMError,)),
                                             carrier_urges.poll_due(second, crm_client, (CRMError,))))
        finally:
            await other.close()

    results = run(redis_url, clock, two_desks, crm.base_url)
    assert sum(result.counts.get("answered", 0) for result in results) == 2
    assert [len(outbox_texts(redis_url, sender)) for sender in senders] == [1, 1]


# ------------------------------------------------------------------------------------ the desk
def test_the_desk_tells_an_overdue_urge_and_an_agent_answers_it(redis_url: str, start_desk, tmp_path: Path) -> None:
    from tests.support.waiting import wait_for

    with crm_with_clock("sqlite", tmp_path / "crm") as (crm, clock):
        # The CRM's clock runs three hours behind: an urge due in an hour by its clock was due two
        # hours ago by the desk's, which runs on the real time.
        clock.advance(-3 * 3600)
        urge = urge_with_outcome(crm, clock, "none", hours=1)
        sender = "conv-urge-desk"
        ticket_id = run(redis_url, None, lambda ctx, c: carrier_urges.promise(ctx, urge, sender), crm.base_url)
        assert ticket_id is not None
        desk = start_desk(agents=("agent1", "supervisor1"), desk_env={"CRM_URL": crm.base_url, "CRM_API_KEY": API_KEY})
        for name in ("agent1", "supervisor1"):
            desk.login(name)

        # the desk's worker (its first pass runs at start) tells the shopper once
        (apology,) = wait_for(lambda: outbox_texts(redis_url, sender), timeout_s=20)
        assert apology["text"].startswith(f"非常抱歉，您的订单 {urge['order_id']} 的催件，{urge['carrier_name']}没有在承诺的")
        assert f"已为您转人工跟进（工单 {ticket_id}）" in apology["text"]
        assert desk.call("GET", "/api/tickets/overdue", "agent1") == (200, {"overdue": {"callbacks": 0, "reviews": 0, "carrier_urges": 1}})
        status, metrics = desk.call("GET", "/api/metrics", "supervisor1")
        assert status == 200 and metrics["overdue_tickets"]["carrier_urges"] == 1
        status, listed = desk.call("GET", "/api/carrier-urges", "agent1")
        assert status == 200 and [(t["ticket_id"], t["status"], t["overdue"]) for t in listed["tickets"]] == [(ticket_id, "overdue", True)]
        assert "claim" not in listed["tickets"][0] and listed["tickets"][0]["sender"] == sender

        # refusals
        assert desk.call("GET", "/api/carrier-urges/not-a-ticket", "agent1")[1]["error"]["code"] == "invalid_ticket"
        status, body = desk.call("GET", f"/api/carrier-urges/u{'0' * 24}", "agent1")
        assert (status, body["error"]["code"]) == (404, "not_found")
        status, body = desk.call("POST", f"/api/carrier-urges/{ticket_id}/answer", "agent1", {"text": "  "})
        assert (status, body["error"]["code"]) == (400, "invalid_text")
        assert desk.call("GET", "/api/carrier-urges", "")[0] == 401

        # the agent answers in the shopper's conversation; the ticket is settled
        reply = "您好，已联系顺丰速运加急处理，快件今天会优先派送。"
        status, body = desk.call("POST", f"/api/carrier-urges/{ticket_id}/answer", "agent1", {"text": reply})
        assert (status, body) == (200, {"status": "closed", "ticket_id": ticket_id})
        messages = outbox_texts(redis_url, sender)
        assert [(m["text"], m["from"]) for m in messages] == [(apology["text"], "system"), (reply, "agent")] and messages[1]["agent"] == "小王"
        assert desk.call("GET", "/api/tickets/overdue", "agent1")[1]["overdue"]["carrier_urges"] == 0
        status, body = desk.call("POST", f"/api/carrier-urges/{ticket_id}/answer", "agent1", {"text": reply})
        assert (status, body["error"]["code"]) == (409, "done")
        status, shown = desk.call("GET", f"/api/carrier-urges/{ticket_id}", "agent1")
        assert status == 200 and (shown["ticket"]["status"], shown["ticket"]["closed_by"]) == ("closed", "agent1")


def test_a_malformed_ticket_does_not_stop_the_others(crm_clock, redis_url: str) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "reason")
    promise(redis_url, clock, crm.base_url, urge, "conv-urge-good")
    broken = "u" + "f" * 24
    client = sync_client(redis_url)
    client.hset(carrier_urges.ticket_key(broken), mapping={"ticket_id": broken, "sender": "conv-urge-broken", "order_id": urge["order_id"],
                                                          "urge_id": "not-a-number", "status": "waiting", "due_at": "0"})
    client.zadd(carrier_urges.WAITING, {broken: 0})
    clock.advance_past(parse(urge["answer_due_at"]) - dt.timedelta(seconds=1))
    result = run(redis_url, clock, lambda ctx, c: carrier_urges.poll_due(ctx, c, (CRMError,)), crm.base_url)
    assert result.counts == {"failed": 1, "answered": 1}
    assert len(outbox_texts(redis_url, "conv-urge-good")) == 1 and outbox_texts(redis_url, "conv-urge-broken") == []


def test_a_warehouse_answer_is_told_as_the_warehouses(crm_clock, redis_url: str) -> None:
    from crm.carrier import outcome_of
    from crm.tests.test_api import query

    crm, clock = crm_clock
    rows = query(crm, "SELECT order_id FROM orders WHERE status = 'awaiting_shipment' AND customer_id > 'C000009' ORDER BY order_id DESC")
    for (order_id,) in rows[:20]:
        status, urge = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": shop_time(clock.now() + dt.timedelta(hours=2))})
        if status == 201 and outcome_of(urge["urge_id"], "warehouse") == "reason":
            break
    else:
        raise AssertionError("no warehouse urge with a reason among 20 orders")
    sender = "conv-urge-warehouse"
    promise(redis_url, clock, crm.base_url, urge, sender)
    clock.advance_past(parse(urge["answer_due_at"]) - dt.timedelta(seconds=1))
    result, received = run(redis_url, clock, lambda ctx, c: delivered_to_channel(ctx, c, sender), crm.base_url)
    answer = next(item for item in crm.ok(f"/api/orders/{order_id}/urges")["items"] if item["urge_id"] == urge["urge_id"])["answer"]
    assert result.counts == {"answered": 1}
    assert received == [
        f"关于您的订单 {order_id} 的催件，仓库已于 {shop_clock(answer['answered_at'], clock.now())} 回复："
        f"延误原因是{answer['reason']['label']}，{answer['reason']['detail']}。给您带来不便，非常抱歉；{FOLLOW_UP}"
    ]
