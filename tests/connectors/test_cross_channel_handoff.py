"""One conversation across channels: a verified shopper whose handoff is open on the website and
who writes from the app continues the same handoff, with the same agent and transcript, and the
agent's replies reach both conversations (handoff against the session's real redis-server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, TypeVar
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bot.outbox import Outbox
from handoff import keys, queue
from handoff.context import HandoffContext
from handoff.conversation import agent_message, route_shopper_message, transcript
from handoff.policy import load_policy
from tests.support.desk import write_policy
from tests.support.handoff import request

T = TypeVar("T")
WEB, APP, OTHER = "web-C000001-1", "app-C000001-1", "app-C000002-1"


def run(redis_url: str, policy_file: Path, scenario: Callable[[HandoffContext], Awaitable[T]]) -> T:
    async def main() -> T:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            return await scenario(HandoffContext(client, load_policy(policy_file), ZoneInfo("Asia/Shanghai")))
        finally:
            await client.close()

    return asyncio.run(main())


async def open_handoff_on_the_website(ctx: HandoffContext, claimed: bool = True) -> str:
    req = request(WEB, customer_id="C000001")
    await queue.enqueue(ctx, req)
    assert await queue.materialize(ctx, req) == 1
    if claimed:
        assert (await queue.claim(ctx, WEB, "agent1", "小王")).status == "ok"
    return req.handoff_id


async def texts(ctx: HandoffContext, sender: str) -> List[str]:
    messages, _ = await Outbox(ctx.redis, ttl_s=3600).fetch(sender)
    return [message["text"] for message in messages]


def test_the_app_joins_the_open_handoff_and_gets_the_agents_replies(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        handoff_id = await open_handoff_on_the_website(ctx)
        routed = await route_shopper_message(ctx, APP, "我换到App上了，刚才说的退款怎么样了", customer_id="C000001", channel="app")
        assert routed is not None and routed.joined
        assert (routed.handoff_id, routed.status, routed.agent) == (handoff_id, "assigned", "agent1")
        again = await route_shopper_message(ctx, APP, "还在吗", customer_id="C000001", channel="app")
        assert again is not None and not again.joined and again.handoff_id == handoff_id
        assert (await agent_message(ctx, WEB, "agent1", "小王", "在的，退款已经在处理")).ok
        entries = await transcript(ctx, handoff_id)
        return {"transcript": entries, "web": await texts(ctx, WEB), "app": await texts(ctx, APP)}

    result = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    shopper_lines = [entry["text"] for entry in result["transcript"] if entry["from"] == "shopper"]
    assert shopper_lines == ["我换到App上了，刚才说的退款怎么样了", "还在吗"]
    assert any("App" in entry["text"] for entry in result["transcript"] if entry["from"] == "system")
    assert "在的，退款已经在处理" in result["web"]
    assert result["app"] == ["在的，退款已经在处理"]


def test_another_customer_or_an_anonymous_shopper_does_not_join(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> List[Any]:
        await open_handoff_on_the_website(ctx)
        return [await route_shopper_message(ctx, OTHER, "你好", customer_id="C000002", channel="app"),
                await route_shopper_message(ctx, APP, "你好", customer_id=None, channel="app")]

    assert run(redis_url, write_policy(tmp_path / "service.yml"), scenario) == [None, None]


def test_resolving_ends_the_handoff_everywhere_and_asks_both_for_a_rating(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        handoff_id = await open_handoff_on_the_website(ctx)
        await route_shopper_message(ctx, APP, "在吗", customer_id="C000001", channel="app")
        assert (await queue.resolve(ctx, WEB, "agent1", "小王", "resolved")).ok
        return {
            "active": [await ctx.redis.get(keys.active(sender)) for sender in (WEB, APP)],
            "rating": [await ctx.redis.get(keys.rating_pending(sender)) for sender in (WEB, APP)],
            "after": await route_shopper_message(ctx, APP, "谢谢", customer_id="C000001", channel="app"),
            "app": await texts(ctx, APP),
            "handoff_id": handoff_id,
        }

    result = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    assert result["active"] == [None, None]
    assert result["rating"] == [result["handoff_id"]] * 2
    assert result["after"] is None
    assert len(result["app"]) == 2 and "打个分" in result["app"][-1]


def test_cancelling_from_the_joined_app_ends_the_wait_on_the_website_too(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> List[Any]:
        handoff_id = await open_handoff_on_the_website(ctx, claimed=False)
        routed = await route_shopper_message(ctx, APP, "在吗", customer_id="C000001", channel="app")
        assert routed is not None and routed.status == "queued"
        assert await queue.cancel(ctx, APP, handoff_id, "不等了") == "ok"
        return [await ctx.redis.get(keys.active(WEB)), await ctx.redis.get(keys.active(APP)),
                await ctx.redis.zscore(keys.QUEUE, handoff_id)]

    assert run(redis_url, write_policy(tmp_path / "service.yml"), scenario) == [None, None, None]
