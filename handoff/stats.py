"""Counters and metrics: handoff rate by reason, waiting and handling times, SLA, satisfaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Dict, List, Optional, Sequence

from handoff import agents as agent_presence
from handoff import keys, scripts
from handoff.context import HandoffContext
from handoff.conversation import script

RECOVERY_COUNTERS = ("requeued_agent_offline", "callbacks_agent_offline", "callbacks_unclaimed")
"""Day counters of the recovery sweep (:mod:`handoff.recovery`): conversations returned to the
queue because their agent went offline, and those turned into callbacks (agent offline with nobody
to take over or out of hours; nobody claimed them in time)."""


async def note_conversation_started(ctx: HandoffContext) -> None:
    """Count a new conversation (the denominator of the handoff rate)."""
    key = keys.day_stats(ctx.day(ctx.now()))
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(key, "conversations", 1)
        pipe.expire(key, scripts.STATS_TTL_S)
        await pipe.execute()


async def record_rating(ctx: HandoffContext, sender: str, score: int) -> Optional[str]:
    """Store a 1–5 rating against the conversation's last resolved handoff.

    Returns:
        The rated handoff id; None when no handoff awaits a rating (or it was already rated).

    Raises:
        ValueError: the score is not 1 to 5.
    """
    if not 1 <= score <= 5:
        raise ValueError("a rating is 1 to 5")
    now = ctx.now()
    reply = await script(ctx.redis, scripts.RATE)(
        keys=[keys.rating_pending(sender), keys.day_stats(ctx.day(now))], args=[str(score), repr(now), scripts.STATS_TTL_S]
    )
    if not reply or reply[0] != "ok":
        return None
    return str(reply[1])


def percentile(values: Sequence[float], fraction: float) -> Optional[float]:
    """The nearest-rank percentile (``fraction`` 0.5 for the median); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return round(ordered[rank - 1], 1)


def summarize_times(values: Sequence[float]) -> Dict[str, Any]:
    """Count, mean, median and 95th percentile of durations in seconds."""
    return {
        "count": len(values),
        "mean_s": round(sum(values) / len(values), 1) if values else None,
        "p50_s": percentile(values, 0.5),
        "p95_s": percentile(values, 0.95),
    }


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


async def _recent(ctx: HandoffContext, key: str) -> List[float]:
    return [_float(v) for v in await ctx.redis.lrange(key, 0, keys.RECENT_LIMIT - 1)]


async def metrics(ctx: HandoffContext, days: int = 7) -> Dict[str, Any]:
    """Metrics over the last ``days`` shop-time days (today included) plus the live queue.

    Returns:
        A JSON-ready mapping (see ``GET /api/metrics`` in the README).
    """
    days = max(1, min(days, 90))
    today = ctx.local(ctx.now()).date()
    dates = [(today - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for day in dates:
            pipe.hgetall(keys.day_stats(day))
        per_day = await pipe.execute()
    totals: Dict[str, float] = {}
    series = []
    for day, counters in zip(dates, per_day, strict=True):
        for name, value in counters.items():
            totals[name] = totals.get(name, 0.0) + _float(value)
        series.append({
            "date": day,
            "conversations": int(_float(counters.get("conversations"))),
            "handoffs": int(_float(counters.get("handoffs"))),
            "callbacks": int(_float(counters.get("callbacks"))),
            "rating_mean": round(_float(counters.get("rating_sum")) / _float(counters.get("rating_count")), 2)
            if _float(counters.get("rating_count")) else None,
        })
    conversations = int(totals.get("conversations", 0))
    requests = int(totals.get("handoffs", 0) + totals.get("callbacks", 0) - totals.get("converted", 0))
    reasons = []
    for code, label in ctx.policy.reasons.items():
        count = int(totals.get(f"reason:{code}", 0))
        reasons.append({"reason": code, "label": label, "count": count,
                        "rate": round(count / conversations, 4) if conversations else None})
    rating_count = int(totals.get("rating_count", 0))
    distribution = {str(score): int(totals.get(f"rating:{score}", 0)) for score in range(1, 6)}
    open_ids = await ctx.redis.zrangebyscore(keys.CALLBACKS_OPEN, "-inf", "+inf", withscores=True)
    now = ctx.now()
    states = await agent_presence.agent_states(ctx)
    return {
        "period": {"from": dates[0], "to": dates[-1], "days": days},
        "conversations": conversations,
        "handoffs": int(totals.get("handoffs", 0)),
        "callbacks": int(totals.get("callbacks", 0)),
        "handoff_rate": round(requests / conversations, 4) if conversations else None,
        "by_reason": reasons,
        "waiting": {**summarize_times(await _recent(ctx, keys.RECENT_WAITS)),
                    "period_mean_s": round(totals["wait_sum_s"] / totals["wait_count"], 1) if totals.get("wait_count") else None},
        "handling": {**summarize_times(await _recent(ctx, keys.RECENT_HANDLES)),
                     "period_mean_s": round(totals["handle_sum_s"] / totals["handle_count"], 1) if totals.get("handle_count") else None},
        "first_response": {**summarize_times(await _recent(ctx, keys.RECENT_FIRST_RESPONSES)),
                           "target_s": ctx.policy.first_response_s, "breaches": int(totals.get("first_response_breaches", 0))},
        "after_sales": {"resolved": int(totals.get("after_sales_resolved", 0)), "breaches": int(totals.get("after_sales_breaches", 0)),
                        "target_s": ctx.policy.after_sales_resolution_s},
        "satisfaction": {"count": rating_count,
                         "mean": round(totals.get("rating_sum", 0) / rating_count, 2) if rating_count else None,
                         "distribution": distribution},
        "resolution_codes": {code: int(totals.get(f"code:{code}", 0)) for code in ctx.policy.resolution_codes},
        "recovery": {name: int(totals.get(name, 0)) for name in RECOVERY_COUNTERS},
        "callbacks_open": {"open": len(open_ids), "overdue": sum(1 for _, due in open_ids if due < now),
                           "done": int(totals.get("callbacks_done", 0)), "late": int(totals.get("callbacks_late", 0))},
        "queue": {"waiting": int(await ctx.redis.zcard(keys.QUEUE)),
                  "agents_online": sum(1 for s in states if s.online),
                  "free_slots": sum(s.free for s in states)},
        "days": series,
    }
