"""Callback tickets and live conversations: an agent answers a ticket in the shopper's own
conversation, a shopper who comes back is queued with it, and completing it ends the conversation.

The first message an agent writes on an open callback ticket turns the ticket into a live handoff
held by that agent: the handoff is queued and claimed through the same steps as any handoff
(:func:`handoff.queue.enqueue`, :func:`~handoff.queue.materialize`,
:func:`~handoff.queue.claim`) and the message goes out through the agent-reply path
(:func:`handoff.conversation.agent_message`), which writes it to the transcript and to the
outbox of every channel the conversation lives on. From then on the shopper's answer, from any
of those channels, reaches that agent's conversation (:func:`~handoff.conversation.route_shopper_message`),
with the ticket's summary as its context.

A shopper who writes again in the conversation of an open ticket, while the service is open and an
agent is online, is queued for an agent with the ticket (:func:`resume`): the normal admission of
the channels (:data:`handoff.express.EXPRESS_ENQUEUE`: an agent online and the conversation free,
checked and queued in one step), the ticket's summary headed by its number and window, a transcript
line for the agent, and the message itself in that transcript. That happens once per ticket, and
not after an agent's answer opened its conversation: a shopper who cancels the queue (「取消人工」),
or whose conversation about it ended, talks to the bot again, and the ticket stays open for its
callback. An explicit 「转人工」 the channel queues itself gets the ticket attached the same way
(:func:`attach`). An agent answering the ticket while that handoff waits claims it.

The ticket stays open, with the live handoff's id, until an agent completes it with a resolution
code; then a live handoff held by that agent ends the normal way (:func:`handoff.callbacks.end_live`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

from handoff import callbacks, carrier_urges, conversation, keys, queue, reviews, texts
from handoff.context import HandoffContext
from handoff.conversation import OpResult, RoutedMessage, script
from handoff.express import EXPRESS_ENQUEUE, express_args, express_keys
from handoff.models import HandoffRequest
from handoff.policy import is_open

LIVE_FIELD = callbacks.LIVE_FIELD
"""The ticket's field naming its live handoff (opened by an agent's answer or by the shopper's return)."""
RESUMED_FIELD = "resumed_handoff"
"""The ticket's field naming the handoff the shopper's return queued (set once per ticket)."""


async def ticket(ctx: HandoffContext, callback_id: str) -> Optional[Dict[str, Any]]:
    """The decoded ticket (:func:`handoff.callbacks.decode_ticket`), None when unknown."""
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
        if found and found[0].get("status") == "queued":  # the shopper came back and waits: this agent takes it
            await ctx.redis.hset(keys.record(live), mapping={"offered_to": agent, "offer_until": repr(ctx.now() + 60)})
            claimed = await queue.claim(ctx, str(record["sender"]), agent, agent_name)
            return OpResult("ok", live) if claimed.status == "ok" else OpResult(claimed.status, claimed.detail)
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


async def open_ticket_of(ctx: HandoffContext, sender: str, customer_id: Optional[str]) -> Optional[Dict[str, Any]]:
    """The conversation's latest callback ticket when it is open, is this shopper's (the same verified
    customer, or anonymous both) and has had no live conversation yet (the shopper's return, or an
    agent's answer: after that one ends, the shopper's next words, a rating say, are the bot's); None otherwise."""
    callback_id = await ctx.redis.get(callbacks.by_sender(sender))
    record = await ticket(ctx, callback_id) if callback_id and keys.CALLBACK_ID.fullmatch(callback_id) else None
    if record is None or record.get("status") != "open" or record.get("sender") != sender:
        return None
    if record.get(RESUMED_FIELD) or record.get(LIVE_FIELD):
        return None
    if (record.get("customer_id") or None) != (customer_id or None):
        return None  # another identity writes in this conversation: the ticket's context is not theirs
    return record


