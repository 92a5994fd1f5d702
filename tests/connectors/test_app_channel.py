"""End-to-end tests of the app channel: a real Sanic server, real HTTP, real Redis, a stub bot."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Tuple

import pytest
import redis
from redis.asyncio import Redis

from bot.identity import conversation_token, sign_callback, sign_customer_id
from bot.redis_server import free_port
from bot.settings import load_settings
from connectors.app import AppInput, handoff_key
from connectors.binding import ANONYMOUS_OWNER, owner_key
from handoff import agents
from handoff.context import context_from_settings
from tests.connectors.conftest import (
    SECRET,
    STATIC_SIGNATURES,
    assert_error,
    assert_sent_by,
    fetch,
    http,
    push,
    send,
    signed,
    statically_signed,
)
from tests.support.desk import write_policy

ServeChannel = Callable[..., Any]


def test_health(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET)
    assert http("GET", f"{server.base}/") == (200, {"status": "ok"})


def test_signed_customer_gets_verified_metadata_and_rest_replies(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    metadata = {**signed("C10001"), "vip": True, "verified": True, "channel": "evil"}
    status, body = send(server, "conv-signed", "  我的快递到哪了  ", metadata)
    assert status == 200
    assert body == [
        {
            "recipient_id": "conv-signed",
            "text": "收到：我的快递到哪了",
            "buttons": [{"title": "查订单", "payload": "/order_status"}],
        },
        {"recipient_id": "conv-signed", "text": "还有什么可以帮您？"},
    ]
    (message,) = server.bot.calls
    assert_sent_by(message, "app", "C10001")
    assert message.text == "我的快递到哪了"
    assert message.sender_id == "conv-signed"
    assert message.input_channel == "app"
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.get(owner_key("conv-signed")) == "C10001"
    assert 0 < client.ttl(owner_key("conv-signed")) <= 30 * 24 * 3600
    client.close()


@pytest.mark.parametrize(
    "metadata",
    [
        {"customer_id": "C10001", "signature": sign_customer_id("wrong-secret", "C10001")},
        {"customer_id": "C10001", "signature": sign_customer_id(SECRET, "C10002")},
        {"customer_id": "C10001", "signature": "not-a-signature"},
        {"customer_id": "C10001"},
        {"customer_id": "bad id!", "signature": "0" * 64},
        {},
        None,
    ],
)
def test_forged_or_missing_signature_is_anonymous(serve_channel: ServeChannel, metadata: Any) -> None:
    server = serve_channel(SECRET, settings=load_settings(STATIC_SIGNATURES))
    status, body = send(server, "conv-forged", "查一下我的订单", metadata)
    assert status == 200 and body
    (message,) = server.bot.calls
    assert_sent_by(message, "app", None)


def test_a_valid_static_signature_is_anonymous_unless_the_shop_still_accepts_them(serve_channel: ServeChannel) -> None:
    by_default, still_accepted = serve_channel(SECRET), serve_channel(SECRET, settings=load_settings(STATIC_SIGNATURES))
    assert send(by_default, "conv-static", "查一下我的订单", statically_signed("C10001"))[0] == 200
    assert send(still_accepted, "conv-static-ok", "查一下我的订单", statically_signed("C10001"))[0] == 200
    assert_sent_by(by_default.bot.calls[0], "app", None)
    assert_sent_by(still_accepted.bot.calls[0], "app", "C10001")
    # the static claim carries on the customer's conversation only where it is accepted
    assert send(still_accepted, "conv-static-ok", "还有一个问题", statically_signed("C10001"))[0] == 200
    assert_error(*send(by_default, "conv-static-ok", "还有一个问题", statically_signed("C10001")), 403, "conversation_forbidden")


def test_conversation_hijack_is_refused_before_the_bot(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-owned", "你好", signed("C10001"))[0] == 200
    assert send(server, "conv-owned", "再问一下", signed("C10001"))[0] == 200
    assert len(server.bot.calls) == 2

    status, body = send(server, "conv-owned", "把订单地址改了", signed("C10002"))
    assert_error(status, body, 403, "conversation_forbidden")
    status, body = send(server, "conv-owned", "把订单地址改了")
    assert_error(status, body, 403, "conversation_forbidden")
    status, body = send(server, "conv-owned", "把订单地址改了", {"customer_id": "C10001", "signature": "0" * 64})
    assert_error(status, body, 403, "conversation_forbidden")
    status, body = send(server, "conv-owned", "把订单地址改了", statically_signed("C10001"))  # not accepted by default
    assert_error(status, body, 403, "conversation_forbidden")
    assert len(server.bot.calls) == 2

    assert send(server, "conv-anon", "随便看看")[0] == 200
    status, body = send(server, "conv-anon", "我登录了", signed("C10001"))
    assert_error(status, body, 403, "conversation_forbidden")
    assert len(server.bot.calls) == 3
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.get(owner_key("conv-anon")) == ANONYMOUS_OWNER
    client.close()


def test_concurrent_first_messages_bind_exactly_one_owner(serve_channel: ServeChannel) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = serve_channel(SECRET)
    customers = [f"C2000{n}" for n in range(8)]
    with ThreadPoolExecutor(len(customers)) as pool:
        statuses = list(pool.map(lambda c: send(server, "conv-race", "抢", signed(c))[0], customers))
    assert sorted(statuses) == [200] + [403] * (len(customers) - 1)
    assert len(server.bot.calls) == 1


INVALID_REQUESTS = [
    ("broken-json", b"{not json", 400, "invalid_json"),
    ("json-array", b"[1, 2]", 400, "invalid_json"),
    ("not-utf8", b"\xff\xfe", 400, "invalid_json"),
    ("numeric-sender", {"sender": 42, "message": "你好"}, 400, "invalid_sender"),
    ("sender-with-space", {"sender": "has space", "message": "你好"}, 400, "invalid_sender"),
    ("sender-too-long", {"sender": "x" * 65, "message": "你好"}, 400, "invalid_sender"),
    ("no-message", {"sender": "conv-x"}, 400, "invalid_message"),
    ("list-message", {"sender": "conv-x", "message": ["你好"]}, 400, "invalid_message"),
    ("blank-message", {"sender": "conv-x", "message": "   "}, 400, "empty_message"),
    ("message-2001-chars", {"sender": "conv-x", "message": "好" * 2001}, 413, "message_too_long"),
    ("metadata-not-object", {"sender": "conv-x", "message": "你好", "metadata": "C10001"}, 400, "invalid_metadata"),
    (
        "numeric-customer-id",
        {"sender": "conv-x", "message": "你好", "metadata": {"customer_id": 10001}},
        400,
        "invalid_metadata",
    ),
    ("body-over-64k", b"x" * (70 * 1024), 413, "payload_too_large"),
]


@pytest.mark.parametrize("body, status, code", [pytest.param(*case[1:], id=case[0]) for case in INVALID_REQUESTS])
def test_invalid_requests(serve_channel: ServeChannel, body: Any, status: int, code: str) -> None:
    server = serve_channel(SECRET)
    answer_status, answer = http("POST", f"{server.base}/webhook", body)
    assert_error(answer_status, answer, status, code)
    assert server.bot.calls == []


TEXT_EDGE_CASES = [
    # (id, the raw request body, the status, what the bot reads or the refusal code)
    ("lone-surrogate", rb'{"sender":"conv-text","message":"\ud800 \u4f60\u597d"}', 200, "\ufffd 你好"),
    ("lone-low-surrogate-only", rb'{"sender":"conv-text","message":"\udc80"}', 200, "\ufffd"),
    ("escaped-surrogate-pair", rb'{"sender":"conv-text","message":"\ud83d\ude00 \u597d\u8bc4"}', 200, "😀 好评"),
    ("nul", rb'{"sender":"conv-text","message":"\u0000\u4f60\u597d\u0000"}', 200, "你好"),
    ("control-characters", rb'{"sender":"conv-text","message":"\u0007\u001b[31m\u7ea2\u007f\u0085"}', 200, "[31m红"),
    ("tab-and-newlines-kept", rb'{"sender":"conv-text","message":"\u7b2c\u4e00\t\u884c\r\n\u7b2c\u4e8c\u884c"}', 200, "第一\t行\n第二行"),
    ("bidi-controls", rb'{"sender":"conv-text","message":"\u202e\u9000\u8d27\u202c\u2066\u2069"}', 200, "退货"),
    ("zero-width-inside", rb'{"sender":"conv-text","message":"\u8f6c\u200b\u4eba\u200d\u5de5"}', 200, "转人工"),
    ("zero-width-only", rb'{"sender":"conv-text","message":"\u200b\u200c\u200d\ufeff\u2060"}', 400, "empty_message"),
    ("nul-only", rb'{"sender":"conv-text","message":"\u0000"}', 400, "empty_message"),
    ("controls-and-spaces-only", rb'{"sender":"conv-text","message":" \u0001\u001f \u202e "}', 400, "empty_message"),
    ("surrogate-in-the-sender", rb'{"sender":"conv-\ud800","message":"\u4f60\u597d"}', 400, "invalid_sender"),
    ("surrogate-in-the-customer-id", rb'{"sender":"conv-text","message":"\u4f60\u597d","metadata":{"customer_id":"\ud800"}}', 200,
     "你好"),
    ("surrogate-in-the-identity-token", rb'{"sender":"conv-text","message":"\u4f60\u597d","metadata":{"identity_token":"\ud800.1.2"}}',
     401, "invalid_identity"),
    ("surrogate-in-the-callback-url", rb'{"sender":"conv-text","message":"\u4f60\u597d","callback_url":"http://127.0.0.1/\ud800"}',
     400, "invalid_callback_url"),
    ("surrogate-as-raw-bytes", b'{"sender":"conv-text","message":"\xed\xa0\x80"}', 200, "\ufffd"),  # decoded as a lone surrogate
    ("invalid-utf8", b'{"sender":"conv-text","message":"\xff\xfe"}', 400, "invalid_json"),
    ("nul-as-a-raw-byte", b'{"sender":"conv-text","message":"\x00"}', 400, "invalid_json"),
]


@pytest.mark.parametrize("body, status, expected", [pytest.param(*case[1:], id=case[0]) for case in TEXT_EDGE_CASES])
def test_text_edge_cases_are_cleaned_or_refused_never_a_server_error(serve_channel: ServeChannel, body: bytes, status: int,
                                                                     expected: str) -> None:
    server = serve_channel(SECRET)
    answer = http("POST", f"{server.base}/webhook", body)
    if status != 200:
        assert_error(*answer, status, expected)
        assert server.bot.calls == []
        return
    assert answer.status == 200 and answer.body[0]["text"] == f"收到：{expected}"
    (message,) = server.bot.calls
    assert message.text == expected
    assert_sent_by(message, "app", None)


def test_message_of_exactly_the_limit_is_accepted(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-long", "好" * 2000)[0] == 200


def test_bot_failure_is_503_and_logs_neither_text_nor_customer(
    serve_channel: ServeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = serve_channel(SECRET, behaviour="raise")
    status, body = send(server, "conv-down", "我的手机号是13812345678", signed("secret-cust-77"))
    assert_error(status, body, 503, "bot_unavailable")
    assert len(server.bot.calls) == 1
    assert "app.message.failed" in caplog.text
    assert "13812345678" not in caplog.text
    assert "secret-cust-77" not in caplog.text


def test_redis_down_during_binding_is_503(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET, channel_redis_url=f"redis://127.0.0.1:{free_port()}/0")
    status, body = send(server, "conv-noredis", "你好")
    assert_error(status, body, 503, "bot_unavailable")
    assert server.bot.calls == []


def test_no_reply_without_action_server_is_502_unreachable(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET, behaviour="silent")
    status, body = send(server, "conv-silent", "退货")
    assert_error(status, body, 502, "action_server_unreachable")
    assert len(server.bot.calls) == 1


def test_no_reply_with_healthy_action_server_is_502_no_reply(serve_channel: ServeChannel, healthy_action_server: str) -> None:
    server = serve_channel(SECRET, behaviour="silent", action_server_url=healthy_action_server)
    status, body = send(server, "conv-silent2", "退货")
    assert_error(status, body, 502, "no_reply")


def test_no_reply_during_handoff_is_202_with_agent(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET, behaviour="silent")
    client = redis.Redis.from_url(redis_url)
    client.set(handoff_key("conv-agent"), "agent1")
    client.close()
    status, body = send(server, "conv-agent", "人呢？", signed("C10001"))
    assert status == 202
    assert body == {"status": "with_agent", "messages": []}
    assert len(server.bot.calls) == 1


def test_a_retried_message_id_reaches_the_agent_once(serve_channel: ServeChannel, redis_url: str) -> None:
    """A shopper's app retries a message whose answer was lost: the agent's transcript has it once."""
    server = serve_channel(SECRET, behaviour="hands_off")
    assert send(server, "conv-retry", "转人工", signed("C10001"))[0] == 200
    answers = [send(server, "conv-retry", "我的订单是880000010001", signed("C10001"), message_id="m-1") for _ in range(3)]
    other = send(server, "conv-retry", "我的订单是880000010001", signed("C10001"), message_id="m-2")
    assert [status for status, _ in answers] == [202, 202, 202] and other[0] == 202
    assert all(body["handoff_id"] == "h" + "0" * 24 for _, body in answers)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    transcript = client.xrange("handoff:transcript:h" + "0" * 24)
    client.close()
    assert [fields["text"] for _, fields in transcript] == ["我的订单是880000010001"] * 2  # m-1 once, m-2 once
    assert [message.text for message in server.bot.calls] == ["转人工"]


@pytest.mark.parametrize("message_id", ["", 7, None, ["m"], "空格 id", "x" * 65, "a/b"])
def test_a_message_id_of_another_shape_is_refused(serve_channel: ServeChannel, message_id: Any) -> None:
    server = serve_channel(SECRET, behaviour="silent")
    status, body = send(server, "conv-msgid", "你好", signed("C10001"), message_id=message_id)
    if message_id == "":
        assert status != 400, body  # no id given: an ordinary message
    else:
        assert_error(status, body, 400, "invalid_message_id")
        assert server.bot.calls == []


def test_a_message_sent_while_the_bot_opens_a_handoff_goes_to_the_agent(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET, behaviour="hands_off")

    async def two_quick_messages() -> List[Tuple[int, Any]]:
        first = asyncio.ensure_future(asyncio.to_thread(send, server, "conv-race", "转人工", signed("C10001")))
        await asyncio.sleep(0.15)  # the bot is still opening the handoff
        second = await asyncio.to_thread(send, server, "conv-race", "我的订单是880000010001", signed("C10001"))
        return [await first, second]

    (first_status, _), (second_status, second_body) = asyncio.run(two_quick_messages())
    assert first_status == 200
    assert second_status == 202 and second_body["handoff_id"] == "h" + "0" * 24
    assert [message.text for message in server.bot.calls] == ["转人工"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    transcript = client.xrange("handoff:transcript:h" + "0" * 24)
    client.close()
    assert [fields["text"] for _, fields in transcript] == ["我的订单是880000010001"]


def test_an_explicit_request_for_a_human_is_queued_before_the_bot_reads_it(serve_channel: ServeChannel, redis_url: str,
                                                                           tmp_path: Path) -> None:
    settings = dataclasses.replace(load_settings({}), handoff_policy_file=write_policy(tmp_path / "service.yml"))
    server = serve_channel(SECRET, settings=settings)

    async def agent_online() -> None:
        client = Redis.from_url(redis_url, decode_responses=True)
        await agents.heartbeat(context_from_settings(settings, client), "agent1")
        await client.close()

    asyncio.run(agent_online())
    assert send(server, "conv-express", "人工客服！！", signed("C10001"))[0] == 200
    assert send(server, "conv-plain", "我的快递到哪了", signed("C10001"))[0] == 200
    express, plain = server.bot.calls
    opened = express.metadata["handoff"]
    assert server.bot.handoff_seen == [opened["id"], None]  # queued before the bot's turn; other messages untouched
    assert express.metadata["customer_id"] == "C10001" and "handoff" not in plain.metadata
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    (_, request), = client.xrange("handoff:requests")
    client.close()
    payload = json.loads(request["payload"])
    assert payload["handoff_id"] == opened["id"] and payload["enqueued_at"] == opened["enqueued_at"]
    assert payload["customer_id"] == "C10001" and payload["channel"] == "app" and payload["summary"]["preliminary"] is True


def test_an_explicit_request_sent_during_another_turn_is_queued_after_it(serve_channel: ServeChannel, redis_url: str,
                                                                          tmp_path: Path) -> None:
    settings = dataclasses.replace(load_settings({}), handoff_policy_file=write_policy(tmp_path / "service.yml"))
    server = serve_channel(SECRET, behaviour="slow", settings=settings)

    async def agent_online() -> None:
        client = Redis.from_url(redis_url, decode_responses=True)
        await agents.heartbeat(context_from_settings(settings, client), "agent1")
        await client.close()

    async def two_quick_messages() -> List[Tuple[float, int]]:
        async def timed(text: str) -> Tuple[float, int]:
            status, _ = await asyncio.to_thread(send, server, "conv-express-wait", text, signed("C10001"))
            return time.time(), status

        first = asyncio.ensure_future(timed("我的快递到哪了"))
        await asyncio.sleep(0.15)  # the bot is still answering the first message
        return [await first, await timed("转人工")]

    asyncio.run(agent_online())
    (first_done, first_status), (_, second_status) = asyncio.run(two_quick_messages())
    assert first_status == 200 and second_status == 200
    plain, express = server.bot.calls
    assert [plain.text, express.text] == ["我的快递到哪了", "转人工"]
    opened = express.metadata["handoff"]
    assert server.bot.handoff_seen == [None, opened["id"]]
    assert opened["enqueued_at"] >= first_done - 0.05  # queued once the first turn was over, not while it ran
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    requests = client.xrange("handoff:requests")
    client.close()
    assert [json.loads(fields["payload"])["handoff_id"] for _, fields in requests] == [opened["id"]]


def test_messages_paging_and_access_control(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-out", "转人工", signed("C10001"))[0] == 200
    ids = push(
        redis_url,
        "conv-out",
        [
            {"text": "您好，我是客服小王", "from": "agent"},
            {"text": "已为您登记退货", "from": "agent"},
            {"text": "会话已结束", "from": "system"},
        ],
    )
    token = signed("C10001")["identity_token"]

    status, body = fetch(server, "conv-out", "limit=2", identity=token)
    assert status == 200
    assert [m["text"] for m in body["messages"]] == ["您好，我是客服小王", "已为您登记退货"]
    assert [m["cursor"] for m in body["messages"]] == ids[:2]
    assert body["messages"][0]["from"] == "agent" and body["messages"][0]["recipient_id"] == "conv-out"
    assert body["cursor"] == ids[1]

    status, body = fetch(server, "conv-out", f"after={body['cursor']}", identity=token)
    assert status == 200 and [m["text"] for m in body["messages"]] == ["会话已结束"]
    assert body["cursor"] == ids[2]
    status, body = fetch(server, "conv-out", f"after={ids[2]}", identity=token)
    assert (status, body) == (200, {"messages": [], "cursor": ids[2]})

    static = "customer_id=C10001&signature=" + sign_customer_id(SECRET, "C10001")  # not accepted by default
    tampered = token[:-1] + ("1" if token.endswith("0") else "0")
    for query, identity in ((static, None), ("", signed("C10002")["identity_token"]),
                            ("customer_id=C10001&signature=" + "0" * 64, None), ("customer_id=C10001", None), ("", None)):
        status, body = fetch(server, "conv-out", query, identity=identity)
        assert_error(status, body, 403, "conversation_forbidden")
    assert_error(*fetch(server, "conv-out", "", identity=tampered), 401, "invalid_identity")
    status, body = fetch(server, "conv-out", token=conversation_token(SECRET, "conv-out"))  # an anonymous token opens no customer's
    assert_error(status, body, 403, "conversation_forbidden")

    status, body = fetch(server, "conv-out", "after=not-a-cursor", identity=token)
    assert_error(status, body, 400, "invalid_cursor")
    status, body = fetch(server, "conv-out", "limit=1000", identity=token)
    assert_error(status, body, 400, "invalid_limit")
    status, body = fetch(server, "conv-unknown", identity=token)
    assert_error(status, body, 404, "conversation_not_found")


def test_anonymous_conversation_messages_need_its_token_not_an_identity(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    status, body = fetch(server, "conv-anon-out")
    assert_error(status, body, 404, "conversation_not_found")
    first = send(server, "conv-anon-out", "你好")
    assert first.status == 200
    token = first.headers["X-Conversation-Token"]
    assert token == conversation_token(SECRET, "conv-anon-out") and first.headers["X-Conversation-Id"] == "conv-anon-out"
    assert fetch(server, "conv-anon-out", token=token) == (200, {"messages": [], "cursor": "0-0"})
    (cursor,) = push(redis_url, "conv-anon-out", [{"text": "客服已接入", "from": "system"}])
    status, body = fetch(server, "conv-anon-out", "after=0-0", token=token)
    assert status == 200 and body["cursor"] == cursor and body["messages"][0]["text"] == "客服已接入"
    later = send(server, "conv-anon-out", "谢谢", token=token)
    assert later.status == 200 and "X-Conversation-Token" not in later.headers  # given once, with the first answer


def test_a_message_without_a_conversation_id_starts_a_conversation_of_its_own(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET)
    first, second = send(server, None, "你好"), send(server, None, "你好")
    assert first.status == 200 and second.status == 200
    sender = first.headers["X-Conversation-Id"]
    assert sender.startswith("app-") and len(sender) == len("app-") + 32 and sender != second.headers["X-Conversation-Id"]
    assert first.headers["X-Conversation-Token"] == conversation_token(SECRET, sender)
    assert [message.sender_id for message in server.bot.calls] == [sender, second.headers["X-Conversation-Id"]]
    assert first.body[0]["recipient_id"] == sender
    assert send(server, sender, "继续", token=first.headers["X-Conversation-Token"]).status == 200
    customer = send(server, None, "你好", signed("C10001"))
    assert customer.status == 200 and "X-Conversation-Token" not in customer.headers


def test_from_credentials_accepts_missing_and_partial_credentials() -> None:
    channel = AppInput.from_credentials(None)
    assert AppInput.name() == "app" and channel.url_prefix() == "app"
    custom = AppInput.from_credentials(
        {"redis_url": "redis://127.0.0.1:6999/2", "identity_secret": "s", "action_server_url": "http://h:1/"}
    )
    assert (custom.redis_url, custom.identity_secret, custom.action_server_url) == (
        "redis://127.0.0.1:6999/2",
        "s",
        "http://h:1",
    )
    assert AppInput.from_credentials({"redis_url": None}).redis_url == channel.redis_url


def test_mounted_by_rasa_register_under_webhooks_app(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET, mount_with_rasa=True)
    assert http("GET", f"{server.base}/") == (200, {"status": "ok"})
    status, body = send(server, "conv-rasa", "你好", signed("C10001"))
    assert status == 200 and body[0]["recipient_id"] == "conv-rasa"
    assert_sent_by(server.bot.calls[0], "app", "C10001")


def test_loaded_from_a_credentials_file_like_rasa_run(tmp_path: Path) -> None:
    from rasa.core.run import create_http_input_channels

    credentials = tmp_path / "credentials.yml"
    credentials.write_text(
        "rest:\nconnectors.app.AppInput:\n  identity_secret: from-file\n  redis_url: redis://127.0.0.1:6999/3\n",
        encoding="utf-8",
    )
    channels = create_http_input_channels(None, str(credentials))
    (app_channel,) = [channel for channel in channels if channel.name() == "app"]
    assert isinstance(app_channel, AppInput)
    assert app_channel.identity_secret == "from-file"
    assert app_channel.redis_url == "redis://127.0.0.1:6999/3"
    assert app_channel.url_prefix() == "app"


class _Callbacks(BaseHTTPRequestHandler):
    """The shop's callback endpoint: records what it receives; answers 500 to the first POST."""

    received: ClassVar[List[Tuple[Dict[str, str], bytes]]] = []

    def do_POST(self) -> None:  # http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        first = not _Callbacks.received
        _Callbacks.received.append(({name: value for name, value in self.headers.items()}, body))
        self.send_response(500 if first else 204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


def test_pushed_messages_are_posted_signed_to_the_callback_url_and_stay_fetchable(serve_channel: ServeChannel, redis_url: str) -> None:
    _Callbacks.received = []
    endpoint = ThreadingHTTPServer(("127.0.0.1", free_port()), _Callbacks)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    try:
        server = serve_channel(SECRET)
        callback_url = f"http://127.0.0.1:{endpoint.server_address[1]}/shop/push"
        status, _ = send(server, "conv-callback", "你好", signed("C10001"), callback_url=callback_url)
        assert status == 200
        ids = push(redis_url, "conv-callback", [{"text": "您好，我是客服小王", "from": "agent"}])
        deadline = time.monotonic() + 15
        while len(_Callbacks.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        endpoint.shutdown()
        endpoint.server_close()
    assert len(_Callbacks.received) == 2  # refused once (500), delivered on the retry
    headers, body = _Callbacks.received[-1]
    assert headers["X-Shop-Signature"] == sign_callback(SECRET, headers["X-Shop-Timestamp"], body)
    delivered = json.loads(body)
    assert delivered["sender"] == "conv-callback"
    assert [(m["text"], m["from"], m["cursor"]) for m in delivered["messages"]] == [("您好，我是客服小王", "agent", ids[0])]
    status, fetched = fetch(server, "conv-callback", identity=signed("C10001")["identity_token"])
    assert status == 200 and [m["text"] for m in fetched["messages"]] == ["您好，我是客服小王"]


@pytest.mark.parametrize("url", ["http://shop.example.com/push", "ftp://127.0.0.1/push", "javascript:alert(1)",
                                 "http://user@127.0.0.1/push", 42, "http://127.0.0.1/" + "x" * 600, "http://127.0.0.1/推送"])
def test_a_callback_url_outside_the_allowed_hosts_is_refused(serve_channel: ServeChannel, url: Any) -> None:
    server = serve_channel(SECRET)
    status, body = send(server, "conv-bad-callback", "你好", signed("C10001"), callback_url=url)
    assert status == 400 and body["error"]["code"] == "invalid_callback_url"
    assert server.bot.calls == []
