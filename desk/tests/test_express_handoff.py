"""Queue first, summarise right after: an explicit 「转人工」 queued by the channel, completed by the bot.

Real redis-server; the desk's intake reads the requests stream as in production.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Dict
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from desk.intake import Intake, ensure_group
from handoff import agents, express, keys, queue
from handoff.context import HandoffContext
from tests.support.desk import write_policy
from tests.support.handoff import request, run, sync_client


async def _intake(ctx: HandoffContext, redis_url: str) -> int:
    """Let one desk take in every request waiting in the stream."""
    await ensure_group(ctx.redis)
    blocking = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        return await Intake(ctx, blocking, "desk-express", block_ms=100).read_new()
    finally:
        await blocking.close()


async def _opened(ctx: HandoffContext, redis_url: str, sender: str, customer_id: str, text: str = "转人工", take_in: bool = True):
    """With agent1 online, the channel queues an explicit request; a desk takes it in unless told not to."""
    await agents.heartbeat(ctx, "agent1")
    opened = await express.express_enqueue(ctx, sender, customer_id, "app", text)
    assert opened is not None
    if take_in:
        await _intake(ctx, redis_url)
    return opened


def _full_request(opened, tier: str = "L5", reason: str = "angry"):
    """The request the bot's handoff action builds for the handoff the channel opened."""
    full = request(opened.sender, customer_id=opened.customer_id, tier=tier, reason=reason)
    return dataclasses.replace(full, handoff_id=opened.handoff_id, enqueued_at=opened.enqueued_at, channel=opened.channel)


