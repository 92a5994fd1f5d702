"""Supervisor review items, due within the service policy's working days: a rating of 1–2, a missed
first-response target (:func:`open_sla_reviews`, every desk's sweep) and a shopper's complaint while
an agent serves them (:func:`complaint_during_service`, the channel's path of the shopper's message)
or within ``reviews.complaint_after_s`` after the agent ended the conversation
(:func:`complaint_after_service`, the bot's handoff) each open one, once per handoff and kind (a
complaint during and after the same handoff is one review). The shopper is told its number and by
when a supervisor contacts them (``handoff/texts.yml``).

A review is a hash ``handoff:review:<id>`` and an entry of the open set by due time; supervisors
list them on the desk and close them with a note (:mod:`desk.tickets_api`). The shopper is told
what happens and by when (``utter_review_opened_low_rating`` of ``data/responses/tickets.yml``,
the days from ``reviews.due_workdays`` of ``handoff/service.yml``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional

from bot import pii, texts
from handoff import keys
from handoff import texts as handoff_texts
from handoff.context import HandoffContext
from handoff.conversation import OpResult, publish, script, system_notice
from handoff.policy import complaint_is_about_agent, first_response_breached

REVIEWS_OPEN = keys.REVIEWS_OPEN
REVIEWS_DONE = keys.REVIEWS_DONE
REVIEW_ID = re.compile(r"r[0-9a-f]{24}")
RETENTION_S = 90 * 86400
KINDS = ("low_rating", "sla_breach", "complaint")

OPEN = """
-- KEYS: review, open set. ARGV: id, due, fields (flat JSON). A handoff is reviewed once per kind (the id is derived).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[3])))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""

CLOSE = """
-- KEYS: review, open set, done set. ARGV: id, supervisor, now, note, retention s
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', ''} end
if status ~= 'open' then return {'done', redis.call('HGET', KEYS[1], 'closed_by') or ''} end
redis.call('HSET', KEYS[1], 'status', 'closed', 'closed_by', ARGV[2], 'closed_at', ARGV[3], 'note', ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {'ok', ''}
"""


review_key = keys.review


def review_id_for(kind: str, handoff_id: str) -> str:
    """The review id of a handoff and a kind (the same twice: a review is opened once)."""
    return "r" + hashlib.sha256(f"{kind}:{handoff_id}".encode()).hexdigest()[:24]


def add_workdays(moment: datetime, days: int) -> datetime:
    """``moment`` plus ``days`` working days (Monday to Friday), the same clock time."""
    if days <= 0:
        return moment
    later = (moment + timedelta(days=n) for n in itertools.count(1))
    return next(itertools.islice((d for d in later if d.weekday() < 5), days - 1, None))


async def open_review(ctx: HandoffContext, kind: str, handoff_id: str, sender: str, detail: str,
                      agent: str = "", score: Optional[int] = None) -> Dict[str, Any]:
    """Open a review item (once per handoff and kind); returns its id, due time and whether it is new."""
    if kind not in KINDS:
        raise ValueError(f"unknown review kind {kind!r}")
    now = ctx.now()
    due = add_workdays(ctx.local(now), ctx.policy.review_due_workdays)
    review_id = review_id_for(kind, handoff_id or secrets.token_hex(12))
    fields = {"review_id": review_id, "kind": kind, "handoff_id": handoff_id, "sender": sender, "agent": agent,
              "detail": pii.mask_text(detail), "score": "" if score is None else str(score), "status": "open",
              "created_at": repr(now), "due_at": repr(due.timestamp())}
    flat = [part for pair in fields.items() for part in pair]
    created = int(await script(ctx.redis, OPEN)(keys=[review_key(review_id), REVIEWS_OPEN],
                                                args=[review_id, repr(due.timestamp()), json.dumps(flat, ensure_ascii=False)]))
    if created:
        await publish(ctx, "review", review_id=review_id, kind=kind)
    return {"review_id": review_id, "due": due, "created": bool(created)}


def decode(raw: Dict[str, str], now: float) -> Dict[str, Any]:
    """A review hash with times decoded and ``overdue`` computed."""
    out: Dict[str, Any] = dict(raw)
    for name in ("created_at", "due_at", "closed_at"):
        out[name] = float(raw[name]) if raw.get(name) else None
    out["score"] = int(raw["score"]) if raw.get("score") else None
    out["overdue"] = raw.get("status") == "open" and now > (out["due_at"] or 0.0)
    return out


async def list_reviews(ctx: HandoffContext, include_closed: bool = False, limit: int = 200) -> List[Dict[str, Any]]:
    """Open reviews by due time, then (if asked) the most recently closed ones."""
    ids = list(await ctx.redis.zrange(REVIEWS_OPEN, 0, limit - 1))
    if include_closed:
        ids += list(await ctx.redis.zrevrange(REVIEWS_DONE, 0, limit - 1))
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for review_id in ids:
            pipe.hgetall(review_key(review_id))
        raw = await pipe.execute() if ids else []
    now = ctx.now()
    return [decode(r, now) for r in raw if r]


async def close_review(ctx: HandoffContext, review_id: str, supervisor: str, note: str) -> OpResult:
    """Close a review with the supervisor's note (kept masked); ``not_found`` or ``done`` otherwise."""
    status, detail = (str(part) for part in await script(ctx.redis, CLOSE)(
        keys=[review_key(review_id), REVIEWS_OPEN, REVIEWS_DONE],
        args=[review_id, supervisor, repr(ctx.now()), pii.mask_text(note), RETENTION_S]))
    if status == "ok":
        await publish(ctx, "review_closed", review_id=review_id, supervisor=supervisor)
    return OpResult(status, detail)


