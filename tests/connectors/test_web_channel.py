"""End-to-end tests of the web channel: a real Sanic server hosting the socket.io server, real
python-socketio clients over websockets, real Redis, a stub bot in place of Rasa."""

from __future__ import annotations

import asyncio
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import aiohttp
import pytest
import redis
import socketio
from conftest import ServedApp, StubBot  # tests/connectors/conftest.py
from redis.asyncio import Redis
from sanic import Sanic

from bot.handoff import conversation, queue
from bot.handoff.context import HandoffContext
from bot.handoff.models import HandoffRequest
from bot.identity import sign_customer_id
from bot.outbox import Outbox
from bot.redis_server import free_port
from bot.settings import load_settings
from connectors.binding import owner_key
from connectors.common import MESSAGES
from connectors.web import REDIS_CHANNEL, WebInput
from desk.tests.helpers import request, run, write_policy

SECRET = "test-shop-secret"
WAIT_S = 10.0
"""Longest wait for an event that must come (a failure guard, not a timing assertion)."""

Event = Tuple[str, Any]



@pytest.fixture(autouse=True)
def websocket_client_on_old_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-engineio's asyncio client passes ``aiohttp.ClientWSTimeout(ws_close=...)`` (aiohttp 3.10+)
    to ``ws_connect``; the aiohttp Rasa 3.6 pins takes that close timeout as a number."""
    if not hasattr(aiohttp, "ClientWSTimeout"):
        monkeypatch.setattr(aiohttp, "ClientWSTimeout", lambda ws_receive=None, ws_close=None: float(ws_close or 10.0), raising=False)


def signed(customer_id: str, **extra: Any) -> Dict[str, Any]:
    return {"customer_id": customer_id, "signature": sign_customer_id(SECRET, customer_id), **extra}


class Widget:
    """A socket.io client as the shop's widget uses the channel (websocket transport), recording every event."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.seen: List[Event] = []
        self.session_id: Optional[str] = None

        @self.sio.on("*")
        async def record(event: str, *args: Any) -> None:
            item = (event, args[0] if len(args) == 1 else list(args))
            self.seen.append(item)
            self.events.put_nowait(item)

    async def __aenter__(self) -> Widget:
        await self.sio.connect(self.url, transports=["websocket"], wait_timeout=WAIT_S)
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.sio.disconnect()

    async def next(self, *names: str) -> Event:
        """The next event among ``names``, skipping others."""
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT_S)
            if event[0] in names:
                return event

    async def start(self, session_id: Optional[str] = None, custom: Optional[Dict[str, Any]] = None) -> Event:
        """``session_request``; returns ``("session_confirm", id)`` or ``("error", {...})``."""
        payload: Dict[str, Any] = {"session_id": session_id}
        if custom is not None:
            payload["customData"] = custom
        await self.sio.emit("session_request", payload)
        event = await self.next("session_confirm", "error")
        if event[0] == "session_confirm":
            self.session_id = event[1]
        return event

    async def say(self, text: Any, **fields: Any) -> List[Dict[str, Any]]:
        """``user_uttered``; returns the ``bot_uttered`` payloads up to the end of the turn."""
        payload = {"message": text, "session_id": self.session_id, **fields}
        return await self.send(payload)

    async def send(self, *args: Any, event: str = "user_uttered") -> List[Dict[str, Any]]:
        """Emit any event with any payload; returns the ``bot_uttered`` payloads up to the end of the turn."""
        await self.sio.emit(event, args[0] if len(args) == 1 else tuple(args))
        replies = []
        while True:
            name, data = await self.next("bot_uttered", "turn_done")
            if name == "turn_done":
                return replies
            replies.append(data)

    async def pushed(self, count: int) -> List[Dict[str, Any]]:
        """The next ``count`` ``bot_uttered`` payloads."""
        return [(await self.next("bot_uttered"))[1] for _ in range(count)]


class WebServer:
    """A served ``WebInput`` channel with its stub bot."""

    def __init__(self, channel: WebInput, bot: StubBot, served: ServedApp) -> None:
        self.channel = channel
        self.bot = bot
        self.served = served

    @property
    def url(self) -> str:
        return self.served.url

    def widget(self) -> Widget:
        return Widget(self.url)


