"""Callback tickets: a promise to contact the shopper within a concrete window, with a due time the
desk shows (overdue ones highlighted) until an agent marks it done."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from bot import pii
from bot.outbox import outbox_key
from handoff import keys, scripts, texts, windows
from handoff.context import HandoffContext
from handoff.conversation import OpResult, outbox_message, publish, script
from handoff.models import CallbackTicket
from handoff.policy import queued_since

logger = logging.getLogger(__name__)


LIVE_FIELD = "live_handoff"
"""The ticket's field naming the live handoff of its conversation: the one an agent opened by
answering it, or the one the shopper's return queued (:mod:`handoff.tickets`)."""


by_sender = keys.callback_by_sender


async def remember(ctx: HandoffContext, sender: str, callback_id: str) -> None:
    """Note a new ticket as its conversation's latest, so the shopper's return finds it (:func:`handoff.tickets.resume`)."""
    await ctx.redis.set(by_sender(sender), callback_id, ex=ctx.outbox_ttl_s)


async def create_callback(ctx: HandoffContext, ticket: CallbackTicket) -> bool:
    """Record a callback ticket (once per id).

    Returns:
        True when created, False when a ticket with this id already existed.
    """
    created = await script(ctx.redis, scripts.CREATE_CALLBACK)(
        keys=[keys.callback(ticket.callback_id), keys.CALLBACKS_OPEN, keys.day_stats(ctx.day(ticket.created_at))],
        args=[ticket.callback_id, repr(ticket.window_end), json.dumps(ticket.fields(), ensure_ascii=False), ticket.reason, scripts.STATS_TTL_S],
    )
    if int(created):
        await remember(ctx, ticket.sender, ticket.callback_id)
        await publish(ctx, "callback", callback_id=ticket.callback_id, sender=ticket.sender)
    return bool(int(created))


def decode_ticket(raw: Dict[str, str], now: float) -> Dict[str, Any]:
    """A ticket hash with numbers decoded and ``overdue`` / ``due_in_s`` computed."""
    out: Dict[str, Any] = dict(raw)
    for name in ("window_start", "window_end", "created_at", "done_at"):
        if raw.get(name):
            try:
                out[name] = float(raw[name])
            except ValueError:
                out[name] = None
    out["after_sales"] = raw.get("after_sales") == "1"
    try:
        out["summary"] = json.loads(raw.get("summary") or "null")
    except ValueError:
        out["summary"] = None
    end = out.get("window_end") or 0.0
    out["overdue"] = raw.get("status") == "open" and now > end
    out["due_in_s"] = round(end - now, 1)
    return out


async def list_callbacks(ctx: HandoffContext, include_done: bool = False, limit: int = 200) -> List[Dict[str, Any]]:
    """Open tickets by due time (earliest first), then, if asked, the most recently completed ones."""
    ids = list(await ctx.redis.zrange(keys.CALLBACKS_OPEN, 0, limit - 1))
    if include_done:
        ids += list(await ctx.redis.zrevrange(keys.CALLBACKS_DONE, 0, limit - 1))
    if not ids:
        return []
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for callback_id in ids:
            pipe.hgetall(keys.callback(callback_id))
        raw = await pipe.execute()
    now = ctx.now()
    return [decode_ticket(r, now) for r in raw if r]


async def complete_callback(ctx: HandoffContext, callback_id: str, agent: str, code: str, note: str) -> OpResult:
    """Mark a ticket done; ``not_found`` or ``done`` (already, with who) otherwise.

    The agent's note is kept masked (:func:`bot.pii.mask_text`): a number or address the agent
    noted down stays in the CRM, not in the ticket. When the ticket's live handoff is open and held
    by this agent, it ends the normal way with the same resolution code (:func:`end_live`): the
    shopper reads the outcome and is asked for a rating; ``detail`` is then ``resolved``.
    """
    now = ctx.now()
    status, detail = (
        str(part)
        for part in await script(ctx.redis, scripts.COMPLETE_CALLBACK)(
            keys=[keys.callback(callback_id), keys.CALLBACKS_OPEN, keys.CALLBACKS_DONE, keys.day_stats(ctx.day(now))],
            args=[callback_id, agent, repr(now), code, pii.mask_text(note), scripts.STATS_TTL_S, ctx.outbox_ttl_s],
        )
    )
    if status != "ok":
        return OpResult(status, detail)
    await publish(ctx, "callback_done", callback_id=callback_id, agent=agent)
    return OpResult("ok", "resolved" if await end_live(ctx, callback_id, agent, code) else "")