async def overdue_count(ctx: HandoffContext) -> int:
    """Open reviews past their due time."""
    return int(await ctx.redis.zcount(REVIEWS_OPEN, "-inf", f"({ctx.now()}"))


async def open_low_rating_review(ctx: HandoffContext, handoff_id: str, sender: str, score: int) -> str:
    """Open the review of a handoff rated 1–2 and the reply that tells the shopper what happens and by when."""
    record = await ctx.redis.hgetall(keys.record(handoff_id))
    opened = await open_review(ctx, "low_rating", handoff_id, sender, f"顾客评分 {score} 分", agent=record.get("agent") or "", score=score)
    return texts.render("utter_review_opened_low_rating", score=score, **_told(ctx, opened))


def _told(ctx: HandoffContext, opened: Dict[str, Any]) -> Dict[str, Any]:
    """What a review notice quotes: its number, the working days and the due time (``12月8日 14:35``)."""
    due = opened["due"]
    return {"review_id": opened["review_id"], "workdays": ctx.policy.review_due_workdays, "due": f"{due.month}月{due.day}日 {due:%H:%M}"}


KIND_LABELS = {"low_rating": "低评分", "sla_breach": "首次响应超时", "complaint": "顾客投诉客服"}


async def _tell(ctx: HandoffContext, opened: Dict[str, Any], kind: str, handoff_id: str, sender: str, text: str) -> None:
    """Push a review's notice to the shopper and note it in the handoff's transcript."""
    told = _told(ctx, opened)
    await system_notice(ctx, handoff_id, sender, handoff_texts.say("transcript_review_opened", kind=KIND_LABELS[kind], **told), text)


async def _open_handoffs(ctx: HandoffContext) -> List[Dict[str, Any]]:
    """The waiting and the assigned handoffs (the queue and every known agent's load)."""
    from handoff.queue import records  # the queue module imports this package's conversation module too

    ids = set(await ctx.redis.zrange(keys.QUEUE, 0, -1))
    agents = sorted(await ctx.redis.smembers(keys.AGENTS))
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for agent in agents:
            pipe.smembers(keys.agent_load(agent))
        loads = await pipe.execute() if agents else []
    ids.update(handoff_id for load in loads for handoff_id in load)
    return await records(ctx, sorted(ids))


async def open_sla_reviews(ctx: HandoffContext) -> int:
    """Open a review for every open handoff that missed its first-response target, and tell its shopper.

    Run by every desk's sweep; a handoff is reviewed once (the review id is derived from it, and the
    record notes ``sla_review_id``), so desks sweeping at once tell a shopper once.

    Returns:
        How many reviews were opened.
    """
    now = ctx.now()
    opened_count = 0
    for record in await _open_handoffs(ctx):
        due = record.get("sla_first_response_due")
        if record.get("status") not in ("queued", "assigned") or record.get("sla_review_id") or due is None:
            continue
        if not first_response_breached(float(due), record.get("first_response_at"), now):
            continue
        handoff_id, sender = str(record["handoff_id"]), str(record["sender"])
        target_s = ctx.policy.first_response_s
        opened = await open_review(ctx, "sla_breach", handoff_id, sender, f"首次响应目标 {target_s} 秒未达成",
                                   agent=str(record.get("agent") or ""))
        await ctx.redis.hset(keys.record(handoff_id), "sla_review_id", opened["review_id"])
        if opened["created"]:
            opened_count += 1
            await _tell(ctx, opened, "sla_breach", handoff_id, sender,
                        handoff_texts.say("review_sla_breach", target=handoff_texts.minutes(target_s), **_told(ctx, opened)))
    return opened_count


async def complaint_during_service(ctx: HandoffContext, handoff_id: str, sender: str, agent: str, agent_name: str, text: str) -> bool:
    """A shopper complained while an agent serves them: open the review of that agent (once per handoff) and tell them.

    Returns:
        Whether a review was opened now.
    """
    opened = await open_review(ctx, "complaint", handoff_id, sender, text, agent=agent)
    if opened["created"]:
        await _tell(ctx, opened, "complaint", handoff_id, sender,
                    handoff_texts.say("review_complaint_during", agent=agent_name or agent, **_told(ctx, opened)))
    return bool(opened["created"])


async def complaint_after_service(ctx: HandoffContext, sender: str, text: str) -> Optional[str]:
    """A shopper complained to the bot: when an agent ended their latest handoff within ``reviews.complaint_after_s``,
    open the review of that agent (once per handoff) and answer what the shopper is told; None otherwise."""
    handoff_id = await ctx.redis.get(keys.latest(sender))
    record = await ctx.redis.hgetall(keys.record(handoff_id)) if handoff_id else {}
    resolved_at = float(record["resolved_at"]) if record.get("resolved_at") else None
    if not record.get("agent") or not complaint_is_about_agent(ctx.policy, str(record.get("status") or ""), resolved_at, ctx.now()):
        return None
    opened = await open_review(ctx, "complaint", str(handoff_id), sender, text, agent=record["agent"])
    if not opened["created"]:
        return None
    return handoff_texts.say("review_complaint_after", agent=record.get("agent_name") or record["agent"], **_told(ctx, opened))