@pytest.fixture()
def serve_web(redis_url: str) -> Iterator[Callable[..., WebServer]]:
    """Factory serving a ``WebInput`` channel, mounted as Rasa mounts it, over the session's Redis."""
    from types import SimpleNamespace

    from rasa.core.channels.channel import register

    with ExitStack() as servers:

        def start(behaviour: str = "reply", action_server_url: Optional[str] = None, channel_redis_url: Optional[str] = None) -> WebServer:
            channel = WebInput(redis_url=channel_redis_url or redis_url, identity_secret=SECRET, settings=load_settings({}),
                               action_server_url=action_server_url or f"http://127.0.0.1:{free_port()}")
            bot = StubBot(behaviour)
            app = Sanic(f"web_channel_test_{free_port()}")
            app.ctx.agent = SimpleNamespace(handle_message=bot.handler())  # what `rasa run` gives Rasa's handler
            register([channel], app, route="/webhooks/")
            return WebServer(channel, bot, servers.enter_context(ServedApp(app)))

        yield start


def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


async def push(redis_url: str, sender: str, *messages: Dict[str, Any]) -> List[str]:
    connection = Redis.from_url(redis_url, decode_responses=True)
    try:
        return [await Outbox(connection, ttl_s=600).push(sender, message) for message in messages]
    finally:
        await connection.close()


def test_health_and_credentials_like_rasa_run(serve_web: Callable[..., WebServer], tmp_path: Path) -> None:
    import urllib.request

    from rasa.core.run import create_http_input_channels

    server = serve_web()
    with urllib.request.urlopen(f"{server.url}/webhooks/web/", timeout=WAIT_S) as answer:
        assert answer.status == 200
    credentials = tmp_path / "credentials.yml"
    credentials.write_text("connectors.web.WebInput:\n  identity_secret: from-file\n  cors_allowed_origins: http://shop.example\n",
                           encoding="utf-8")
    (channel,) = create_http_input_channels(None, str(credentials))
    assert isinstance(channel, WebInput) and channel.name() == "web" and channel.url_prefix() == "web"
    assert (channel.identity_secret, channel.cors_allowed_origins, channel.socketio_path) == ("from-file", "http://shop.example", "/socket.io")


def test_signed_customer_gets_verified_metadata_and_replies(serve_web: Callable[..., WebServer], redis_url: str) -> None:
    server = serve_web()

    async def scenario() -> List[Dict[str, Any]]:
        async with server.widget() as widget:
            event, session_id = await widget.start(custom=signed("C10001", verified=True, channel="evil", vip=True))
            assert event == "session_confirm" and isinstance(session_id, str)
            return await widget.say("  我的快递到哪了  ", customData={"tier": "L5"})

    replies = asyncio.run(scenario())
    assert replies == [
        {"text": "收到：我的快递到哪了", "quick_replies": [{"content_type": "text", "title": "查订单", "payload": "/order_status"}], "from": "bot"},
        {"text": "还有什么可以帮您？", "from": "bot"},
    ]
    (message,) = server.bot.calls
    assert message.metadata == {"channel": "web", "verified": True, "customer_id": "C10001"}
    assert message.text == "我的快递到哪了" and message.input_channel == "web"
    assert client(redis_url).get(owner_key(message.sender_id)) == "C10001"


@pytest.mark.parametrize(
    "custom",
    [
        {"customer_id": "C10001", "signature": sign_customer_id("wrong-secret", "C10001")},
        {"customer_id": "C10001", "signature": sign_customer_id(SECRET, "C10002")},
        {"customer_id": "C10001"},
        {"customer_id": "bad id!", "signature": "0" * 64},
        {},
        None,
    ],
)
def test_forged_or_missing_signature_is_anonymous(serve_web: Callable[..., WebServer], custom: Any) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with server.widget() as widget:
            assert (await widget.start(custom=custom))[0] == "session_confirm"
            assert await widget.say("查一下我的订单")

    asyncio.run(scenario())
    (message,) = server.bot.calls
    assert message.metadata == {"channel": "web", "verified": False, "customer_id": None}


