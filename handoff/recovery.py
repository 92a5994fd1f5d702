"""Nothing hangs, nothing is dropped: the sweep every desk runs every ``recovery.sweep_interval_s``.

- An assigned handoff whose agent's presence key has been gone for ``recovery.agent_offline_requeue_s``
  (no heartbeat: the console was closed, the network or the desk died) goes back to the queue with its
  original priority, and the shopper is told their place and a concrete ETA; out of opening hours, or
  when no other agent is online, it becomes a callback ticket in the first window with room
  (:func:`handoff.windows.book_window`) and the shopper is told that window.
- A waiting handoff nobody claimed within ``recovery.unclaimed_callback_s`` of entering the queue (or
  returning to it) becomes a callback ticket with the window told to the shopper.

Each step is one Lua script that checks the state it expects first (:data:`scripts.RECOVER_ASSIGNED`,
:data:`scripts.QUEUED_TO_CALLBACK`), so several desks sweeping at once change a handoff once. Each
step writes a line in the transcript for the agent who picks the conversation up later, and is
counted in the day's stats (``requeued_agent_offline``, ``callbacks_agent_offline``,
``callbacks_unclaimed``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional

from bot.outbox import outbox_key
from handoff import agents as agent_presence
from handoff import keys, scripts, texts, windows
from handoff.callbacks import queued_to_callbacks, remember, ticket_for
from handoff.context import HandoffContext
from handoff.conversation import outbox_message, publish, script
from handoff.policy import is_open, offline_recovery, offline_since
from handoff.queue import decode_record, estimated_wait

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    """What one sweep changed."""

    requeued: int = 0
    callbacks_agent_offline: int = 0
    callbacks_unclaimed: int = 0

    @property
    def changed(self) -> int:
        """Handoffs changed by the sweep."""
        return self.requeued + self.callbacks_agent_offline + self.callbacks_unclaimed


def _float(value: Any) -> Optional[float]:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


async def recover_assigned(ctx: HandoffContext, handoff_id: str, agent: str, open_now: bool, others_online: bool) -> str:
    """Requeue (or turn into a callback) one handoff of an offline agent once the bound has passed.

    Returns:
        ``requeue`` or ``callback`` when this call changed it; ``waiting`` while the agent may still
        come back; ``online``, ``skip`` (another desk did it, or it ended) or ``no_window`` otherwise.
    """
    now = ctx.now()
    raw = await ctx.redis.hgetall(keys.record(handoff_id))
    record = decode_record(raw) if raw else {}
    if not record or record.get("status") != "assigned" or record.get("agent") != agent:
        if not record:
            await ctx.redis.srem(keys.agent_load(agent), handoff_id)
        return "skip"
    since = offline_since(_float(await ctx.redis.get(keys.presence_until(agent))), _float(raw.get("agent_offline_noticed_at")),
                          (record.get("claimed_at"), record.get("transferred_at"), record.get("last_agent_at")), now)
    mode = offline_recovery(ctx.policy, float("inf") if since is None else now - since, open_now, others_online)
    if mode is None:
        return "waiting"
    sender, name, local = record["sender"], record.get("agent_name") or agent, ctx.local(now)
    away = texts.minutes(ctx.policy.agent_offline_requeue_s)
    callback_id, due, fields, window = keys.new_callback_id(), "0", "[]", None
    if mode == "requeue":
        position = int(await ctx.redis.zcount(keys.QUEUE, "-inf", f"({record.get('score') or now}")) + 1
        notice = texts.requeued_agent_offline(name, position, await estimated_wait(ctx, position), local)
        note = texts.say("transcript_agent_offline_requeued", agent=name, username=agent, away=away, position=position)
    else:
        window = await windows.book_window(ctx, callback_id, local)
        if window is None:  # no window opens, or every one is full for three weeks
            return "no_window"
        ticket = ticket_for(record, window, now, callback_id)
        callback_id, due, fields = ticket.callback_id, repr(ticket.window_end), json.dumps(ticket.fields(), ensure_ascii=False)
        notice = texts.callback_agent_offline(name, *window, local, closed_now=not open_now)
        why = texts.say("transcript_offline_closed" if not open_now else "transcript_offline_nobody")
        note = texts.say("transcript_agent_offline_callback", agent=name, username=agent, away=away, why=why, callback_id=callback_id,
                         window=texts.window(*window, local))
    status, detail = (
        str(part)
        for part in await script(ctx.redis, scripts.RECOVER_ASSIGNED)(
            keys=[keys.record(handoff_id), keys.QUEUE, keys.agent_load(agent), keys.presence(agent), keys.presence_until(agent),
                  keys.transcript(handoff_id), outbox_key(sender), keys.day_stats(ctx.day(now)), keys.callback(callback_id),
                  keys.CALLBACKS_OPEN],
            args=[handoff_id, agent, repr(now), ctx.policy.agent_offline_requeue_s, mode, outbox_message(sender, notice, "system"),
                  ctx.outbox_maxlen, ctx.outbox_ttl_s, note, scripts.STATS_TTL_S, callback_id, due, fields],
        )
    )
    if status != "ok":
        if window is not None:
            await windows.release(ctx, callback_id, window)
        return status
    logger.info("handoff.recovered handoff=%s sender=%s agent=%s outcome=%s", handoff_id, sender, agent, detail)
    if detail == "requeue":
        await publish(ctx, "requeued", sender=sender, handoff_id=handoff_id, from_agent=agent)
    else:
        await remember(ctx, sender, callback_id)
        await publish(ctx, "callback", callback_id=callback_id, sender=sender, handoff_id=handoff_id, from_agent=agent)
    return detail


async def sweep(ctx: HandoffContext) -> SweepResult:
    """One pass over the offline agents' conversations and the queue (safe on every desk at once)."""
    open_now = is_open(ctx.policy, ctx.local(ctx.now()), ctx.tz)
    states = await agent_presence.agent_states(ctx)
    others_online = any(state.online for state in states)
    outcomes: Dict[str, int] = {}
    for state in states:
        if state.online or state.load == 0:
            continue
        for handoff_id in sorted(await ctx.redis.smembers(keys.agent_load(state.username))):
            outcome = await recover_assigned(ctx, handoff_id, state.username, open_now, others_online)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    unclaimed = 0
    if open_now:  # after closing time the leader's periodic task turns the whole queue into callbacks
        unclaimed = await queued_to_callbacks(ctx, waited_s=ctx.policy.unclaimed_callback_s, why="unclaimed")
    return SweepResult(outcomes.get("requeue", 0), outcomes.get("callback", 0), unclaimed)