async def end_live(ctx: HandoffContext, callback_id: str, agent: str, code: str) -> bool:
    """End a completed ticket's live handoff the normal way (:func:`handoff.queue.resolve`) when
    this agent holds it and it still has the conversation.

    A live handoff another agent holds stays theirs (they end it, with their own code), and one still
    waiting in the queue stays there: the shopper came back and wrote, and waits for an agent about
    it; ending either over their heads would surprise them.

    Returns:
        True when the live handoff ended.
    """
    from handoff.queue import resolve  # the queue reads this module

    raw = await ctx.redis.hmget(keys.callback(callback_id), ["sender", LIVE_FIELD])
    sender, live = raw[0] or "", raw[1] or ""
    if not live or await ctx.redis.get(keys.active(sender)) != live:
        return False
    record = await ctx.redis.hmget(keys.record(live), ["status", "agent", "agent_name"])
    if record[0] != "assigned" or record[1] != agent:
        return False
    ended = await resolve(ctx, sender, agent, record[2] or agent, code)
    if ended.ok:
        logger.info("handoff.callback.live_ended callback=%s handoff=%s agent=%s", callback_id, live, agent)
    return ended.ok


CONVERSIONS = {
    "closed": (texts.closed_while_waiting, "transcript_why_closed", ""),
    "unattended": (texts.unattended_while_waiting, "transcript_why_unattended", ""),
    "unclaimed": (texts.unclaimed_while_waiting, "transcript_why_unclaimed", "callbacks_unclaimed"),
}
"""Why waiting handoffs become callbacks: the shopper's notice, the agents' transcript reason (a text of
``handoff/texts.yml``), the day counter."""


def ticket_for(record: Dict[str, Any], window: Tuple[datetime, datetime], now: float, callback_id: str = "") -> CallbackTicket:
    """The callback ticket that takes over a decoded handoff record, in a given window."""
    start, end = window
    return CallbackTicket(
        callback_id=callback_id or keys.new_callback_id(),
        sender=record["sender"],
        customer_id=record.get("customer_id") or None,
        phone_masked=phone_of(record.get("summary")),
        tier=record.get("tier") or None,
        reason=record.get("reason") or "requested",
        summary=record.get("summary") or {},
        summary_text=record.get("summary_text") or "",
        window_start=start.timestamp(),
        window_end=end.timestamp(),
        created_at=now,
        after_sales=bool(record.get("after_sales")),
        source_handoff=record["handoff_id"],
    )


async def queued_to_callbacks(ctx: HandoffContext, waited_s: float = 0.0, why: Optional[str] = None) -> int:
    """Turn waiting handoffs into callbacks with a concrete window and give the bot back the chat.

    Used when the desk has closed (``closed``: every waiting handoff), when nobody has been online
    for a while (``unattended``) and when nobody claimed a handoff in time (``unclaimed``): then
    only handoffs that have waited at least ``waited_s`` since they last entered the queue. The
    script checks the state and the wait again, so desks converting at once convert each once.

    Returns:
        How many handoffs were converted.
    """
    from handoff.queue import waiting

    why = why or ("unattended" if waited_s > 0 else "closed")
    notice, note, counter = CONVERSIONS[why]
    now = ctx.now()
    converted = 0
    for record in await waiting(ctx):
        if now - queued_since(record.get("enqueued_at") or now, record.get("requeued_at")) < waited_s:
            continue
        sender = record["sender"]
        handoff_id = record["handoff_id"]
        callback_id = keys.new_callback_id()
        window = await windows.book_window(ctx, callback_id, ctx.local(now))
        if window is None:  # no window opens, or every one is full for three weeks: it keeps waiting
            logger.warning("handoff.callback.no_window handoff=%s why=%s", handoff_id, why)
            break
        ticket = ticket_for(record, window, now, callback_id)
        message = outbox_message(sender, notice(*window, ctx.local(now)), "system")
        done = await script(ctx.redis, scripts.QUEUED_TO_CALLBACK)(
            keys=[keys.record(handoff_id), keys.QUEUE, keys.active(sender), keys.callback(ticket.callback_id), keys.CALLBACKS_OPEN,
                  outbox_key(sender), keys.transcript(handoff_id), keys.day_stats(ctx.day(now))],
            args=[handoff_id, repr(now), ticket.callback_id, repr(ticket.window_end), json.dumps(ticket.fields(), ensure_ascii=False),
                  message, ctx.outbox_maxlen, ctx.outbox_ttl_s,
                  texts.say("transcript_callback_converted", why=texts.say(note, minutes=texts.minutes(waited_s)),
                            callback_id=ticket.callback_id, window=texts.window(*window, ctx.local(now))),
                  scripts.STATS_TTL_S, repr(float(waited_s)), counter],
        )
        if not int(done):
            await windows.release(ctx, callback_id, window)
        else:
            converted += 1
            await remember(ctx, sender, ticket.callback_id)
            await publish(ctx, "callback", callback_id=ticket.callback_id, sender=sender, handoff_id=handoff_id)
    return converted


def phone_of(summary: Optional[Dict[str, Any]]) -> str:
    """The masked phone recorded in a summary, if any (the full number is in the CRM only: see :class:`CallbackTicket`)."""
    who = (summary or {}).get("who") or {}
    return str(who.get("phone") or "")
