"""The human queue: requests from the bot, the desk's idempotent intake, atomic claims, transfers,
resolution and the shopper's cancellation.

Life of a handoff:

1. The bot's action calls :func:`enqueue`: one atomic step marks the conversation as handed off
   (``handoff:active:<sender>``, so the channel stops passing messages to the bot) and appends
   the request to the stream ``handoff:requests``.
2. A desk reads the stream with a consumer group and calls :func:`materialize`, which creates the
   handoff record and its queue entry only if the record does not exist yet, then acknowledges
   the stream entry. A desk that dies before acknowledging leaves the entry pending; another desk
   (or the same after restart) takes it over with XAUTOCLAIM and materializes it again, which
   changes nothing the second time: at-least-once delivery, exactly-once effect.
3. Agents :func:`claim` (a Lua script: exactly one wins), :func:`transfer` and :func:`resolve`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bot import pii
from bot.outbox import NOTICE_MAXLEN, NOTICE_STREAM, outbox_key
from handoff import agents as agent_presence
from handoff import dedicated, keys, scripts, texts
from handoff.context import HandoffContext
from handoff.conversation import OpResult, active_handoff, outbox_message, publish, script, system_notice
from handoff.models import HandoffRequest, flat
from handoff.policy import (
    capacity_for,
    estimate_wait_s,
    is_after_sales,
    is_priority_tier,
    priority_score,
    reason_label,
    should_notify_position,
    sla_due,
    team_for,
)

logger = logging.getLogger(__name__)

RATING_PENDING_TTL_S = 24 * 3600
"""How long after a handoff its rating is still accepted."""

CUSTOMER_HANDOFFS_KEPT = 50
"""How many of a verified customer's latest handoffs :func:`keys.customer_handoffs` lists."""


@dataclass(frozen=True)
class Enqueued:
    """The outcome of :func:`enqueue`.

    Attributes:
        created: False when the conversation already had a handoff (``handoff_id`` is that one).
        handoff_id: the conversation's handoff.
        position: place in the queue, 1 for next.
        wait_s: estimated wait in seconds; None when no agent is online.
    """

    created: bool
    handoff_id: str
    position: int
    wait_s: Optional[int]