def test_an_explicit_request_is_queued_at_once_and_completed_by_the_bot(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        opened = await _opened(ctx, redis_url, "conv-express-1", "C000007", "转人工！！", take_in=False)
        taken_in = await _intake(ctx, redis_url)
        before = await ctx.redis.hgetall(keys.record(opened.handoff_id))
        score_before = await ctx.redis.zscore(keys.QUEUE, opened.handoff_id)
        assert await express.refine(ctx, _full_request(opened))
        refined = await _intake(ctx, redis_url)
        return {"opened": opened, "taken_in": taken_in, "before": before, "score_before": score_before, "refined": refined,
                "after": await ctx.redis.hgetall(keys.record(opened.handoff_id)),
                "score_after": await ctx.redis.zscore(keys.QUEUE, opened.handoff_id)}

    result = run(redis_url, policy, scenario)
    opened, before, after = result["opened"], result["before"], result["after"]
    assert result["taken_in"] == 1 and result["refined"] == 1
    assert before["status"] == "queued" and before["reason"] == "requested" and before["tier"] == ""
    assert "完整摘要正在生成" in before["summary_text"] and "转人工！！" in before["summary_text"]
    assert json.loads(before["summary"])["preliminary"] is True
    # the same handoff, completed: tier, priority, reason and summary from the bot; waiting time kept
    assert after["handoff_id"] == opened.handoff_id and after["status"] == "queued" and float(after["refined_at"]) >= float(before["queued_at"])
    assert after["tier"] == "L5" and after["priority"] == "1" and after["reason"] == "angry"
    assert after["summary_text"].startswith("【转人工摘要】\n顾客：张*") and "preliminary" not in json.loads(after["summary"])
    assert after["enqueued_at"] == before["enqueued_at"] and after["queued_at"] == before["queued_at"]
    assert result["score_after"] < result["score_before"]  # a top-tier, angry shopper moves up
    client = sync_client(redis_url)
    assert client.zcard(keys.QUEUE) == 1 and client.xlen(keys.REQUESTS_STREAM) == 0
    day = client.hgetall(client.keys("handoff:stats:day:*")[0])
    assert day["handoffs"] == "1" and day["reason:angry"] == "1" and day["reason:requested"] == "0"


def test_the_channel_leaves_everything_but_an_explicit_request_to_the_bot(redis_url: str, tmp_path: Path):
    open_policy = write_policy(tmp_path / "open.yml")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    holidays = [(today + timedelta(days=d)).isoformat() for d in (-1, 0, 1)]
    closed_policy = write_policy(tmp_path / "closed.yml", opening_hours={"closed_dates": holidays})

    async def with_agent(ctx: HandoffContext) -> list:
        await agents.heartbeat(ctx, "agent1")
        return [await express.express_enqueue(ctx, "conv-express-2", None, "web", text)
                for text in ("转人工 我的快递三天没动了", "人工客服电话多少", "不要转人工")]

    async def nobody_online(ctx: HandoffContext) -> Any:
        await agents.go_offline(ctx, "agent1")
        return await express.express_enqueue(ctx, "conv-express-3", None, "web", "转人工")

    async def closed(ctx: HandoffContext) -> Any:
        await agents.heartbeat(ctx, "agent1")
        return await express.express_enqueue(ctx, "conv-express-4", None, "web", "转人工")

    assert run(redis_url, open_policy, with_agent) == [None, None, None]
    assert run(redis_url, open_policy, nobody_online) is None  # the bot offers a callback then
    assert run(redis_url, closed_policy, closed) is None
    client = sync_client(redis_url)
    assert client.xlen(keys.REQUESTS_STREAM) == 0 and not client.keys("handoff:active:*")


def test_a_second_explicit_request_does_not_open_a_second_handoff(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> Any:
        await agents.heartbeat(ctx, "agent1")
        first = await express.express_enqueue(ctx, "conv-express-5", None, "app", "转人工")
        second = await express.express_enqueue(ctx, "conv-express-5", None, "app", "人工客服")
        return first, second

    first, second = run(redis_url, policy, scenario)
    assert first is not None and second is None
    assert sync_client(redis_url).get(keys.active("conv-express-5")) == first.handoff_id


def test_a_refinement_after_the_handoff_ended_changes_nothing(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> Any:
        opened = await _opened(ctx, redis_url, "conv-express-6", "C000002")
        assert await queue.cancel(ctx, opened.sender, opened.handoff_id, "算了不等了") == "ok"
        sent = await express.refine(ctx, _full_request(opened))
        # a refinement already in the stream when the shopper cancelled is taken in and ignored
        late = dataclasses.replace(_full_request(opened), refines=True)
        await ctx.redis.xadd(keys.REQUESTS_STREAM, {"handoff_id": late.handoff_id, "payload": late.to_json()})
        await _intake(ctx, redis_url)
        return opened, sent, await queue.materialize(ctx, late)

    opened, sent, materialized = run(redis_url, policy, scenario)
    client = sync_client(redis_url)
    record = client.hgetall(keys.record(opened.handoff_id))
    assert sent is False and materialized == 0
    assert record["status"] == "cancelled" and record["reason"] == "requested" and "refined_at" not in record
    assert client.zcard(keys.QUEUE) == 0


def test_a_refinement_taken_in_before_its_request_creates_the_full_entry_once(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> Any:
        opened = await _opened(ctx, redis_url, "conv-express-7", "C000003", take_in=False)
        full = dataclasses.replace(_full_request(opened, tier="L2", reason="requested"), refines=True)
        # a desk crashed holding the first request; another desk takes in the refinement first
        first = await queue.materialize(ctx, full)
        second = await queue.materialize(ctx, opened)
        return opened, first, second

    opened, first, second = run(redis_url, policy, scenario)
    record = sync_client(redis_url).hgetall(keys.record(opened.handoff_id))
    assert (first, second) == (1, 0)
    assert record["status"] == "queued" and record["tier"] == "L2" and "完整摘要正在生成" not in record["summary_text"]


def test_a_refinement_of_a_claimed_handoff_updates_the_summary_but_not_the_queue(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> Any:
        opened = await _opened(ctx, redis_url, "conv-express-8", "C000004", "人工客服")
        assert (await queue.claim(ctx, opened.sender, "agent1", "小王")).status == "ok"
        assert await express.refine(ctx, _full_request(opened, tier="L3", reason="requested"))
        await _intake(ctx, redis_url)
        return opened

    opened = run(redis_url, policy, scenario)
    client = sync_client(redis_url)
    record = client.hgetall(keys.record(opened.handoff_id))
    assert record["status"] == "assigned" and record["agent"] == "agent1" and record["tier"] == "L3"
    assert "完整摘要正在生成" not in record["summary_text"] and client.zcard(keys.QUEUE) == 0


def test_one_intake_batch_takes_many_conversations_at_once_and_keeps_each_in_order(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> Any:
        opened = [await _opened(ctx, redis_url, f"conv-batch-{n}", f"C{n + 1:06d}", take_in=False) for n in range(30)]
        for opened_request in opened[::2]:  # every other bot turn completes its handoff before the desk reads any
            assert await express.refine(ctx, _full_request(opened_request, tier="L5", reason="requested"))
        return opened, await _intake(ctx, redis_url)

    opened, handled = run(redis_url, policy, scenario)
    client = sync_client(redis_url)
    records = [client.hgetall(keys.record(request.handoff_id)) for request in opened]
    assert handled == 45 and client.xlen(keys.REQUESTS_STREAM) == 0 and client.zcard(keys.QUEUE) == 30
    assert [r["tier"] for r in records] == ["L5", ""] * 15
    assert all(r["status"] == "queued" and ("refined_at" in r) == (n % 2 == 0) for n, r in enumerate(records))
