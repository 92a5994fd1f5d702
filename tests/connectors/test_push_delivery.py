"""bot.push against the session's real redis-server: every outbox write reaches the channel the
conversation lives on, in order, once, and survives failed deliveries and consumer restarts; a
delivery that keeps failing becomes one dead letter that supervisors see and retry at the desk
(a real desk process); the app channel's callbacks (real HTTP receivers on 127.0.0.1) follow no
redirect and reach no address outside the allowed networks."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple, TypeVar
from zoneinfo import ZoneInfo

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from bot.outbox import NOTICE_STREAM, Outbox
from bot.push import (
    MAX_DELIVERY_ATTEMPTS,
    DeliveryFailed,
    PushDelivery,
    backoff_s,
    cursor_key,
    dead_letter_key,
    dead_letters,
    failure_key,
    open_dead_letter_key,
    register_conversation,
    retry_dead_letter,
)
from bot.redis_server import free_port
from bot.settings import load_settings
from handoff import queue
from handoff.context import HandoffContext
from handoff.conversation import agent_message
from handoff.policy import load_policy
from tests.connectors.conftest import SECRET, ChannelServer, fetch, push, send, signed
from tests.support.desk import desk_process, write_policy
from tests.support.handoff import request
from tests.support.metrics import in_process
from tests.support.waiting import wait_for

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


# -- dead letters ---------------------------------------------------------------------------------

QUICK_RETRIES: Dict[str, Any] = {"backoff": lambda attempts: 0.05, "min_idle_ms": 50, "block_ms": 50}
"""Retries a few tens of milliseconds apart instead of 1, 2, 4 ... 60 s."""


def test_dead_letters_come_after_the_configured_attempts() -> None:
    assert load_settings({}).push_max_attempts == MAX_DELIVERY_ATTEMPTS == 8
    assert load_settings({"PUSH_MAX_ATTEMPTS": "3"}).push_max_attempts == 3


async def until_async(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_failed_attempts_retries_dead_letters_and_deliveries_are_counted(redis_url: str) -> None:
    channel = Recorder()
    channel.fail_next = 10**6
    before = in_process()

    async def scenario(client: Redis) -> None:
        await register_conversation(client, "conv-counted", "app", {"callback_url": "http://shop.example/hook"})
        consumer = PushDelivery(client, "app", channel, max_attempts=3, **QUICK_RETRIES)
        await consumer.start()
        try:
            await Outbox(client, ttl_s=3600).push("conv-counted", {"text": "客服回复", "from": "agent"})
            await until(lambda: in_process().value("shop_push_dead_letters_total", channel="app") > before.value(
                "shop_push_dead_letters_total", channel="app"))
            channel.fail_next = 0
            (letter,) = await dead_letters(client)
            assert await retry_dead_letter(client, letter.id) == "conv-counted"
            await until(lambda: channel.texts("conv-counted") == ["客服回复"])
        finally:
            await consumer.stop()

    run(redis_url, scenario)
    after = in_process()
    grown = {name: after.value(name, channel="app") - before.value(name, channel="app") for name in (
        "shop_push_delivery_failures_total", "shop_push_retries_total", "shop_push_dead_letters_total", "shop_push_delivered_total")}
    assert grown == {"shop_push_delivery_failures_total": 3, "shop_push_retries_total": 2, "shop_push_dead_letters_total": 1,
                     "shop_push_delivered_total": 1}


def test_a_delivery_failing_every_attempt_becomes_one_dead_letter_and_a_retry_delivers_it(redis_url: str) -> None:
    channel = Recorder()
    channel.fail_next = 10**6

    async def scenario(client: Redis) -> None:
        await register_conversation(client, "conv-dead", "app", {"callback_url": "http://shop.example/hook"})
        consumer = PushDelivery(client, "app", channel, max_attempts=3, **QUICK_RETRIES)
        await consumer.start()
        try:
            outbox = Outbox(client, ttl_s=3600)
            first = await outbox.push("conv-dead", {"text": "客服回复一", "from": "agent"})
            await asyncio.sleep(0.3)  # a second notice, given up on later: it joins the open dead letter
            await outbox.push("conv-dead", {"text": "客服回复二", "from": "agent"})

            async def settled() -> bool:
                return (await client.xpending(NOTICE_STREAM, "push:app"))["pending"] == 0

            await until_async(settled)
            calls = channel.calls
            await asyncio.sleep(0.5)
            assert channel.calls == calls  # given up: no attempt after the dead letter
            (letter,) = await dead_letters(client)
            assert (letter.channel, letter.sender, letter.reason, letter.attempts, letter.first_undelivered) == (
                "app", "conv-dead", "endpoint down", 3, first)
            assert letter.id.startswith("app:") and abs(letter.at - time.time()) < 30
            assert await client.get(cursor_key("app", "conv-dead")) is None  # the cursor did not move
            assert not await client.exists(failure_key("app", "conv-dead"))
            kept, _ = await outbox.fetch("conv-dead")
            assert [message["text"] for message in kept] == ["客服回复一", "客服回复二"]

            channel.fail_next = 0
            assert await retry_dead_letter(client, letter.id) == "conv-dead"
            await until(lambda: channel.texts("conv-dead") == ["客服回复一", "客服回复二"])
            assert await client.xlen(dead_letter_key("app")) == 0
            assert not await client.exists(open_dead_letter_key("app", "conv-dead"))
            assert await retry_dead_letter(client, letter.id) is None  # retried once only
            assert await retry_dead_letter(client, "app:not-an-id") is None
            assert await retry_dead_letter(client, "mail:1-0") is None
        finally:
            await consumer.stop()

    run(redis_url, scenario)
    assert channel.calls >= 6  # three attempts for each notice, then the retried delivery


class Receiver:
    """A shop's callback endpoint on 127.0.0.1 (a real HTTP server): records every request and answers ``status``.

    Attributes:
        status: the answer to each request.
        location: the ``Location`` header sent with it (for a redirect).
        received: ``(method, path, decoded JSON body or None)`` of each request.
    """

    def __init__(self, status: int = 204, location: str = "") -> None:
        self.status = status
        self.location = location
        self.received: List[Tuple[str, str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                receiver.received.append((self.command, self.path, json.loads(raw) if raw else None))
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_PUT = answer  # http.server's naming

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.port = self.server.server_address[1]

    def url(self, host: str = "127.0.0.1", path: str = "/shop/push") -> str:
        return f"http://{host}:{self.port}{path}"

    def texts(self) -> List[str]:
        return [message["text"] for _, _, body in self.received if body for message in body["messages"]]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def quick(server: ChannelServer) -> ChannelServer:
    """Make the served channel's push delivery retry within milliseconds (before any notice is written)."""
    consumer = server.channel.push
    assert consumer is not None
    for name, value in QUICK_RETRIES.items():
        setattr(consumer, name, value)
    return server