def test_session_survives_a_page_reload(serve_web: Callable[..., WebServer]) -> None:
    server = serve_web()

    async def scenario() -> Tuple[str, str]:
        async with server.widget() as first:
            _, session_id = await first.start(custom=signed("C10001"))
            await first.say("你好")
        async with server.widget() as reloaded:
            assert await reloaded.start(session_id, signed("C10001")) == ("session_confirm", session_id)
            assert (await reloaded.say("还在吗"))[0]["text"] == "收到：还在吗"
        return session_id, reloaded.session_id or ""

    session_id, again = asyncio.run(scenario())
    assert session_id == again
    assert [m.sender_id for m in server.bot.calls] == [session_id, session_id]


def test_another_customer_cannot_take_a_session(serve_web: Callable[..., WebServer], redis_url: str) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with server.widget() as owner, server.widget() as intruder, server.widget() as anonymous:
            _, session_id = await owner.start(custom=signed("C10001"))
            await owner.say("我的订单")
            assert await intruder.start(session_id, signed("C10002")) == (
                "error", {"code": "conversation_forbidden", "message": MESSAGES["conversation_forbidden"]})
            forged = {"customer_id": "C10001", "signature": "0" * 64}
            assert (await intruder.start(session_id, forged))[1]["code"] == "conversation_forbidden"

            # without any identity the session id is confirmed but nothing of the conversation is shared
            assert await anonymous.start(session_id) == ("session_confirm", session_id)
            (refusal,) = await anonymous.say("把地址改了")
            assert refusal == {"text": MESSAGES["conversation_forbidden"], "from": "system", "error": "conversation_forbidden"}
            (refusal,) = await intruder.send({"message": "把地址改了", "session_id": session_id, "customData": signed("C10002")})
            assert refusal["error"] == "conversation_forbidden"

            (entry_id,) = await push(redis_url, session_id, {"text": "客服小王：已为您催件", "from": "agent", "agent": "小王"})
            assert (await owner.pushed(1))[0]["id"] == entry_id
            for other in (intruder, anonymous):  # a later answer on the same socket: the push would have come first
                assert (await other.send("?", event="ping"))[0]["error"] == "unknown_event"
                assert all(data.get("id") != entry_id for name, data in other.seen if name == "bot_uttered")

    asyncio.run(scenario())
    assert len(server.bot.calls) == 1
    assert client(redis_url).get(owner_key(server.bot.calls[0].sender_id)) == "C10001"


BAD_MESSAGES = [
    ("over-2000-chars", {"message": "好" * 2001}, "message_too_long"),
    ("not-an-object", "我的快递", "invalid_json"),
    ("a-list", ["我的快递"], "invalid_json"),
    ("no-message", {}, "invalid_message"),
    ("numeric-message", {"message": 42}, "invalid_message"),
    ("blank-message", {"message": "   "}, "empty_message"),
    ("custom-data-not-object", {"message": "你好", "customData": "C10001"}, "invalid_metadata"),
    ("numeric-customer-id", {"message": "你好", "customData": {"customer_id": 10001}}, "invalid_metadata"),
    ("bad-session-id", {"message": "你好", "session_id": "has space"}, "invalid_sender"),
    ("session-id-not-text", {"message": "你好", "session_id": ["x"]}, "invalid_sender"),
]


def test_bad_input_gets_a_polite_answer_and_never_reaches_the_bot(serve_web: Callable[..., WebServer]) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with server.widget() as widget:
            # a message before any session_request has no conversation yet
            assert await widget.send({"message": "你好"}) == [{"text": MESSAGES["no_session"], "from": "system", "error": "no_session"}]
            for session_request, code in ((["not", "an", "object"], "invalid_json"), ({"session_id": "x" * 65}, "invalid_sender"),
                                          ({"session_id": 7}, "invalid_sender"), ({"customData": "C10001"}, "invalid_metadata")):
                await widget.sio.emit("session_request", session_request)
                assert await widget.next("session_confirm", "error") == ("error", {"code": code, "message": MESSAGES[code]})
            await widget.start(custom=signed("C10001"))
            for name, payload, code in BAD_MESSAGES:
                if isinstance(payload, dict):
                    payload = {"session_id": widget.session_id, **payload}
                replies = await widget.send(payload)
                assert replies == [{"text": MESSAGES[code], "from": "system", "error": code}], name
            assert (await widget.send("一", "二"))[0]["error"] == "invalid_json"
            assert (await widget.send({"x": 1}, event="hack_the_bot"))[0]["error"] == "unknown_event"
            assert (await widget.say("好" * 2000))[0]["text"].startswith("收到：")

    asyncio.run(scenario())
    assert len(server.bot.calls) == 1


