"""A shopper with an open callback ticket writes again through the app channel: queued for an agent with
the ticket while agents are online (the bot does not read the message), answered by the bot otherwise."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict

import redis
from redis.asyncio import Redis

from bot.settings import Settings, load_settings
from handoff import agents, callbacks, keys, texts, tickets
from handoff.context import context_from_settings
from handoff.models import CallbackTicket
from tests.connectors.conftest import SECRET, send, signed
from tests.support.desk import write_policy

ServeChannel = Callable[..., Any]


def open_settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(load_settings({}), handoff_policy_file=write_policy(tmp_path / "service.yml"))


def book(redis_url: str, settings: Settings, sender: str, online: bool) -> str:
    """A callback ticket of customer C10001 in conversation ``sender``, with agent1 online or not."""
    now = time.time()
    ticket = CallbackTicket(callback_id=keys.new_callback_id(), sender=sender, customer_id="C10001", phone_masked="138****0000", tier="L3",
                            reason="requested", summary={"wanted": ["查询退款进度"]}, summary_text="顾客想知道退款进度",
                            window_start=now + 3600, window_end=now + 7200, created_at=now)

    async def go() -> None:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            ctx = context_from_settings(settings, client)
            assert await callbacks.create_callback(ctx, ticket)
            if online:
                await agents.heartbeat(ctx, "agent1")
        finally:
            await client.close()

    asyncio.run(go())
    return ticket.callback_id


def stored(redis_url: str, callback_id: str) -> Dict[str, str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return client.hgetall(keys.callback(callback_id))
    finally:
        client.close()


def test_back_while_agents_are_online_is_queued_with_the_ticket(serve_channel: ServeChannel, redis_url: str, tmp_path: Path) -> None:
    settings = open_settings(tmp_path)
    server = serve_channel(SECRET, settings=settings)
    callback_id = book(redis_url, settings, "conv-cb-back", online=True)
    status, body = send(server, "conv-cb-back", "我回来了，退款到账了吗", signed("C10001"))
    assert status == 202, body
    assert body["status"] == "queued" and body["position"] == 1
    assert body["notice"].startswith(f"您好，您之前登记的人工回访（工单 {callback_id}）现在就可以为您处理：已为您转入人工客服队列，您是下一位，预计")
    assert "取消人工" in body["notice"] and "稍后" not in body["notice"]
    assert server.bot.calls == []  # the message waits for the agent, the bot does not answer over them
    ticket = stored(redis_url, callback_id)
    assert ticket[tickets.LIVE_FIELD] == body["handoff_id"] and ticket["status"] == "open"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    (_, request), = client.xrange(keys.REQUESTS_STREAM)
    lines = [(fields["from"], fields["text"]) for _, fields in client.xrange(keys.transcript(body["handoff_id"]))]
    client.close()
    payload = json.loads(request["payload"])
    assert payload["handoff_id"] == body["handoff_id"] and payload["channel"] == "app" and payload["customer_id"] == "C10001"
    assert payload["summary_text"].startswith(f"【回访工单 {callback_id}")
    assert lines[-1] == ("shopper", "我回来了，退款到账了吗")
    # The next message goes to the same waiting conversation, with the usual answer.
    status, body_again = send(server, "conv-cb-back", "还要等多久", signed("C10001"))
    assert status == 202 and body_again["handoff_id"] == body["handoff_id"] and body_again["notice"].startswith("已收到您的留言")


def test_back_with_nobody_online_the_bot_answers(serve_channel: ServeChannel, redis_url: str, tmp_path: Path) -> None:
    settings = open_settings(tmp_path)
    server = serve_channel(SECRET, settings=settings)
    callback_id = book(redis_url, settings, "conv-cb-alone", online=False)
    status, body = send(server, "conv-cb-alone", "我回来了", signed("C10001"))
    assert status == 200 and [m.text for m in server.bot.calls] == ["我回来了"]
    assert tickets.LIVE_FIELD not in stored(redis_url, callback_id)


def test_an_explicit_request_for_a_human_takes_the_ticket_along(serve_channel: ServeChannel, redis_url: str, tmp_path: Path) -> None:
    settings = open_settings(tmp_path)
    server = serve_channel(SECRET, settings=settings)
    callback_id = book(redis_url, settings, "conv-cb-express", online=True)
    assert send(server, "conv-cb-express", "转人工", signed("C10001"))[0] == 200
    (call,) = server.bot.calls  # the bot completes the summary of the handoff the channel opened
    opened = call.metadata["handoff"]["id"]
    assert stored(redis_url, callback_id)[tickets.LIVE_FIELD] == opened
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    lines = [fields["text"] for _, fields in client.xrange(keys.transcript(opened))]
    client.close()
    assert any(line.startswith(f"顾客回到对话并要求人工，回访工单 {callback_id}（") for line in lines)
    assert texts.say("transcript_callback_joined", callback_id="x", reason="y", window="z").startswith("顾客回到对话并要求人工")
