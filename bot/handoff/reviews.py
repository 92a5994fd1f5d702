"""Supervisor review items: a rating of 1–2 opens one, due within the service policy's working days.

A review is a hash ``handoff:review:<id>`` and an entry of the open set by due time; supervisors
list them on the desk and close them with a note (:mod:`desk.tickets_api`). The shopper is told
what happens and by when (``utter_review_opened_low_rating`` of ``data/responses/tickets.yml``,
the days from ``reviews.due_workdays`` of ``desk/policy/service.yml``).
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
from bot.handoff import keys
from bot.handoff.context import HandoffContext
from bot.handoff.conversation import OpResult, publish, script

REVIEWS_OPEN = "handoff:reviews:open"
"""Sorted set of open review ids by due time."""
REVIEWS_DONE = "handoff:reviews:done"
"""Sorted set of closed review ids by closing time."""
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


def review_key(review_id: str) -> str:
    """Hash of one review item."""
    return f"handoff:review:{review_id}"


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
    due = opened["due"]
    return texts.render("utter_review_opened_low_rating", score=score, review_id=opened["review_id"],
                        workdays=ctx.policy.review_due_workdays, due=f"{due.month}月{due.day}日 {due:%H:%M}")
