"""Routing beyond pull on a real Redis: the team a handoff goes to, and auto-assignment by concurrent desks
that never gives a handoff twice nor an agent more than their capacity."""

from __future__ import annotations

import asyncio
from collections import Counter

from redis.asyncio import Redis

from handoff import agents, keys, queue
from handoff.context import HandoffContext
from handoff.policy import load_policy, team_for
from handoff.routing import Candidate, auto_assign
from tests.support.desk import POLICY_FILE, write_policy
from tests.support.handoff import request, run, sync_client


def test_team_follows_tier_reason_and_intent() -> None:
    policy = load_policy(POLICY_FILE)
    assert (team := team_for(policy, "L5", "requested", ["product_question"])) is not None and team.name == "VIP"
    assert (team := team_for(policy, "L2", "complaint", [])) is not None and team.name == "售后"
    assert (team := team_for(policy, "L1", "requested", ["return_request"])) is not None and team.name == "售后"
    assert (team := team_for(policy, "L1", "requested", ["product_question"])) is not None and team.name == "售前"


def test_concurrent_auto_assignment_respects_teams_and_capacity(redis_url: str, tmp_path) -> None:
    policy_file = write_policy(tmp_path / "service.yml", capacity={"default": 3}, routing={"auto_assign": True})
    team = [Candidate("agent1", "小王", ("after_sales",)), Candidate("agent2", "小李", ("after_sales",)), Candidate("agent3", "小张", ("presales",))]
    senders = [f"app:route{i}" for i in range(10)]

    async def scenario(ctx: HandoffContext):
        for name in ("agent1", "agent2", "agent3"):
            await agents.heartbeat(ctx, name)
        for sender in senders:
            req = request(sender, customer_id=None, tier="L1", reason="complaint", intents=("return_request",))
            await queue.enqueue(ctx, req)
            assert await queue.materialize(ctx, req) == 1
        clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(4)]
        try:
            passes = await asyncio.gather(*(auto_assign(HandoffContext(c, ctx.policy, ctx.tz), team) for c in clients))
        finally:
            for c in clients:
                await c.close()
        return [made for one in passes for made in one]

    made = run(redis_url, policy_file, scenario)
    handoffs = [h for h, _ in made]
    assert len(handoffs) == len(set(handoffs)) == 6
    assert Counter(a for _, a in made) == {"agent1": 3, "agent2": 3}
    client = sync_client(redis_url)
    assert client.scard(keys.agent_load("agent1")) == 3 and client.scard(keys.agent_load("agent3")) == 0
    assert client.zcard(keys.QUEUE) == 4
