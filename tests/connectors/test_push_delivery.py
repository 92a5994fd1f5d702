"""bot.push against the session's real redis-server: every outbox write reaches the channel the
conversation lives on, in order, once, and survives failed deliveries and consumer restarts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar
from zoneinfo import ZoneInfo

from redis.asyncio import Redis

from bot.handoff import queue
from bot.handoff.context import HandoffContext
from bot.handoff.conversation import agent_message
from bot.handoff.policy import load_policy
from bot.outbox import NOTICE_STREAM, Outbox
from bot.push import DeliveryFailed, PushDelivery, backoff_s, cursor_key, register_conversation
from desk.tests.helpers import request, write_policy

T = TypeVar("T")
Entry = Tuple[str, Dict[str, Any]]


def run(redis_url: str, scenario: Callable[[Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            return await scenario(client)
        finally:
            await client.close()

    return asyncio.run(main())


class Recorder:
    """A channel's deliver function that records what it was given, and can be told to fail."""

    def __init__(self) -> None:
        self.delivered: List[Tuple[str, str, Dict[str, Any]]] = []
        self.fail_next = 0
        self.calls = 0

    async def __call__(self, sender: str, registration: Dict[str, str], entries: List[Entry]) -> Optional[str]:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise DeliveryFailed("endpoint down")
        for entry_id, message in entries:
            self.delivered.append((sender, entry_id, message))
        return entries[-1][0]

    def texts(self, sender: str) -> List[str]:
        return [message["text"] for who, _, message in self.delivered if who == sender]


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [backoff_s(n) for n in (1, 2, 3, 4, 7, 30)] == [1, 2, 4, 8, 60, 60]


def test_messages_pushed_after_registration_reach_only_their_channel_in_order(redis_url: str) -> None:
    web, wechat = Recorder(), Recorder()

    async def scenario(client: Redis) -> None:
        outbox = Outbox(client, ttl_s=3600)
        await outbox.push("conv-web", {"text": "注册之前的消息", "from": "system"})
        await register_conversation(client, "conv-web", "web")
        await register_conversation(client, "conv-wx", "wechat", {"openid": "o-123"})
        consumers = [PushDelivery(client, "web", web, block_ms=100), PushDelivery(client, "wechat", wechat, block_ms=100)]
        for consumer in consumers:
            await consumer.start()
        try:
            for n in range(5):
                await outbox.push("conv-web", {"text": f"网页消息{n}", "from": "agent"})
            await outbox.push("conv-wx", {"text": "微信消息", "from": "agent"})
            await outbox.push("conv-unregistered", {"text": "没有渠道", "from": "system"})
            await until(lambda: len(web.delivered) == 5 and len(wechat.delivered) == 1)
            await asyncio.sleep(0.3)
        finally:
            for consumer in consumers:
                await consumer.stop()
        pending = await client.xpending(NOTICE_STREAM, "push:web")
        assert pending["pending"] == 0

    run(redis_url, scenario)
    assert web.texts("conv-web") == [f"网页消息{n}" for n in range(5)]
    assert wechat.texts("conv-wx") == ["微信消息"]


def test_a_failed_delivery_is_retried_and_nothing_is_lost_or_doubled(redis_url: str) -> None:
    channel = Recorder()
    channel.fail_next = 2

    async def scenario(client: Redis) -> None:
        await register_conversation(client, "conv-1", "app", {"callback_url": "http://shop.example/hook"})
        consumer = PushDelivery(client, "app", channel, block_ms=100)
        await consumer.start()
        try:
            await Outbox(client, ttl_s=3600).push("conv-1", {"text": "客服回复", "from": "agent"})
            await until(lambda: len(channel.delivered) == 1, timeout_s=15)
            await asyncio.sleep(0.5)
        finally:
            await consumer.stop()
        assert await client.get(cursor_key("app", "conv-1")) == channel.delivered[0][1]

    run(redis_url, scenario)
    assert channel.calls == 3
    assert channel.texts("conv-1") == ["客服回复"]


def test_messages_written_while_no_consumer_runs_are_delivered_when_one_starts(redis_url: str) -> None:
    first, second = Recorder(), Recorder()

    async def scenario(client: Redis) -> None:
        await register_conversation(client, "conv-2", "web")
        consumer = PushDelivery(client, "web", first, block_ms=100)
        await consumer.start()
        await Outbox(client, ttl_s=3600).push("conv-2", {"text": "一", "from": "agent"})
        await until(lambda: len(first.delivered) == 1)
        await consumer.stop()
        await Outbox(client, ttl_s=3600).push("conv-2", {"text": "二", "from": "agent"})
        await Outbox(client, ttl_s=3600).push("conv-2", {"text": "三", "from": "agent"})
        restarted = PushDelivery(client, "web", second, block_ms=100)
        await restarted.start()
        try:
            await until(lambda: len(second.delivered) == 2)
        finally:
            await restarted.stop()

    run(redis_url, scenario)
    assert first.texts("conv-2") == ["一"]
    assert second.texts("conv-2") == ["二", "三"]


def test_an_agent_reply_from_the_desk_is_announced_and_delivered(redis_url: str, tmp_path: Path) -> None:
    channel = Recorder()
    policy = load_policy(write_policy(tmp_path / "service.yml"))

    async def scenario(client: Redis) -> None:
        ctx = HandoffContext(client, policy, ZoneInfo("Asia/Shanghai"))
        req = request("conv-desk")
        await register_conversation(client, "conv-desk", "wechat", {"openid": "o-9"})
        consumer = PushDelivery(client, "wechat", channel, block_ms=100)
        await consumer.start()
        try:
            await queue.enqueue(ctx, req)
            await queue.materialize(ctx, req)
            claimed = await queue.claim(ctx, "conv-desk", "agent1", "小王")
            assert claimed.status == "ok", claimed
            result = await agent_message(ctx, "conv-desk", "agent1", "小王", "您好，我是人工客服小王")
            assert result.ok, result
            await until(lambda: "您好，我是人工客服小王" in channel.texts("conv-desk"))
        finally:
            await consumer.stop()

    run(redis_url, scenario)
    agent_messages = [message for _, _, message in channel.delivered if message.get("from") == "agent"]
    assert agent_messages and agent_messages[-1]["text"] == "您好，我是人工客服小王"