def test_bot_failures_are_answered_politely_and_logs_keep_no_text_or_customer(
    serve_web: Callable[..., WebServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failing, silent = serve_web("raise"), serve_web("silent")

    async def scenario() -> None:
        async with failing.widget() as widget:
            await widget.start(custom=signed("secret-cust-77"))
            assert await widget.say("我的手机号是13812345678") == [
                {"text": MESSAGES["bot_unavailable"], "from": "system", "error": "bot_unavailable"}]
        async with silent.widget() as widget:
            await widget.start()
            assert (await widget.say("退货"))[0]["error"] == "action_server_unreachable"

    asyncio.run(scenario())
    assert "web.message.failed" in caplog.text
    assert "13812345678" not in caplog.text and "secret-cust-77" not in caplog.text


async def hand_off(ctx: HandoffContext, req: HandoffRequest) -> None:
    """What ``action_handoff`` and the desk's intake do: the conversation waits in the human queue."""
    await queue.enqueue(ctx, req)
    await queue.materialize(ctx, req)


def test_redis_down_is_a_polite_refusal(serve_web: Callable[..., WebServer]) -> None:
    server = serve_web(channel_redis_url=f"redis://127.0.0.1:{free_port()}/0")

    async def scenario() -> None:
        async with server.widget() as widget:
            assert await widget.start(custom=signed("C10001")) == ("error", {"code": "bot_unavailable", "message": MESSAGES["bot_unavailable"]})
            replies = await widget.send({"message": "你好", "session_id": "conv-no-redis", "customData": signed("C10001")})
            assert replies == [{"text": MESSAGES["bot_unavailable"], "from": "system", "error": "bot_unavailable"}]

    asyncio.run(scenario())
    assert server.bot.calls == []


def test_messages_during_a_handoff_go_to_the_agent_not_the_bot(serve_web: Callable[..., WebServer], redis_url: str, tmp_path: Path) -> None:
    server = serve_web()
    policy = write_policy(tmp_path / "service.yml")
    sync = client(redis_url)

    async def scenario() -> None:
        async with server.widget() as widget:
            _, session_id = await widget.start(custom=signed("C000001"))
            req = request(session_id)
            await asyncio.to_thread(run, redis_url, policy, lambda ctx: hand_off(ctx, req))

            (queued,) = await widget.say("我的快递三天没动了")
            assert queued["from"] == "system" and queued["handoff"]["status"] == "queued"
            assert queued["handoff"]["position"] == 1 and "已收到您的留言" in queued["text"]

            claimed = await asyncio.to_thread(run, redis_url, policy, lambda ctx: queue.claim(ctx, session_id, "agent1", "小王"))
            assert claimed.status == "ok"
            joined = (await widget.pushed(1))[0]
            assert joined["from"] == "system" and "小王" in joined["text"]

            (ack,) = await widget.say("好的谢谢")
            assert ack["handoff"] == {"status": "with_agent", "handoff_id": req.handoff_id, "agent": "小王", "notice": ack["text"]}

            sent = await asyncio.to_thread(run, redis_url, policy,
                                           lambda ctx: conversation.agent_message(ctx, session_id, "agent1", "小王", "您好，我是客服小王"))
            assert sent.ok
            (reply,) = await widget.pushed(1)
            assert reply["text"] == "您好，我是客服小王" and reply["from"] == "agent" and reply["agent"] == "小王"
            assert reply["id"] == sent.data["cursor"]

            entries = await asyncio.to_thread(run, redis_url, policy, lambda ctx: conversation.transcript(ctx, req.handoff_id))
            shopper = [entry["text"] for entry in entries if entry.get("from") == "shopper"]
            assert shopper[-2:] == ["我的快递三天没动了", "好的谢谢"]

    asyncio.run(scenario())
    assert server.bot.calls == []
    sync.close()


def test_a_waiting_shopper_can_leave_the_queue(serve_web: Callable[..., WebServer], redis_url: str, tmp_path: Path) -> None:
    server = serve_web()
    policy = write_policy(tmp_path / "service.yml")

    async def scenario() -> None:
        async with server.widget() as widget:
            _, session_id = await widget.start()
            await asyncio.to_thread(run, redis_url, policy, lambda ctx: hand_off(ctx, request(session_id, customer_id=None)))
            (answer,) = await widget.say("取消人工")
            assert answer["from"] == "bot" and "已为您取消人工排队" in answer["text"]
            assert (await widget.say("我的快递到哪了"))[0]["text"] == "收到：我的快递到哪了"

    asyncio.run(scenario())
    assert [m.text for m in server.bot.calls] == ["我的快递到哪了"]


def test_pushed_messages_reach_every_tab_and_replay_after_reconnect(serve_web: Callable[..., WebServer], redis_url: str) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with server.widget() as tab1, server.widget() as tab2:
            _, session_id = await tab1.start(custom=signed("C10001"))
            await tab2.start(session_id, signed("C10001"))
            (first,) = await push(redis_url, session_id, {"text": "客服小王已接入", "from": "system"})
            for tab in (tab1, tab2):
                (message,) = await tab.pushed(1)
                assert (message["id"], message["text"], message["from"]) == (first, "客服小王已接入", "system")
        # the page is closed: the messages wait in the outbox
        later = await push(redis_url, session_id,
                           {"text": "已为您催件", "from": "agent", "agent": "小王"},
                           {"text": "请为本次服务打分", "from": "system", "buttons": [{"title": "5分 非常满意", "payload": "/rate_service"}]})
        async with server.widget() as reopened:
            await reopened.start(session_id, signed("C10001", last_message_id=first))
            replayed = await reopened.pushed(2)
            assert [m["id"] for m in replayed] == later
            assert replayed[0]["from"] == "agent" and replayed[0]["agent"] == "小王"
            assert replayed[1]["quick_replies"] == [{"content_type": "text", "title": "5分 非常满意", "payload": "/rate_service"}]
        async with server.widget() as fresh:  # no last id (storage cleared): everything, in order
            await fresh.start(session_id, signed("C10001", last_message_id="not-an-id"))
            assert [m["id"] for m in await fresh.pushed(3)] == [first, *later]

    asyncio.run(scenario())


def test_each_server_process_takes_its_own_id_among_the_socket_servers(redis_url: str) -> None:
    channel = WebInput(redis_url=redis_url, identity_secret=SECRET, settings=load_settings({}))
    app = Sanic(f"web_channel_host_id_{free_port()}")
    app.blueprint(channel.blueprint(StubBot().handler()), url_prefix="/webhooks/web")
    assert channel.sio is not None
    inherited = channel.sio.manager.host_id  # what a forked Sanic worker inherits from the parent
    with ServedApp(app):
        assert channel.sio.manager.host_id != inherited


def test_any_instance_delivers_to_a_shopper_connected_to_another(serve_web: Callable[..., WebServer], redis_url: str) -> None:
    serve_web()
    second = serve_web()

    async def scenario() -> None:
        async with Widget(second.url) as widget:
            _, session_id = await widget.start(custom=signed("C10001"))
            # what another process emits through the Redis manager reaches the socket held here
            elsewhere = socketio.AsyncRedisManager(redis_url, channel=REDIS_CHANNEL, write_only=True)
            await elsewhere.emit("bot_uttered", {"text": "来自另一台服务器", "from": "bot"}, room=session_id)
            assert (await widget.pushed(1))[0]["text"] == "来自另一台服务器"
            ids = await push(redis_url, session_id, *({"text": f"第{n}条", "from": "agent", "agent": "小王"} for n in range(1, 6)))
            assert [m["id"] for m in await widget.pushed(5)] == ids

    asyncio.run(scenario())