async def enqueue(ctx: HandoffContext, request: HandoffRequest) -> Tuple[bool, str]:
    """Hand a conversation to the human queue (the bot's side; the desk materializes it).

    Returns:
        (created, handoff id): created is False when the conversation already had a handoff.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    created, handoff_id = await script(ctx.redis, scripts.ENQUEUE)(
        keys=[keys.active(request.sender), keys.REQUESTS_STREAM], args=[request.handoff_id, request.to_json()]
    )
    if int(created):
        await publish(ctx, "requested", sender=request.sender, handoff_id=request.handoff_id)
    return bool(int(created)), str(handoff_id)


async def queue_position(ctx: HandoffContext, handoff_id: str, score: Optional[float] = None) -> int:
    """Place of a handoff in the queue (1 for next).

    A handoff the desk has not taken in yet is placed after every entry with a better score (or
    last when its score is unknown).
    """
    rank = await ctx.redis.zrank(keys.QUEUE, handoff_id)
    if rank is not None:
        return int(rank) + 1
    if score is None:
        return int(await ctx.redis.zcard(keys.QUEUE)) + 1
    return int(await ctx.redis.zcount(keys.QUEUE, "-inf", f"({score}")) + 1


async def estimated_wait(ctx: HandoffContext, position: int) -> Optional[int]:
    """Estimated wait of a queue position from the online agents and recent handling times."""
    available = await agent_presence.availability(ctx)
    return estimate_wait_s(ctx.policy, position, available.free_slots, available.total_slots, available.handle_s)


async def _sticky_offer(ctx: HandoffContext, customer_key: str, now: float) -> Tuple[str, float]:
    agent = await ctx.redis.get(keys.last_agent(customer_key))
    if not agent or ctx.policy.sticky_offer_s <= 0:
        return "", 0.0
    states = await agent_presence.agent_states(ctx, [agent])
    if states and states[0].online and states[0].free > 0:
        return agent, now + ctx.policy.sticky_offer_s
    return "", 0.0


REFINED = 3
"""What :func:`materialize` answers when it applied a refinement to a waiting or assigned handoff."""

_REFINED_FIELDS = ("tier", "tier_name", "priority", "reason", "reason_label", "intents", "score", "summary", "summary_text",
                   "after_sales", "sla_first_response_due", "sla_resolution_due", "team", "team_name", "dedicated_key")
"""What a refinement (:attr:`HandoffRequest.refines`) updates of a handoff record."""


def _request_fields(ctx: HandoffContext, request: HandoffRequest, score: float) -> Dict[str, Any]:
    """The record fields that follow from a request alone (no queue state)."""
    after_sales = is_after_sales(ctx.policy, request.reason, request.intents)
    due = sla_due(ctx.policy, request.enqueued_at, after_sales)
    fields: Dict[str, Any] = {
        "handoff_id": request.handoff_id,
        "sender": request.sender,
        "customer_id": request.customer_id or "",
        "customer_key": keys.customer_key(request.customer_id, request.sender),
        "tier": request.tier or "",
        "tier_name": request.tier_name,
        "priority": "1" if is_priority_tier(ctx.policy, request.tier) else "0",
        "reason": request.reason,
        "reason_label": reason_label(ctx.policy, request.reason),
        "intents": json.dumps(request.intents, ensure_ascii=False),
        "score": repr(score),
        "enqueued_at": repr(request.enqueued_at),
        "channel": request.channel,
        "summary": json.dumps(request.summary, ensure_ascii=False),
        "summary_text": request.summary_text,
        "after_sales": "1" if after_sales else "0",
        "sla_first_response_due": repr(due.first_response),
    }
    if due.resolution is not None:
        fields["sla_resolution_due"] = repr(due.resolution)
    team = team_for(ctx.policy, request.tier, request.reason, request.intents)
    if team is not None:
        fields.update(team=team.code, team_name=team.name)
    fields.update(dedicated.dedicated_fields(ctx, request.customer_id, request.tier))
    return fields


async def materialize(ctx: HandoffContext, request: HandoffRequest) -> int:
    """Create a handoff's record and queue entry from a request, once; or apply a refinement.

    A refinement (:attr:`HandoffRequest.refines`) of a handoff the desk has not taken in yet (a
    request redelivered out of order) creates the record from the refinement, which carries the
    whole request; the earlier, shorter request then finds the record and changes nothing.

    Returns:
        1 when queued now, 2 when the shopper cancelled before it was queued, 0 when it already
        existed (a redelivered request) or had ended before a refinement, :data:`REFINED` when a
        refinement was applied.
    """
    now = ctx.now()
    score = priority_score(ctx.policy, request.enqueued_at, request.tier, request.reason)
    fields = _request_fields(ctx, request, score)
    if request.refines:
        refined = await _refine(ctx, request, score, fields)
        if refined is not None:
            return refined
    offered_to, offer_until = await _sticky_offer(ctx, fields["customer_key"], now)
    fields.update({
        "offered_to": offered_to,
        "offer_until": repr(offer_until),
        "notified_position": str(request.position_told or ""),
        "notified_at": repr(request.enqueued_at),
        "transfers": "0",
    })
    result = int(
        await script(ctx.redis, scripts.MATERIALIZE)(
            keys=[keys.record(request.handoff_id), keys.QUEUE, keys.active(request.sender), keys.day_stats(ctx.day(request.enqueued_at)),
                  keys.history(request.sender), keys.latest(request.sender)],
            args=[request.handoff_id, repr(score), repr(now), request.reason, json.dumps(flat(fields), ensure_ascii=False), scripts.STATS_TTL_S,
                  ctx.outbox_ttl_s],
        )
    )
    if result == 1:
        if request.customer_id:
            async with ctx.redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.by_customer(request.customer_id), request.sender, ex=ctx.outbox_ttl_s)
                pipe.rpush(keys.customer_handoffs(request.customer_id), request.handoff_id)  # the desk's workspace lists them
                pipe.ltrim(keys.customer_handoffs(request.customer_id), -CUSTOMER_HANDOFFS_KEPT, -1)
                pipe.expire(keys.customer_handoffs(request.customer_id), ctx.outbox_ttl_s)
                await pipe.execute()
        await publish(ctx, "queued", sender=request.sender, handoff_id=request.handoff_id, offered_to=offered_to)
        await dedicated.route(ctx, fields)
    return result


async def _refine(ctx: HandoffContext, request: HandoffRequest, score: float, fields: Dict[str, Any]) -> Optional[int]:
    """Apply a refinement to an existing record; None when there is no record yet."""
    update = {name: fields[name] for name in _REFINED_FIELDS if name in fields}
    dropped = [name for name in _REFINED_FIELDS if name not in fields]
    result = int(
        await script(ctx.redis, scripts.REFINE)(
            keys=[keys.record(request.handoff_id), keys.QUEUE, keys.day_stats(ctx.day(request.enqueued_at))],
            args=[request.handoff_id, repr(score), json.dumps(flat(update), ensure_ascii=False), request.reason, scripts.STATS_TTL_S,
                  json.dumps(dropped), repr(ctx.now())],
        )
    )
    if result < 0:
        return None
    if result == REFINED:
        await publish(ctx, "refined", sender=request.sender, handoff_id=request.handoff_id)
        await dedicated.route(ctx, await ctx.redis.hgetall(keys.record(request.handoff_id)))
    return result


@dataclass(frozen=True)
class ClaimResult:
    """Outcome of a claim: ``ok``, ``taken``, ``offered_to_other``, ``wrong_team``, ``at_capacity`` or ``not_found``."""

    status: str
    detail: str = ""
    handoff_id: str = ""


async def claim(ctx: HandoffContext, sender: str, agent: str, agent_name: str, teams: Sequence[str] = ()) -> ClaimResult:
    """Give a waiting conversation to an agent; of many concurrent claims exactly one wins.

    Args:
        ctx: the handoff context.
        sender: the conversation id.
        agent: the claiming agent's username.
        agent_name: the name the shopper sees.
        teams: the teams the agent may claim for (empty: every team); a handoff of another team is
            refused ``wrong_team`` (its team the detail) unless it is offered to this agent.
    """
    handoff_id = await active_handoff(ctx, sender)
    if handoff_id is None:
        return ClaimResult("not_found")
    now = ctx.now()
    capacity = capacity_for(ctx.policy, agent)
    status, detail = (
        str(part)
        for part in await script(ctx.redis, scripts.CLAIM)(
            keys=[keys.record(handoff_id), keys.QUEUE, keys.agent_load(agent), keys.day_stats(ctx.day(now)), keys.RECENT_WAITS,
                  keys.AGENTS],
            args=[agent, repr(now), capacity, keys.RECENT_LIMIT, scripts.STATS_TTL_S, agent_name, json.dumps(list(teams)) if teams else ""],
        )
    )
    if status != "ok":
        return ClaimResult(status, detail, handoff_id)
    await system_notice(ctx, handoff_id, sender, f"{agent_name}（{agent}）接入会话", texts.agent_joined(agent_name))
    await publish(ctx, "claimed", sender=sender, handoff_id=handoff_id, agent=agent)
    return ClaimResult("ok", detail, handoff_id)


async def resolve(ctx: HandoffContext, sender: str, agent: str, agent_name: str, code: str) -> OpResult:
    """End a handoff: the bot has the conversation again and the shopper is asked for a rating.

    Args:
        ctx: the handoff context.
        sender: the conversation id.
        agent: the agent who has the conversation.
        agent_name: the name the shopper sees.
        code: a resolution code of the policy.
    """
    handoff_id = await active_handoff(ctx, sender)
    if handoff_id is None:
        return OpResult("not_found")
    record = await ctx.redis.hgetall(keys.record(handoff_id))
    if not record:
        return OpResult("not_found")
    now = ctx.now()
    outcome = ctx.policy.resolution_codes.get(code, code)
    messages = [
        outbox_message(sender, texts.resolved(agent_name, outcome), "system"),
        outbox_message(sender, texts.rating_prompt(agent_name), "bot", buttons=texts.rating_buttons()),
    ]
    customer_key = record.get("customer_key") or keys.customer_key(record.get("customer_id") or None, sender)
    reply = await script(ctx.redis, scripts.RESOLVE)(
        keys=[keys.record(handoff_id), keys.active(sender), keys.agent_load(agent), keys.last_agent(customer_key),
              keys.rating_pending(sender), keys.transcript(handoff_id), outbox_key(sender), keys.day_stats(ctx.day(now)), keys.RECENT_HANDLES,
              keys.notes(handoff_id), keys.history(sender), keys.latest(sender)],
        args=[agent, repr(now), code, handoff_id, ctx.policy.sticky_memory_days * 86400, RATING_PENDING_TTL_S,
              texts.say("transcript_resolved", agent=agent_name, username=agent, outcome=outcome), json.dumps(messages, ensure_ascii=False),
              ctx.outbox_maxlen, ctx.outbox_ttl_s,
              keys.RECENT_LIMIT, scripts.STATS_TTL_S],
    )
    status, detail = (str(part) for part in reply)
    if status != "ok":
        return OpResult(status, detail, handoff_id)
    await publish(ctx, "resolved", sender=sender, handoff_id=handoff_id, agent=agent, code=code)
    return OpResult("ok", handoff_id=handoff_id, data={"handle_s": float(detail)})


async def transfer(ctx: HandoffContext, sender: str, agent: str, agent_name: str, to_agent: str, to_name: str) -> OpResult:
    """Hand a conversation to another online agent with capacity; the shopper is told who."""
    handoff_id = await active_handoff(ctx, sender)
    if handoff_id is None:
        return OpResult("not_found")
    now = ctx.now()
    reply = await script(ctx.redis, scripts.TRANSFER)(
        keys=[keys.record(handoff_id), keys.agent_load(agent), keys.agent_load(to_agent), keys.presence(to_agent),
              keys.transcript(handoff_id), outbox_key(sender)],
        args=[agent, to_agent, capacity_for(ctx.policy, to_agent), repr(now),
              f"{agent_name}（{agent}）将会话转给 {to_name}（{to_agent}）", outbox_message(sender, texts.transferred(to_name), "system"),
              ctx.outbox_maxlen, ctx.outbox_ttl_s, to_name],
    )
    status, detail = (str(part) for part in reply)
    if status != "ok":
        return OpResult(status, detail, handoff_id)
    await publish(ctx, "transferred", sender=sender, handoff_id=handoff_id, agent=to_agent, from_agent=agent)
    return OpResult("ok", handoff_id=handoff_id)


async def cancel(ctx: HandoffContext, sender: str, handoff_id: str, text: str) -> str:
    """The shopper gives up waiting: the bot has the conversation again.

    The shopper's words are kept in the transcript masked (:func:`bot.pii.mask_text`).

    Returns:
        ``ok``; ``assigned`` when an agent already has it (not cancelled); ``gone`` when the
        handoff no longer has the conversation.
    """
    result = str(
        await script(ctx.redis, scripts.CANCEL)(
            keys=[keys.active(sender), keys.record(handoff_id), keys.QUEUE, keys.transcript(handoff_id)],
            args=[handoff_id, repr(ctx.now()), pii.mask_text(text), ctx.outbox_ttl_s],
        )
    )
    if result == "ok":
        await publish(ctx, "cancelled", sender=sender, handoff_id=handoff_id)
    return result


def decode_record(record: Dict[str, str]) -> Dict[str, Any]:
    """A handoff hash with numbers, flags and JSON fields decoded."""
    out: Dict[str, Any] = dict(record)
    for name in ("enqueued_at", "queued_at", "claimed_at", "first_response_at", "resolved_at", "ended_at", "score",
                 "offer_until", "sla_first_response_due", "sla_resolution_due", "wait_s", "handle_s", "first_response_s",
                 "notified_at", "last_shopper_at", "rated_at", "transferred_at", "requeued_at", "last_agent_at"):
        if record.get(name):
            try:
                out[name] = float(record[name])
            except ValueError:
                out[name] = None
    for name in ("priority", "after_sales"):
        out[name] = record.get(name) == "1"
    for name in ("transfers", "rating", "notified_position", "requeues"):
        value = record.get(name)
        out[name] = int(value) if value and value.lstrip("-").isdigit() else None
    for name in ("summary", "intents"):
        try:
            out[name] = json.loads(record.get(name) or "null")
        except ValueError:
            out[name] = None
    return out


async def records(ctx: HandoffContext, handoff_ids: List[str]) -> List[Dict[str, Any]]:
    """The decoded records of several handoffs (missing ones left out)."""
    if not handoff_ids:
        return []
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for handoff_id in handoff_ids:
            pipe.hgetall(keys.record(handoff_id))
        raw = await pipe.execute()
    return [decode_record(r) for r in raw if r]


async def waiting(ctx: HandoffContext) -> List[Dict[str, Any]]:
    """The queue in serving order, each record with its ``position``."""
    ids = await ctx.redis.zrange(keys.QUEUE, 0, -1)
    out = []
    for position, record in enumerate(await records(ctx, list(ids)), start=1):
        record["position"] = position
        out.append(record)
    return out


async def refresh_positions(ctx: HandoffContext) -> int:
    """Tell waiting shoppers their new place in the queue when it changed (throttled by the policy).

    Returns:
        How many notices were pushed.
    """
    queue = await waiting(ctx)
    if not queue:
        return 0
    available = await agent_presence.availability(ctx)
    now = ctx.now()
    pushed = 0
    for record in queue:
        position = record["position"]
        if not should_notify_position(ctx.policy, position, record.get("notified_position"), record.get("notified_at"), now):
            continue
        wait_s = estimate_wait_s(ctx.policy, position, available.free_slots, available.total_slots, available.handle_s)
        text = texts.position_update(position, wait_s, ctx.local(now))
        sender = record["sender"]
        async with ctx.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(outbox_key(sender), {"message": outbox_message(sender, text, "system", queue_position=position)},
                      maxlen=ctx.outbox_maxlen, approximate=True)
            pipe.expire(outbox_key(sender), ctx.outbox_ttl_s)
            pipe.xadd(NOTICE_STREAM, {"sender": sender}, maxlen=NOTICE_MAXLEN, approximate=True)
            pipe.hset(keys.record(record["handoff_id"]), mapping={"notified_position": str(position), "notified_at": repr(now)})
            await pipe.execute()
        pushed += 1
    return pushed