def dead(redis_url: str, sender: str) -> Dict[str, str]:
    """The dead letter of a conversation on the app channel, once there is one."""

    def find() -> Optional[Dict[str, str]]:
        client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
        try:
            return next((fields for _, fields in client.xrange(dead_letter_key("app")) if fields["sender"] == sender), None)
        finally:
            client.close()

    return wait_for(find, timeout_s=20)


def test_a_callback_answering_500_ends_in_one_dead_letter_that_a_supervisor_retries(serve_channel: Callable[..., ChannelServer],
                                                                                      redis_url: str, tmp_path: Path,
                                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSH_MAX_ATTEMPTS", "3")
    desk = desk_process(tmp_path / "desk", redis_url, agents=("agent1", "supervisor")).start()
    try:
        with Receiver(status=500) as receiver:
            server = quick(serve_channel(SECRET))
            identity = signed("C10001")
            assert send(server, "conv-500", "你好", identity, callback_url=receiver.url()).status == 200
            (entry_id,) = push(redis_url, "conv-500", [{"text": "您好，我是客服小王", "from": "agent"}])
            letter = dead(redis_url, "conv-500")
            time.sleep(0.5)
            assert len(receiver.received) == 3  # PUSH_MAX_ATTEMPTS, then no more
            assert (letter["reason"], letter["attempts"], letter["first_undelivered"], letter["channel"]) == ("http_500", "3", entry_id, "app")
            status, fetched = fetch(server, "conv-500", identity=identity["identity_token"])
            assert status == 200 and [m["text"] for m in fetched["messages"]] == ["您好，我是客服小王"]  # still fetchable

            desk.login("agent1")
            desk.login("supervisor")
            status, body = desk.call("GET", "/api/push/dead-letters", "agent1")
            assert status == 403 and body["error"]["code"] == "forbidden"
            status, body = desk.call("GET", "/api/push/dead-letters", "supervisor")
            assert status == 200 and body["count"] == 1, body
            (listed,) = body["dead_letters"]
            assert (listed["sender"], listed["reason"], listed["attempts"], listed["first_undelivered"]) == (
                "conv-500", "http_500", 3, entry_id)
            assert desk.call("GET", "/api/metrics", "supervisor")[1]["push_dead_letters"] == 1
            assert desk.call("POST", f"/api/push/dead-letters/{listed['id']}/retry", "agent1")[0] == 403
            assert desk.call("GET", "/api/push/dead-letters?limit=0", "supervisor")[0] == 400
            assert desk.call("POST", "/api/push/dead-letters/app:x/retry", "supervisor")[0] == 400

            receiver.status = 204  # the shop's server is back
            status, body = desk.call("POST", f"/api/push/dead-letters/{listed['id']}/retry", "supervisor")
            assert status == 200 and body == {"status": "requeued", "id": listed["id"], "sender": "conv-500"}
            wait_for(lambda: receiver.texts() == ["您好，我是客服小王"] * 4, timeout_s=20)
            assert receiver.received[-1][2]["messages"][0]["cursor"] == entry_id
            status, body = desk.call("GET", "/api/push/dead-letters", "supervisor")
            assert status == 200 and body == {"dead_letters": [], "count": 0}
            assert desk.call("POST", f"/api/push/dead-letters/{listed['id']}/retry", "supervisor")[0] == 404
    finally:
        desk.stop()


def test_a_redirecting_callback_is_not_followed(serve_channel: Callable[..., ChannelServer], redis_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUSH_MAX_ATTEMPTS", "2")
    with Receiver(status=204) as target, Receiver(status=307) as redirecting:
        redirecting.location = target.url(path="/stolen")
        server = quick(serve_channel(SECRET))
        assert send(server, "conv-redirect", "你好", signed("C10001"), callback_url=redirecting.url()).status == 200
        push(redis_url, "conv-redirect", [{"text": "您好，我是客服小王", "from": "agent"}])
        assert dead(redis_url, "conv-redirect")["reason"] == "redirect"
    assert len(redirecting.received) == 2
    assert target.received == []  # the redirect target received nothing


def test_a_name_resolving_to_loopback_is_refused_unless_its_network_is_allowed(serve_channel: Callable[..., ChannelServer],
                                                                               redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PUSH_MAX_ATTEMPTS", "2")
    caplog.set_level(logging.INFO)
    closed = dataclasses.replace(load_settings({}), app_callback_allowed_networks="none")
    opened = dataclasses.replace(load_settings({}), app_callback_allowed_networks="127.0.0.0/8")
    with Receiver(status=204) as receiver:
        refusing = quick(serve_channel(SECRET, settings=closed))
        for sender, host in (("conv-by-name", "localhost"), ("conv-by-address", "127.0.0.1")):
            assert send(refusing, sender, "你好", signed("C10001"), callback_url=receiver.url(host)).status == 200
            push(redis_url, sender, [{"text": "秘密的客服回复", "from": "agent"}])
            assert dead(redis_url, sender)["reason"] == "forbidden_address"
        assert receiver.received == []
        assert "app.callback.forbidden_address sender=conv-by-name host=localhost" in caplog.text
        assert "秘密的客服回复" not in caplog.text  # refusals are logged without the message
        refusing.served.__exit__()  # its consumer leaves the app channel's group

        allowing = quick(serve_channel(SECRET, settings=opened))
        assert send(allowing, "conv-allowed", "你好", signed("C10001"), callback_url=receiver.url("localhost")).status == 200
        push(redis_url, "conv-allowed", [{"text": "您好，我是客服小王", "from": "agent"}])
        wait_for(lambda: receiver.texts() == ["您好，我是客服小王"], timeout_s=20)
