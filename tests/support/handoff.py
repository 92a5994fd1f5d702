"""The handoff package against a test Redis: a context to run work in, handoff requests, a sync client."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Awaitable, Callable, Iterable, Optional, TypeVar
from zoneinfo import ZoneInfo

import redis as redis_sync
from redis.asyncio import Redis

from handoff import keys
from handoff.context import HandoffContext
from handoff.models import HandoffRequest
from handoff.policy import load_policy

T = TypeVar("T")


def run(redis_url: str, policy_file: Path, work: Callable[[HandoffContext], Awaitable[T]]) -> T:
    """Run a coroutine over a fresh handoff context (its own event loop and connections)."""

    async def go() -> T:
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
        try:
            return await work(HandoffContext(client, load_policy(policy_file), ZoneInfo("Asia/Shanghai"), redeliver_idle_ms=500))
        finally:
            await client.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(go())
    with ThreadPoolExecutor(max_workers=1) as pool:  # inside a running loop (e.g. Playwright's): use a thread
        return pool.submit(asyncio.run, go()).result()


def request(sender: str, customer_id: Optional[str] = "C000001", tier: Optional[str] = "L2", reason: str = "requested",
            intents: Iterable[str] = ("track_order", "human_agent")) -> HandoffRequest:
    """A handoff request as ``action_handoff`` builds it."""
    summary = {
        "who": {"name": "张*", "phone": "138****5678", "customer_id": customer_id or "", "verified": bool(customer_id),
                "verification": "已验证（商城登录）" if customer_id else "未验证身份", "tier": tier or "", "tier_name": "铜牌会员"},
        "wanted": ["查询物流", "要求人工客服"],
        "orders": [],
        "bot_told": [{"text": "您的订单 880000010001 运输中", "at": time.time()}],
        "reason": {"code": reason, "label": reason},
        "mood": "平稳",
        "last_turns": [{"from": "shopper", "text": "转人工", "at": time.time()}],
    }
    return HandoffRequest(keys.new_handoff_id(), sender, customer_id, tier, "铜牌会员", reason, list(intents), summary,
                          f"【转人工摘要】\n顾客：张*（138****5678），{tier}", time.time())


def sync_client(redis_url: str) -> redis_sync.Redis:
    """A synchronous client for assertions."""
    return redis_sync.Redis.from_url(redis_url, decode_responses=True)
