"""Auto-assignment: each waiting handoff to the least-loaded online agent of its team within capacity.

Switched on by ``routing.auto_assign`` in the service policy, beside claiming. The choice and the
assignment are one Lua step (:data:`AUTO_ASSIGN`: it picks among the candidates it is given, then runs
the claim script itself), so desks assigning at once never give a handoff twice nor an agent more
than their capacity. A handoff offered to an agent (sticky routing) goes to that agent while the
offer lasts; a handoff whose team has nobody free waits for a claim or the next pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from handoff import keys, scripts, texts
from handoff.context import HandoffContext
from handoff.conversation import publish, script, system_notice
from handoff.policy import capacity_for

AUTO_ASSIGN = """
-- KEYS: record, queue, (agent load: chosen here), day stats, recent waits, known agents
-- ARGV: ('' : the chosen agent), now, ('' : its capacity), recent limit, stats ttl, ('' : its display name),
--       candidates JSON [[username, capacity, display name, presence key, load key], ...]
if redis.call('HGET', KEYS[1], 'status') ~= 'queued' then return {'taken', ''} end
local offered = redis.call('HGET', KEYS[1], 'offered_to') or ''
local offer_until = tonumber(redis.call('HGET', KEYS[1], 'offer_until') or '0') or 0
if offer_until <= tonumber(ARGV[2]) then offered = '' end
local best, best_load = nil, nil
for _, c in ipairs(cjson.decode(ARGV[7])) do
  if (offered == '' or c[1] == offered) and redis.call('EXISTS', c[4]) == 1 then
    local load = redis.call('SCARD', c[5])
    if load < tonumber(c[2]) and (best == nil or load < best_load) then best, best_load = c, load end
  end
end
if best == nil then return {'no_agent', ''} end
KEYS[3] = best[5]
ARGV[1] = best[1]
ARGV[3] = tostring(best[2])
ARGV[6] = best[3]
ARGV[7] = ''
""" + scripts.CLAIM


@dataclass(frozen=True)
class Candidate:
    """An agent who may be given handoffs: username, the name shoppers see, teams (empty: every team)."""

    username: str
    display_name: str
    teams: Tuple[str, ...] = ()


def _candidates(ctx: HandoffContext, agents: Sequence[Candidate], record: Dict[str, Any]) -> str:
    """The agents who may be given a handoff: its team's, and the agent it is offered to (a dedicated agent) in any case."""
    team, offered_to = str(record.get("team") or ""), str(record.get("offered_to") or "")
    chosen = [a for a in agents if not team or not a.teams or team in a.teams or a.username == offered_to]
    return json.dumps([[a.username, capacity_for(ctx.policy, a.username), a.display_name, keys.presence(a.username), keys.agent_load(a.username)]
                       for a in chosen], ensure_ascii=False)


async def auto_assign(ctx: HandoffContext, agents: Sequence[Candidate]) -> List[Tuple[str, str]]:
    """Give every waiting handoff, in serving order, to the least-loaded free agent of its team.

    Returns:
        (handoff id, agent) of each assignment made.
    """
    from handoff.queue import waiting

    made: List[Tuple[str, str]] = []
    for record in await waiting(ctx):
        now = ctx.now()
        handoff_id, sender = record["handoff_id"], record["sender"]
        status, _detail = (str(part) for part in await script(ctx.redis, AUTO_ASSIGN)(
            keys=[keys.record(handoff_id), keys.QUEUE, keys.agent_load("-"), keys.day_stats(ctx.day(now)), keys.RECENT_WAITS, keys.AGENTS],
            args=["", repr(now), "", keys.RECENT_LIMIT, scripts.STATS_TTL_S, "", _candidates(ctx, agents, record)],
        ))
        if status != "ok":
            continue
        assigned = str(await ctx.redis.hget(keys.record(handoff_id), "agent") or "")
        name = next((a.display_name for a in agents if a.username == assigned), assigned)
        await system_notice(ctx, handoff_id, sender, f"{name}（{assigned}）自动分配接入会话", texts.agent_joined(name))
        await publish(ctx, "claimed", sender=sender, handoff_id=handoff_id, agent=assigned, auto=True)
        made.append((handoff_id, assigned))
    return made
