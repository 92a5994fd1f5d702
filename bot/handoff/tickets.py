"""An agent answers a callback ticket in the shopper's own conversation.

The first message an agent writes on an open callback ticket turns the ticket into a live handoff
held by that agent: the handoff is queued and claimed through the same steps as any handoff
(:func:`bot.handoff.queue.enqueue`, :func:`~bot.handoff.queue.materialize`,
:func:`~bot.handoff.queue.claim`) and the message goes out through the agent-reply path
(:func:`bot.handoff.conversation.agent_message`), which writes it to the transcript and to the
outbox of every channel the conversation lives on. From then on the shopper's answer, from any
of those channels, reaches that agent's conversation (:func:`~bot.handoff.conversation.route_shopper_message`),
with the ticket's summary as its context. The ticket stays open, with the handoff's id, until an
agent completes it with a resolution code.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from bot.handoff import callbacks, carrier_urges, conversation, keys, queue, reviews
from bot.handoff.context import HandoffContext
from bot.handoff.conversation import OpResult
from bot.handoff.models import HandoffRequest

LIVE_FIELD = "live_handoff"
"""The ticket's field naming the handoff an agent opened by answering it."""


async def ticket(ctx: HandoffContext, callback_id: str) -> Optional[Dict[str, Any]]:
    """The decoded ticket (:func:`bot.handoff.callbacks.decode_ticket`), None when unknown."""
    raw = await ctx.redis.hgetall(keys.callback(callback_id))
    return callbacks.decode_ticket(raw, ctx.now()) if raw else None


def request_for(record: Dict[str, Any], handoff_id: str, now: float) -> HandoffRequest:
    """The handoff request that reopens a callback ticket's conversation with its context."""
    summary = record.get("summary") or {}
    return HandoffRequest(
        handoff_id=handoff_id,
        sender=record["sender"],
        customer_id=record.get("customer_id") or None,
        tier=record.get("tier") or None,
        tier_name=str(summary.get("tier_name") or ""),
        reason=record.get("reason") or "requested",
        intents=list(summary.get("intents") or []) if isinstance(summary, dict) else [],
        summary=summary if isinstance(summary, dict) else {},
        summary_text=record.get("summary_text") or "",
        enqueued_at=now,
        channel=str(record.get("channel") or "app"),
    )


async def open_live(ctx: HandoffContext, record: Dict[str, Any], agent: str, agent_name: str) -> OpResult:
    """The handoff an agent holds for a ticket: reused when it is theirs, opened and claimed once otherwise."""
    callback_id = record["callback_id"]
    live = record.get(LIVE_FIELD) or ""
    if live:
        found = await queue.records(ctx, [live])
        if found and found[0].get("status") == "assigned":
            owner = str(found[0].get("agent") or "")
            return OpResult("ok", live) if owner == agent else OpResult("not_yours", owner)
    handoff_id = keys.new_handoff_id()
    if not await ctx.redis.hsetnx(keys.callback(callback_id), f"{LIVE_FIELD}:{live or 'none'}", handoff_id):
        return OpResult("busy")  # another agent is opening it right now
    request = request_for(record, handoff_id, ctx.now())
    created, active = await queue.enqueue(ctx, request)
    if not created:
        return OpResult("in_conversation", active)
    await queue.materialize(ctx, request)
    # The ticket is this agent's to answer: no sticky offer to an earlier agent stands in the way.
    await ctx.redis.hset(keys.record(handoff_id), mapping={"offered_to": agent, "offer_until": repr(ctx.now() + 60)})
    claimed = await queue.claim(ctx, request.sender, agent, agent_name)
    if claimed.status != "ok":
        return OpResult(claimed.status, claimed.detail)
    await ctx.redis.hset(keys.callback(callback_id), LIVE_FIELD, handoff_id)
    await conversation.system_notice(ctx, handoff_id, request.sender, f"由回访工单 {callback_id} 转为人工会话")
    return OpResult("ok", handoff_id)


async def answer(ctx: HandoffContext, callback_id: str, agent: str, agent_name: str, text: str, client_id: str = "") -> OpResult:
    """Send an agent's message on a callback ticket.

    Returns:
        ``ok`` with the handoff id and the reply's data; ``not_found``, ``done`` (completed, by whom),
        ``not_yours`` (another agent holds its conversation), ``in_conversation`` (the shopper is in
        another live handoff), ``busy``, or a refusal of the claim (``at_capacity`` ...).
    """
    if client_id and not keys.CLIENT_ID.fullmatch(client_id):
        return OpResult("invalid_client_id")
    record = await ticket(ctx, callback_id)
    if record is None:
        return OpResult("not_found")
    if record.get("status") != "open":
        return OpResult("done", str(record.get("done_by") or ""))
    opened = await open_live(ctx, record, agent, agent_name)
    if not opened.ok:
        return opened
    result = await conversation.agent_message(ctx, record["sender"], agent, agent_name, text, client_id=client_id)
    if not result.ok:
        return result
    await conversation.publish(ctx, "callback_message", callback_id=callback_id, handoff_id=opened.detail, agent=agent)
    return OpResult("ok", opened.detail, handoff_id=opened.detail, data=result.data)


async def exchange(ctx: HandoffContext, record: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The messages of a ticket's conversation since an agent answered it (empty before)."""
    live = record.get(LIVE_FIELD) or ""
    return await conversation.transcript(ctx, live) if live else []



async def overdue_counts(ctx: HandoffContext) -> Dict[str, int]:
    """Open tickets past their due time, by kind (the desk's metrics and its Prometheus page read this)."""
    now = ctx.now()
    return {
        "callbacks": int(await ctx.redis.zcount(keys.CALLBACKS_OPEN, "-inf", f"({now}")),
        "reviews": await reviews.overdue_count(ctx),
        "carrier_urges": await carrier_urges.overdue_count(ctx),
    }
