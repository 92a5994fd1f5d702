"""Dedicated agents (一对一专属客服): the tiers of ``dedicated_agent.tiers`` in the service policy.

- The first agent who serves such a verified customer (claims or is given one of their handoffs)
  becomes their dedicated agent: the claim script records it in ``handoff:dedicated_agent:<customer>``
  when the handoff carries ``dedicated_key`` (set when the desk takes the request in), in the same
  atomic step as the claim, and never overwrites one already there.
- A supervisor changes or clears it on the desk (:func:`assign`, :func:`clear`).
- A later handoff of that customer (:func:`route`, run by the desk when it takes the request in or
  applies the bot's refinement) is offered to the dedicated agent alone for ``dedicated_agent.offer_s``
  when they are online with a free slot (auto-assignment gives it to them); otherwise it waits in the
  queue of ``dedicated_agent.team`` and the shopper is told, by name, that their dedicated agent is
  offline or busy and which team serves them instead (``handoff/texts.yml``).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from handoff import agents as agent_presence
from handoff import keys, texts
from handoff.context import HandoffContext
from handoff.conversation import publish, script, system_notice
from handoff.policy import dedicated_outcome, dedicated_team, has_dedicated_agent

ROUTE = """
-- KEYS: record, dedicated agent of the customer. ARGV: agent, now, outcome, offer until
-- Applies the outcome once per handoff while it waits and the dedicated agent is still the one decided on.
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return 'skip' end
if redis.call('HGET', KEYS[2], 'agent') ~= ARGV[1] then return 'changed' end
if redis.call('HSETNX', KEYS[1], 'dedicated_routed_at', ARGV[2]) == 0 then return 'skip' end
redis.call('HSET', KEYS[1], 'dedicated_agent', ARGV[1], 'dedicated_outcome', ARGV[3])
if ARGV[3] == 'offered' then redis.call('HSET', KEYS[1], 'offered_to', ARGV[1], 'offer_until', ARGV[4]) end
return ARGV[3]
"""

OUTCOMES = ("offered", "offline", "busy")
"""Outcomes told to the shopper and written in the transcript (texts ``dedicated_<outcome>``, ``transcript_dedicated_<outcome>``)."""


def dedicated_fields(ctx: HandoffContext, customer_id: Optional[str], tier: Optional[str]) -> Dict[str, str]:
    """Record fields of a handoff whose shopper has a dedicated agent: the key the claim writes and the team."""
    if not has_dedicated_agent(ctx.policy, tier, customer_id):
        return {}
    fields = {"dedicated_key": keys.dedicated_agent(str(customer_id))}
    team = dedicated_team(ctx.policy)
    if team is not None:
        fields.update(team=team.code, team_name=team.name)
    return fields


async def dedicated_agent(ctx: HandoffContext, customer_id: str) -> Optional[Dict[str, Any]]:
    """The customer's dedicated agent: ``agent``, ``agent_name``, ``since``, ``set_by``; None when none yet."""
    found = await ctx.redis.hgetall(keys.dedicated_agent(customer_id))
    if not found or not found.get("agent"):
        return None
    return {**found, "since": float(found["since"]) if found.get("since") else None}


async def assign(ctx: HandoffContext, customer_id: str, agent: str, agent_name: str, supervisor: str) -> Dict[str, Any]:
    """A supervisor makes ``agent`` the customer's dedicated agent (replacing any)."""
    now = ctx.now()
    await ctx.redis.hset(keys.dedicated_agent(customer_id), mapping={"agent": agent, "agent_name": agent_name, "since": repr(now),
                                                                     "set_by": supervisor})
    await publish(ctx, "dedicated_agent", customer_id=customer_id, agent=agent)
    return {"agent": agent, "agent_name": agent_name, "since": now, "set_by": supervisor}


async def clear(ctx: HandoffContext, customer_id: str) -> bool:
    """A supervisor removes the customer's dedicated agent: the next agent who serves them becomes it."""
    removed = bool(await ctx.redis.delete(keys.dedicated_agent(customer_id)))
    await publish(ctx, "dedicated_agent", customer_id=customer_id, agent="")
    return removed


async def route(ctx: HandoffContext, record: Mapping[str, Any]) -> str:
    """Offer a waiting handoff to the shopper's dedicated agent, or tell the shopper who serves them instead.

    Returns:
        ``offered``, ``offline`` or ``busy``; ``none`` when the shopper has no dedicated agent (yet);
        ``skip`` when the handoff no longer waits or was routed before.
    """
    customer_id = str(record.get("customer_id") or "")
    if not record.get("dedicated_key") or not customer_id:
        return "none"
    handoff_id, sender = str(record["handoff_id"]), str(record["sender"])
    applied = "changed"
    for _ in range(3):  # a supervisor changing the agent meanwhile: decide again for the new one
        found = await dedicated_agent(ctx, customer_id)
        if found is None:
            return "none"
        agent, name = str(found["agent"]), str(found.get("agent_name") or found["agent"])
        (state,) = await agent_presence.agent_states(ctx, [agent])
        now = ctx.now()
        applied = str(await script(ctx.redis, ROUTE)(
            keys=[keys.record(handoff_id), keys.dedicated_agent(customer_id)],
            args=[agent, repr(now), dedicated_outcome(state.online, state.load, state.capacity), repr(now + ctx.policy.dedicated_offer_s)]))
        if applied != "changed":
            break
    if applied not in OUTCOMES:
        return "skip"
    team = str(record.get("team_name") or "")
    await system_notice(ctx, handoff_id, sender, texts.say(f"transcript_dedicated_{applied}", agent=name, username=agent, team=team),
                        texts.say(f"dedicated_{applied}", agent=name, team=team))
    await publish(ctx, "offered" if applied == "offered" else "dedicated_away", sender=sender, handoff_id=handoff_id, agent=agent)
    return applied
