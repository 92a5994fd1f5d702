"""A callback ticket and the live conversation: the shopper who comes back while agents are online is
queued with the ticket (once), an agent answering the ticket takes that conversation, and completing
the ticket ends the live conversation held by that agent the normal way (outcome, rating prompt)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, List, Optional

import pytest

from bot.outbox import outbox_key
from desk.tests import test_callback_tickets
from desk.tests.test_callbacks import closed_hours
from handoff import agents, callbacks, keys, queue, texts, tickets
from handoff.context import HandoffContext
from handoff.models import CallbackTicket, HandoffRequest
from tests.support.desk import DeskProcess, write_policy
from tests.support.handoff import run, sync_client
from tests.support.waiting import wait_for

StartDesk = Callable[..., DeskProcess]


def ticket_for(sender: str, customer_id: Optional[str] = "C000001") -> CallbackTicket:
    now = time.time()
    return CallbackTicket(callback_id=keys.new_callback_id(), sender=sender, customer_id=customer_id, phone_masked="138****0000",
                          tier="L2", reason="unclaimed", summary={"wanted": ["查询退款进度"], "tier_name": "铜牌会员"},
                          summary_text="【转人工摘要】顾客想知道退款进度", window_start=now + 3600, window_end=now + 7200, created_at=now)


def requests(redis_url: str) -> List[HandoffRequest]:
    return [HandoffRequest.from_json(fields["payload"]) for _, fields in sync_client(redis_url).xrange(keys.REQUESTS_STREAM)]


def outbox(redis_url: str, sender: str) -> List[dict]:
    return [json.loads(fields["message"]) for _, fields in sync_client(redis_url).xrange(outbox_key(sender))]


def test_a_returning_shopper_is_queued_once_with_the_ticket(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    ticket = ticket_for("conv-back")

    async def scenario(ctx: HandoffContext) -> List[object]:
        assert await callbacks.create_callback(ctx, ticket)
        await agents.heartbeat(ctx, "agent1")
        back = await tickets.resume(ctx, ticket.sender, "我回来了，退款还没到", "C000001", "app")
        again = await tickets.resume(ctx, ticket.sender, "还在吗", "C000001", "app")  # the handoff has the conversation now
        (request,) = requests(redis_url)
        await queue.materialize(ctx, request)
        record = (await queue.records(ctx, [request.handoff_id]))[0]
        return [back, again, request, record]

    back, again, request, record = run(redis_url, policy, scenario)
    assert back is not None and again is None
    routed, callback_id = back
    assert callback_id == ticket.callback_id and routed.handoff_id == request.handoff_id and routed.status == "pending"
    client = sync_client(redis_url)
    assert client.get(keys.active(ticket.sender)) == request.handoff_id
    stored = client.hgetall(keys.callback(ticket.callback_id))
    assert stored["status"] == "open"  # still owed until an agent completes it
    assert stored[tickets.LIVE_FIELD] == stored[tickets.RESUMED_FIELD] == request.handoff_id
    # The agent gets the ticket's context: its summary headed by the ticket, its reason and tier.
    assert (request.customer_id, request.tier, request.reason, request.channel) == ("C000001", "L2", "unclaimed", "app")
    assert request.summary["callback_id"] == ticket.callback_id and request.summary["wanted"] == ["查询退款进度"]
    first, second = record["summary_text"].split("\n", 1)
    assert first.startswith(f"【回访工单 {ticket.callback_id}（预约回访 ") and second == ticket.summary_text
    assert record["status"] == "queued"
    lines = [(fields["from"], fields["text"]) for _, fields in client.xrange(keys.transcript(request.handoff_id))]
    assert lines[0][0] == "system" and lines[0][1].startswith(f"顾客回到对话，回访工单 {ticket.callback_id}（")
    assert lines[1] == ("shopper", "我回来了，退款还没到")


def test_the_transcript_line_names_the_ticket_reason_and_window(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    ticket = ticket_for("conv-back-line")

    async def scenario(ctx: HandoffContext) -> str:
        await callbacks.create_callback(ctx, ticket)
        await agents.heartbeat(ctx, "agent1")
        routed, _ = await tickets.resume(ctx, ticket.sender, "在吗", "C000001", "web")
        record = await tickets.ticket(ctx, ticket.callback_id)
        window = texts.window(ctx.local(record["window_start"]), ctx.local(record["window_end"]), ctx.local(ctx.now()))
        expected = texts.say("transcript_callback_resumed", callback_id=ticket.callback_id,
                             reason=ctx.policy.reasons.get("unclaimed", "unclaimed"), window=window)
        (entry_id, fields), *_ = await ctx.redis.xrange(keys.transcript(routed.handoff_id))
        assert fields["text"] == expected
        return expected

    assert "随本次会话转给客服" in run(redis_url, policy, scenario)


@pytest.mark.parametrize("case", ["no_agent", "closed", "other_customer", "anonymous_now", "done"])
def test_otherwise_the_bot_answers(redis_url: str, tmp_path: Path, case: str):
    policy = write_policy(tmp_path / "service.yml", **({"opening_hours": closed_hours()} if case == "closed" else {}))
    ticket = ticket_for(f"conv-back-{case}")
    writer = {"other_customer": "C000002", "anonymous_now": None}.get(case, "C000001")

    async def scenario(ctx: HandoffContext) -> object:
        await callbacks.create_callback(ctx, ticket)
        if case != "no_agent":
            await agents.heartbeat(ctx, "agent1")
        if case == "done":
            assert (await callbacks.complete_callback(ctx, ticket.callback_id, "agent1", "resolved", "")).ok
        return await tickets.resume(ctx, ticket.sender, "我回来了", writer, "app")

    assert run(redis_url, policy, scenario) is None
    client = sync_client(redis_url)
    assert client.get(keys.active(ticket.sender)) is None and client.xlen(keys.REQUESTS_STREAM) == 0
    assert tickets.RESUMED_FIELD not in client.hgetall(keys.callback(ticket.callback_id))  # a later message may still resume it


def test_a_shopper_who_cancels_talks_to_the_bot_and_the_ticket_stays(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    ticket = ticket_for("conv-back-cancel")

    async def scenario(ctx: HandoffContext) -> List[object]:
        await callbacks.create_callback(ctx, ticket)
        await agents.heartbeat(ctx, "agent1")
        routed, _ = await tickets.resume(ctx, ticket.sender, "我回来了", "C000001", "app")
        (request,) = requests(redis_url)
        await queue.materialize(ctx, request)
        cancelled = await queue.cancel(ctx, ticket.sender, routed.handoff_id, "取消人工")
        return [cancelled, await tickets.resume(ctx, ticket.sender, "查一下物流", "C000001", "app")]

    cancelled, later = run(redis_url, policy, scenario)
    assert cancelled == "ok" and later is None  # resumed once: the bot answers from now on
    assert sync_client(redis_url).hget(keys.callback(ticket.callback_id), "status") == "open"


desk = test_callback_tickets.desk
"""The fixture: a desk with agent1 and agent2 logged in."""


def resumed(desk: DeskProcess, sender: str, customer_id: str = "C000001") -> tuple:
    """A ticket booked for ``sender`` and the shopper back in the conversation; (ticket id, handoff id) once the desk queued it."""
    ticket = ticket_for(sender, customer_id)

    async def back(ctx: HandoffContext) -> str:
        await callbacks.create_callback(ctx, ticket)
        routed, _ = await tickets.resume(ctx, sender, "我回来了，退款还没到", customer_id, "app")
        return routed.handoff_id

    handoff_id = run(desk.redis_url, desk.policy_file, back)
    wait_for(lambda: sync_client(desk.redis_url).hget(keys.record(handoff_id), "status") == "queued")
    return ticket.callback_id, handoff_id


def test_an_agent_answering_the_ticket_takes_the_waiting_conversation(desk: DeskProcess):
    callback_id, handoff_id = resumed(desk, "conv-back-answer")
    status, body = desk.call("POST", f"/api/callbacks/{callback_id}/messages", "agent1", {"text": "您好，我是小王，马上为您查退款。"})
    assert status == 201 and body["handoff_id"] == handoff_id, body
    record = sync_client(desk.redis_url).hgetall(keys.record(handoff_id))
    assert (record["status"], record["agent"]) == ("assigned", "agent1")
    status, view = desk.call("GET", f"/api/callbacks/{callback_id}", "agent1")
    said = [(e["from"], e["text"]) for e in view["exchange"]]
    assert ("shopper", "我回来了，退款还没到") in said and said[-1] == ("agent", "您好，我是小王，马上为您查退款。")
    status, conv = desk.call("GET", "/api/conversations/conv-back-answer", "agent1")
    assert status == 200 and conv["summary_text"].startswith(f"【回访工单 {callback_id}")


def test_completing_the_ticket_ends_the_live_conversation_the_normal_way(desk: DeskProcess):
    sender = "conv-back-complete"
    callback_id, handoff_id = resumed(desk, sender)
    assert desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")[0] == 200
    status, done = desk.call("POST", f"/api/callbacks/{callback_id}/complete", "agent1", {"code": "refund_arranged", "note": ""})
    assert status == 200, done
    client = sync_client(desk.redis_url)
    record = client.hgetall(keys.record(handoff_id))
    assert (record["status"], record["resolution_code"]) == ("resolved", "refund_arranged")
    assert client.get(keys.active(sender)) is None and client.get(keys.rating_pending(sender)) == handoff_id
    told = [m["text"] for m in outbox(desk.redis_url, sender)]
    assert told[-2:] == [texts.resolved("小王", "已安排退款"), texts.rating_prompt("小王")]
    assert client.hget(keys.callback(callback_id), "status") == "done"


def test_completing_leaves_a_conversation_another_agent_holds_or_one_still_waiting(desk: DeskProcess):
    held_sender, waiting_sender = "conv-back-other", "conv-back-waiting"
    held_ticket, held = resumed(desk, held_sender)
    waiting_ticket, waiting = resumed(desk, waiting_sender, "C000002")  # another customer: C000001 is in a live handoff
    assert desk.call("POST", f"/api/conversations/{held_sender}/claim", "agent2")[0] == 200
    for callback_id in (held_ticket, waiting_ticket):
        assert desk.call("POST", f"/api/callbacks/{callback_id}/complete", "agent1", {"code": "resolved", "note": ""})[0] == 200
    client = sync_client(desk.redis_url)
    assert client.hget(keys.record(held), "status") == "assigned" and client.hget(keys.record(held), "agent") == "agent2"
    assert client.hget(keys.record(waiting), "status") == "queued"
    assert client.get(keys.active(held_sender)) == held and client.get(keys.active(waiting_sender)) == waiting


def test_after_the_agents_answer_ended_the_shopper_talks_to_the_bot(desk: DeskProcess):
    sender = "conv-back-after-answer"
    ticket = ticket_for(sender)
    run(desk.redis_url, desk.policy_file, lambda ctx: callbacks.create_callback(ctx, ticket))
    assert desk.call("POST", f"/api/callbacks/{ticket.callback_id}/messages", "agent1", {"text": "您好，退款已到账。"})[0] == 201
    assert desk.call("POST", f"/api/conversations/{sender}/resolve", "agent1", {"code": "resolved"})[0] == 200
    # The ticket is still open (nobody completed it), but its conversation happened: the rating goes to the bot.
    assert run(desk.redis_url, desk.policy_file, lambda ctx: tickets.resume(ctx, sender, "5分", "C000001", "app")) is None
    assert sync_client(desk.redis_url).get(keys.active(sender)) is None
