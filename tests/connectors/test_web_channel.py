"""End-to-end tests of the web channel: a real Sanic server hosting the socket.io server, real
python-socketio clients over websockets, real Redis, a stub bot in place of Rasa."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
import redis
import socketio
from sanic import Sanic

from bot.identity import sign_customer_id
from bot.redis_server import free_port
from bot.settings import load_settings
from connectors.binding import owner_key
from connectors.common import MESSAGES
from connectors.web import REDIS_CHANNEL, WebInput
from handoff import conversation, queue
from handoff.context import HandoffContext
from handoff.models import HandoffRequest
from tests.connectors.conftest import (
    SECRET,
    STATIC_SIGNATURES,
    WAIT_S,
    ServedApp,
    StubBot,
    WebServer,
    Widget,
    assert_sent_by,
    signed,
    statically_signed,
)
from tests.connectors.conftest import push_async as push
from tests.support.desk import write_policy
from tests.support.handoff import request, run


def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


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
            event, confirm = await widget.start(custom=signed("C10001", verified=True, channel="evil", vip=True))
            assert event == "session_confirm" and confirm == {"session_id": widget.session_id}  # a customer's needs no token
            assert isinstance(widget.session_id, str)
            return await widget.say("  我的快递到哪了  ", customData={"tier": "L5"})

    replies = asyncio.run(scenario())
    assert replies == [
        {"text": "收到：我的快递到哪了", "quick_replies": [{"content_type": "text", "title": "查订单", "payload": "/order_status"}], "from": "bot"},
        {"text": "还有什么可以帮您？", "from": "bot"},
    ]
    (message,) = server.bot.calls
    assert_sent_by(message, "web", "C10001")
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
    server = serve_web(settings=load_settings(STATIC_SIGNATURES))

    async def scenario() -> None:
        async with server.widget() as widget:
            assert (await widget.start(custom=custom))[0] == "session_confirm"
            assert await widget.say("查一下我的订单")

    asyncio.run(scenario())
    (message,) = server.bot.calls
    assert_sent_by(message, "web", None)


def test_a_valid_static_signature_is_anonymous_unless_the_shop_still_accepts_them(serve_web: Callable[..., WebServer]) -> None:
    by_default, still_accepted = serve_web(), serve_web(settings=load_settings(STATIC_SIGNATURES))

    async def scenario() -> None:
        for server in (by_default, still_accepted):
            async with server.widget() as widget:
                await widget.open(custom=statically_signed("C10001"))
                assert (await widget.say("查一下我的订单"))[0]["text"] == "收到：查一下我的订单"

    asyncio.run(scenario())
    assert_sent_by(by_default.bot.calls[0], "web", None)
    assert_sent_by(still_accepted.bot.calls[0], "web", "C10001")


def test_session_survives_a_page_reload(serve_web: Callable[..., WebServer]) -> None:
    server = serve_web()

    async def scenario() -> Tuple[str, str]:
        async with server.widget() as first:
            session_id = await first.open(custom=signed("C10001"))
            await first.say("你好")
        async with server.widget() as reloaded:
            assert await reloaded.start(session_id, signed("C10001")) == ("session_confirm", {"session_id": session_id})
            assert (await reloaded.say("还在吗"))[0]["text"] == "收到：还在吗"
        return session_id, reloaded.session_id or ""

    session_id, again = asyncio.run(scenario())
    assert session_id == again
    assert [m.sender_id for m in server.bot.calls] == [session_id, session_id]


def test_another_customer_cannot_take_a_session(serve_web: Callable[..., WebServer], redis_url: str) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with server.widget() as owner, server.widget() as intruder, server.widget() as anonymous:
            session_id = await owner.open(custom=signed("C10001"))
            await owner.say("我的订单")
            assert await intruder.start(session_id, signed("C10002")) == (
                "error", {"code": "conversation_forbidden", "message": MESSAGES["conversation_forbidden"]})
            forged = {"customer_id": "C10001", "signature": "0" * 64}
            assert (await intruder.start(session_id, forged))[1]["code"] == "conversation_forbidden"

            # without any identity the session id is confirmed but nothing of the conversation is shared
            assert await anonymous.start(session_id) == ("session_confirm", {"session_id": session_id})
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


WEB_TEXT_EDGE_CASES = [
    # (id, what the widget sends, what the bot reads or the refusal code)
    ("lone-surrogate", "\ud800 你好", "\ufffd 你好"),
    ("nul", "\x00你好\x00", "你好"),
    ("control-characters", "\x07\x1b[31m红\x7f", "[31m红"),
    ("bidi-controls", "\u202e退货\u202c\u2066\u2069", "退货"),
    ("zero-width-inside", "转\u200b人\u200d工", "转人工"),
    ("zero-width-only", "\u200b\u200c\u200d\ufeff", "empty_message"),
    ("nul-only", "\x00", "empty_message"),
]


def test_text_edge_cases_are_cleaned_or_refused_never_a_crash(serve_web: Callable[..., WebServer]) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with server.widget() as widget:
            await widget.open()
            for name, text, expected in WEB_TEXT_EDGE_CASES:
                replies = await widget.say(text)
                if expected in MESSAGES:
                    assert replies == [{"text": MESSAGES[expected], "from": "system", "error": expected}], name
                else:
                    assert replies[0]["text"] == f"收到：{expected}", name
            # a lone surrogate anywhere else is no crash either
            assert (await widget.start("conv-\ud800"))[1]["code"] == "invalid_sender"
            custom = {"customer_id": "\ud800", "last_message_id": "\ud800", "conversation_token": widget.conversation_token}
            assert (await widget.start(widget.session_id, custom))[0] == "session_confirm"

    asyncio.run(scenario())
    assert [message.text for message in server.bot.calls] == [expected for _, _, expected in WEB_TEXT_EDGE_CASES if expected not in MESSAGES]


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
            session_id = await widget.open(custom=signed("C000001"))
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
            session_id = await widget.open()
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
            session_id = await tab1.open(custom=signed("C10001"))
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
            session_id = await widget.open(custom=signed("C10001"))
            # what another process emits through the Redis manager reaches the socket held here
            elsewhere = socketio.AsyncRedisManager(redis_url, channel=REDIS_CHANNEL, write_only=True)
            await elsewhere.emit("bot_uttered", {"text": "来自另一台服务器", "from": "bot"}, room=session_id)
            assert (await widget.pushed(1))[0]["text"] == "来自另一台服务器"
            ids = await push(redis_url, session_id, *({"text": f"第{n}条", "from": "agent", "agent": "小王"} for n in range(1, 6)))
            assert [m["id"] for m in await widget.pushed(5)] == ids

    asyncio.run(scenario())
