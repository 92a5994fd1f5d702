"""The desk's intake: at-least-once delivery from the requests stream, exactly-once effect."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from pathlib import Path

from redis.asyncio import Redis

from bot import logs
from desk.intake import DEAD_LETTERS, Intake, ensure_group
from desk.tests.test_express_handoff import _intake as take_in
from handoff import keys, queue
from handoff.context import HandoffContext
from tests.support.desk import write_policy
from tests.support.handoff import request, run, sync_client


def test_requests_left_pending_by_a_crashed_desk_are_taken_over_once(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    requests = [request(f"conv-intake-{n}") for n in range(5)]

    async def scenario(ctx: HandoffContext) -> dict:
        for req in requests:
            await queue.enqueue(ctx, req)
        await ensure_group(ctx.redis)
        # a desk reads three requests and dies before acknowledging them
        crashed = await ctx.redis.xreadgroup(keys.CONSUMER_GROUP, "desk-crashed", {keys.REQUESTS_STREAM: ">"}, count=3)
        assert len(crashed[0][1]) == 3
        # one of them had even been materialized before the crash
        await queue.materialize(ctx, requests[0])
        blocking = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
        try:
            survivor = Intake(ctx, blocking, "desk-survivor", block_ms=100)
            new = await survivor.read_new()  # the two nobody had read
            reclaimed = await survivor.reclaim()  # nothing yet: the crashed desk's three are not idle long enough
            pending_before = (await ctx.redis.xpending(keys.REQUESTS_STREAM, keys.CONSUMER_GROUP))["pending"]
            await asyncio.sleep(0.6)  # HANDOFF_REDELIVER_IDLE_MS is 500 in the tests
            reclaimed += await survivor.reclaim()
            again = await survivor.reclaim()
        finally:
            await blocking.close()
        return {"new": new, "reclaimed": reclaimed, "again": again, "pending_before": pending_before,
                "pending_after": (await ctx.redis.xpending(keys.REQUESTS_STREAM, keys.CONSUMER_GROUP))["pending"]}

    result = run(redis_url, policy, scenario)
    assert result["new"] == 2 and result["pending_before"] == 3
    assert result["reclaimed"] == 3 and result["again"] == 0 and result["pending_after"] == 0
    client = sync_client(redis_url)
    assert client.zcard(keys.QUEUE) == 5
    assert sorted(client.zrange(keys.QUEUE, 0, -1)) == sorted(r.handoff_id for r in requests)
    assert client.xlen(keys.REQUESTS_STREAM) == 0
    day = client.keys("handoff:stats:day:*")[0]
    assert client.hget(day, "handoffs") == "5"  # the request materialized twice is counted once


def test_unreadable_requests_go_to_dead_letters(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> int:
        await ensure_group(ctx.redis)
        await ctx.redis.xadd(keys.REQUESTS_STREAM, {"handoff_id": "h" + "0" * 24, "payload": "{broken"})
        blocking = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
        try:
            return await Intake(ctx, blocking, "desk-a", block_ms=100).read_new()
        finally:
            await blocking.close()

    assert run(redis_url, policy, scenario) == 1
    client = sync_client(redis_url)
    assert client.xlen(DEAD_LETTERS) == 1 and client.xlen(keys.REQUESTS_STREAM) == 0


def test_a_shopper_who_cancels_before_intake_is_not_queued(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    req = request("conv-early-cancel")

    async def scenario(ctx: HandoffContext) -> int:
        await queue.enqueue(ctx, req)
        assert await queue.cancel(ctx, req.sender, req.handoff_id, "不等了") == "ok"
        return await queue.materialize(ctx, req)

    assert run(redis_url, policy, scenario) == 2
    client = sync_client(redis_url)
    assert client.zcard(keys.QUEUE) == 0 and client.hget(keys.record(req.handoff_id), "status") == "cancelled"


def test_the_desk_logs_taking_a_request_in_under_the_correlation_id_of_the_turn_that_made_it(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    with logs.correlated("turn-0123456789"):
        asked = request("conv-intake-correlated")  # made in the turn, as the bot's action makes it
    forged = dataclasses.replace(request("conv-intake-forged"), correlation_id='bad id {"level":"CRITICAL"}')
    assert asked.correlation_id == "turn-0123456789" and forged.correlation_id == ""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("desk"))
    intake_logger = logging.getLogger("desk.intake")
    intake_logger.addHandler(handler)

    async def scenario(ctx: HandoffContext) -> int:
        for req in (asked, forged):
            await queue.enqueue(ctx, req)
        return await take_in(ctx, redis_url)

    old_level = intake_logger.level
    intake_logger.setLevel(logging.INFO)
    try:
        assert run(redis_url, policy, scenario) == 2
    finally:
        intake_logger.removeHandler(handler)
        intake_logger.setLevel(old_level)
    lines = {line["message"].split(" sender=")[0].split("handoff=")[1]: line for line in map(json.loads, stream.getvalue().splitlines())}
    assert lines[asked.handoff_id]["correlation_id"] == "turn-0123456789"
    assert "correlation_id" not in lines[forged.handoff_id]
