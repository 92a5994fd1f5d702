"""Agents' presence and load: who is online, how many conversations each has, how many more they can take."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

from handoff import keys
from handoff.context import HandoffContext
from handoff.policy import capacity_for, mean_handle_s


@dataclass(frozen=True)
class AgentState:
    """One agent's presence and load."""

    username: str
    online: bool
    load: int
    capacity: int

    @property
    def free(self) -> int:
        """Conversations the agent can still take."""
        return max(0, self.capacity - self.load) if self.online else 0


@dataclass(frozen=True)
class Availability:
    """What the online agents can take, and how long a conversation lasts lately.

    Attributes:
        agents: every known agent's state.
        handle_s: mean recent handling time, seconds.
    """

    agents: Sequence[AgentState]
    handle_s: float

    @property
    def online(self) -> List[str]:
        """Usernames of the online agents."""
        return [a.username for a in self.agents if a.online]

    @property
    def total_slots(self) -> int:
        """Conversations the online agents handle at once."""
        return sum(a.capacity for a in self.agents if a.online)

    @property
    def free_slots(self) -> int:
        """Conversations the online agents can still take."""
        return sum(a.free for a in self.agents)


async def heartbeat(ctx: HandoffContext, agent: str) -> None:
    """Mark an agent online for ``presence.heartbeat_ttl_s`` seconds (and note when that ends)."""
    now = ctx.now()
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.presence(agent), repr(now), ex=ctx.policy.heartbeat_ttl_s)
        pipe.set(keys.presence_until(agent), repr(now + ctx.policy.heartbeat_ttl_s), ex=keys.PRESENCE_MEMORY_S)
        pipe.sadd(keys.AGENTS, agent)
        await pipe.execute()


async def go_offline(ctx: HandoffContext, agent: str) -> None:
    """Mark an agent offline at once (logout); their conversations return to the queue after
    ``recovery.agent_offline_requeue_s`` unless they come back (:mod:`handoff.recovery`)."""
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.presence(agent))
        pipe.set(keys.presence_until(agent), repr(ctx.now()), ex=keys.PRESENCE_MEMORY_S)
        await pipe.execute()


async def agent_states(ctx: HandoffContext, usernames: Sequence[str] = ()) -> List[AgentState]:
    """Presence and load of the given agents (every agent that ever logged in when empty)."""
    names = sorted(set(usernames) or set(await ctx.redis.smembers(keys.AGENTS)))
    if not names:
        return []
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(keys.presence(name))
            pipe.scard(keys.agent_load(name))
        replies = await pipe.execute()
    return [
        AgentState(name, bool(replies[2 * i]), int(replies[2 * i + 1]), capacity_for(ctx.policy, name))
        for i, name in enumerate(names)
    ]


async def recent_handle_times(ctx: HandoffContext) -> List[float]:
    """The most recent handling times, newest first."""
    raw = await ctx.redis.lrange(keys.RECENT_HANDLES, 0, ctx.policy.recent_handles - 1)
    values: List[float] = []
    for value in raw:
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            continue
    return values


async def availability(ctx: HandoffContext) -> Availability:
    """Who can take conversations now, and the mean recent handling time."""
    states = await agent_states(ctx)
    return Availability(states, mean_handle_s(ctx.policy, await recent_handle_times(ctx)))


async def loads(ctx: HandoffContext, usernames: Sequence[str]) -> Dict[str, int]:
    """Conversations each agent has now."""
    return {state.username: state.load for state in await agent_states(ctx, usernames)}