def resumed_request(ctx: HandoffContext, record: Dict[str, Any], handoff_id: str, now: float, channel: str) -> HandoffRequest:
    """The handoff a shopper's return opens: the ticket's request, its summary headed by the ticket."""
    base = request_for({**record, "channel": channel}, handoff_id, now)
    head = texts.say("summary_callback_resumed", callback_id=record["callback_id"], window=_window(ctx, record, now))
    summary = {**base.summary, "callback_id": record["callback_id"]}
    return dataclasses.replace(base, summary=summary, summary_text=f"{head}\n{base.summary_text}".strip())


def _window(ctx: HandoffContext, record: Dict[str, Any], now: float) -> str:
    start, end = (ctx.local(float(record.get(name) or now)) for name in ("window_start", "window_end"))
    return texts.window(start, end, ctx.local(now))


def _reason(ctx: HandoffContext, record: Dict[str, Any]) -> str:
    reason = str(record.get("reason") or "requested")
    return str(ctx.policy.reasons.get(reason, reason))


async def _link(ctx: HandoffContext, record: Dict[str, Any], handoff_id: str, line: str) -> None:
    """Attach a ticket to a live handoff of its conversation: the ticket names it, the transcript says so."""
    callback_id = record["callback_id"]
    await ctx.redis.hset(keys.callback(callback_id), LIVE_FIELD, handoff_id)
    await conversation.system_notice(ctx, handoff_id, record["sender"], texts.say(
        line, callback_id=callback_id, reason=_reason(ctx, record), window=_window(ctx, record, ctx.now())))
    await conversation.publish(ctx, "callback_resumed", callback_id=callback_id, handoff_id=handoff_id, sender=record["sender"])


async def resume(ctx: HandoffContext, sender: str, text: str, customer_id: Optional[str], channel: str,
                 message_id: str = "") -> Optional[Tuple[RoutedMessage, str]]:
    """Queue a returning shopper with their open callback ticket, and their message with it.

    Called for a message the bot would otherwise answer (no handoff has the conversation).

    Returns:
        Where the message went (``queued``) and the ticket's id, or None when the bot answers it: no open ticket of this
        shopper in the conversation, it was resumed before, the service is closed, no agent is
        online, or another handoff has the conversation (or the customer's, on another channel).

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    record = await open_ticket_of(ctx, sender, customer_id)
    now = ctx.now()
    if record is None or not is_open(ctx.policy, ctx.local(now), ctx.tz):
        return None
    handoff_id = keys.new_handoff_id()
    ticket_key = keys.callback(record["callback_id"])
    if not await ctx.redis.hsetnx(ticket_key, RESUMED_FIELD, handoff_id):
        return None  # another message of the shopper's resumed it just now
    request = resumed_request(ctx, record, handoff_id, now, channel)
    queued = int(await script(ctx.redis, EXPRESS_ENQUEUE)(keys=express_keys(sender, customer_id), args=express_args(request)))
    if queued != 1:  # nobody online, or the conversation is taken: the bot answers, a later message may try again
        await ctx.redis.hdel(ticket_key, RESUMED_FIELD)
        return None
    await _link(ctx, record, handoff_id, "transcript_callback_resumed")
    routed = await conversation.route_shopper_message(ctx, sender, text, customer_id, channel, message_id)
    return (routed, str(record["callback_id"])) if routed is not None else None


async def attach(ctx: HandoffContext, sender: str, customer_id: Optional[str], handoff_id: str) -> bool:
    """Attach the conversation's open callback ticket to the handoff the channel just queued for an
    explicit 「转人工」 (the bot's turn completes its summary); True when there was one."""
    record = await open_ticket_of(ctx, sender, customer_id)
    if record is None or not await ctx.redis.hsetnx(keys.callback(record["callback_id"]), RESUMED_FIELD, handoff_id):
        return False
    await _link(ctx, record, handoff_id, "transcript_callback_joined")
    return True


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
