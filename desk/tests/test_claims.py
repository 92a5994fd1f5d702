"""Atomic claims: of 100 agents claiming the same conversation at the same moment, exactly one wins."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Tuple

from redis.asyncio import Redis

from handoff import keys, queue
from handoff.context import HandoffContext
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.http import http
from tests.support.waiting import wait_for

AGENTS = [f"agent{n}" for n in range(1, 101)]


def test_100_concurrent_claims_over_http_one_winner(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(agents=AGENTS)
    tokens = {agent: desk.login(agent) for agent in AGENTS}
    sender = "conv-race"
    req = request(sender)
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.zscore(keys.QUEUE, req.handoff_id) is not None)

    barrier = threading.Barrier(len(AGENTS))

    def claim(agent: str) -> Tuple[str, int, dict]:
        barrier.wait()
        status, body = http("POST", f"{desk.url}/api/conversations/{sender}/claim", token=tokens[agent], timeout=30)
        return agent, status, body

    with ThreadPoolExecutor(max_workers=len(AGENTS)) as pool:
        results = list(pool.map(claim, AGENTS))

    winners = [agent for agent, status, _ in results if status == 200]
    assert len(winners) == 1, [(a, s) for a, s, _ in results if s != 409]
    losers = [body for _, status, body in results if status != 200]
    assert len(losers) == 99 and all(body["error"]["code"] == "already_claimed" for body in losers)
    assert all(body["error"]["agent"] == winners[0] for body in losers)
    assert client.hget(keys.record(req.handoff_id), "agent") == winners[0]
    assert client.smembers(keys.agent_load(winners[0])) == {req.handoff_id}
    assert sum(client.scard(keys.agent_load(agent)) for agent in AGENTS) == 1
    assert client.zcard(keys.QUEUE) == 0


def test_100_concurrent_claims_on_separate_connections_one_winner(start_desk: Callable[..., DeskProcess]):
    desk = start_desk()
    sender = "conv-race-lib"
    req = request(sender)
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.zscore(keys.QUEUE, req.handoff_id) is not None)

    async def race(ctx: HandoffContext) -> List[str]:
        clients = [Redis.from_url(desk.redis_url, decode_responses=True) for _ in AGENTS]
        try:
            contexts = [HandoffContext(c, ctx.policy, ctx.tz) for c in clients]
            results = await asyncio.gather(*(queue.claim(c, sender, agent, agent) for c, agent in zip(contexts, AGENTS, strict=True)))
        finally:
            for c in clients:
                await c.close()
        return [r.status for r in results]

    statuses = run(desk.redis_url, desk.policy_file, race)
    assert statuses.count("ok") == 1 and statuses.count("taken") == 99
