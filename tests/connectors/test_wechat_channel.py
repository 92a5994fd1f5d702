"""The wechat channel end to end: a real Sanic server with a stub bot, the simulated WeChat server as a
real process (signed XML posts, retries, tokens, customer-service messages) and the tests' real Redis.
Safe mode is checked against ``wechatpy`` (PyPI), an implementation of Tencent's scheme independent
of this project; a worker dying mid-turn is a forked process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import logging
import multiprocessing
import os
import secrets
import signal
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
import redis
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from rasa.core.channels.channel import UserMessage, register
from sanic import Sanic
from wechatpy.crypto import WeChatCrypto

from bot.identity import verify_channel_identity
from bot.logs import valid_correlation_id
from bot.outbox import Outbox
from bot.settings import load_settings
from connectors import common, wechat_leases
from connectors.binding import owner_key
from connectors.common import MESSAGES, SENDER_PATTERN
from connectors.wechat import LEASE_MS, TEXTS, WECHAT_OWNER, WeChatInput, binding_signature, conversation_id
from connectors.wechat_crypto import InvalidAppId, InvalidCiphertext, InvalidSignature, MessageCrypto, WeChatCryptoError
from handoff import queue
from handoff.context import HandoffContext
from handoff.conversation import agent_message, transcript
from handoff.texts import cancelled, rating_buttons
from tests.connectors.conftest import ServedApp
from tests.support.desk import write_policy
from tests.support.handoff import request, run
from tests.support.http import http
from tests.support.waiting import wait_for
from wechat_sim.app import UNAVAILABLE
from wechat_sim.tests.helpers import (
    APPID,
    APPSECRET,
    ENCODING_AES_KEY,
    SHOP_SECRET,
    TOKEN,
    SimProcess,
    expected_signature,
    peer,
    peer_decrypted,
    peer_encrypted,
    peer_opened,
    peer_signature,
    sim_server_fixture,  # noqa: F401  (the sim_server fixture)
)

_names = itertools.count()


@dataclass
class Bot:
    """A stub of Rasa's message handler: records messages, answers after ``delay_s`` or fails."""

    behaviour: str = "reply"
    delay_s: float = 0.0
    calls: List[UserMessage] = field(default_factory=list)

    def texts(self) -> List[str]:
        return [str(message.text) for message in self.calls]

    def handler(self) -> Callable[[UserMessage], Awaitable[None]]:
        async def on_new_message(message: UserMessage) -> None:
            self.calls.append(message)
            await asyncio.sleep(self.delay_s)
            out = message.output_channel
            if self.behaviour == "raise":
                raise ConnectionError(f"tracker store unreachable while handling {message.text}")
            if self.behaviour == "silent":
                return
            if message.text == "评价":
                await out.send_text_with_buttons(message.sender_id, "请为本次服务打分", rating_buttons())
                return
            if message.text == "长":
                await out.send_text_message(message.sender_id, "很长的回答。" * 400)
                return
            await out.send_text_with_buttons(message.sender_id, f"收到：{message.text}",
                                             [{"title": "查订单", "payload": "/order_status"}, {"title": "退货", "payload": "/return_request"}])
            await out.send_text_message(message.sender_id, "还有什么可以帮您？")

        return on_new_message


@dataclass
class Served:
    channel: WeChatInput
    bot: Bot
    app: ServedApp
    sim: SimProcess

    @property
    def base(self) -> str:
        return f"{self.app.url}/webhooks/wechat"


@pytest.fixture()
def serve(sim_server: SimProcess, redis_url: str) -> Iterator[Callable[..., Served]]:
    """Factory serving a wechat channel over the tests' Redis, with the simulator posting to it."""
    started: List[ServedApp] = []

    def start(behaviour: str = "reply", delay_s: float = 0.0, budget_s: float = 1.0, sim_timeout_s: float = 5.0,
              mount_with_rasa: bool = False, aes_key: str = "", lease_ms: int = LEASE_MS) -> Served:
        channel = WeChatInput(token=TOKEN, appid=APPID, appsecret=APPSECRET, api_base=sim_server.url, reply_budget_s=budget_s,
                              redis_url=redis_url, identity_secret=SHOP_SECRET, settings=load_settings({}), encoding_aes_key=aes_key,
                              lease_ms=lease_ms)
        bot = Bot(behaviour, delay_s)
        app = Sanic(f"wechat_channel_test_{next(_names)}")
        if mount_with_rasa:  # exactly what `rasa run` does: Rasa's own handler forwards to app.ctx.agent
            app.ctx.agent = SimpleNamespace(handle_message=bot.handler())
            register([channel], app, route="/webhooks/")
        else:
            app.blueprint(channel.blueprint(bot.handler()), url_prefix="/webhooks/wechat")
        served = ServedApp(app).__enter__()
        started.append(served)
        sim_server.call("POST", "/sim/reset")
        sim_server.configure(webhook_url=f"{served.url}/webhooks/wechat/webhook", timeout_s=sim_timeout_s, retries=3,
                             token_ttl_s=7200, token_grace_s=300, encoding_aes_key=aes_key)
        return Served(channel, bot, served, sim_server)

    yield start
    for served in reversed(started):
        served.__exit__()


def new_openid() -> str:
    return "o" + secrets.token_urlsafe(20)[:27]


def signed(timestamp: Optional[int] = None, nonce: Optional[str] = None, token: str = TOKEN) -> Dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    once = nonce or str(secrets.randbelow(10**9))
    return {"signature": expected_signature(token, stamp, once), "timestamp": stamp, "nonce": once}


def post_xml(server: Served, body: bytes, query: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    return http("POST", f"{server.base}/webhook?{urlencode(query if query is not None else signed())}", raw=body)


def text_xml(openid: str, content: str, msg_id: str = "") -> bytes:
    return (f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id or secrets.randbelow(10**16)}</MsgId></xml>").encode()


def bind_body(openid: str, customer_id: str, secret: str = SHOP_SECRET, timestamp: Optional[int] = None) -> Dict[str, Any]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"openid": openid, "customer_id": customer_id, "timestamp": stamp,
            "signature": binding_signature(secret, "bind", openid, customer_id, stamp)}


def shopper(message: UserMessage) -> Dict[str, Any]:
    """The metadata the bot got, without the channel-signed identity (checked to name the same customer)."""
    metadata = dict(message.metadata or {})
    identity = metadata.pop("identity", None)
    assert valid_correlation_id(metadata.pop("correlation_id", None)), message.metadata  # the turn's id in the logs
    assert identity is not None and identity["customer_id"] == metadata["customer_id"]
    assert verify_channel_identity(SHOP_SECRET, message.sender_id, identity) == metadata["customer_id"]
    return metadata


def received(sim: SimProcess, openid: str, kind: str) -> List[str]:
    return [m["text"] for m in sim.inbox(openid) if m["kind"] == kind]


def custom_messages(sim: SimProcess, openid: str, count: int = 1) -> List[str]:
    """The customer-service messages a shopper received, once there are ``count`` of them."""
    wait_for(lambda: len(received(sim, openid, "custom")) >= count, timeout_s=15)
    return received(sim, openid, "custom")


def test_url_verification_echoes_only_for_a_fresh_valid_signature(serve: Callable[..., Served]) -> None:
    server = serve()
    assert server.sim.call("POST", "/sim/verify", {})[1]["ok"] is True
    url = f"{server.base}/webhook"
    query = {**signed(), "echostr": "8723648723"}
    assert http("GET", f"{url}?{urlencode(query)}") == (200, 8723648723)
    assert http("GET", f"{url}?{urlencode(query)}")[0] == 403  # the same nonce again: a replay
    forged = {**signed(token="not-the-token"), "echostr": "1"}
    stale = {**signed(timestamp=int(time.time()) - 400), "echostr": "1"}
    future = {**signed(timestamp=int(time.time()) + 400), "echostr": "1"}
    for bad in (forged, stale, future, {"echostr": "1"}, {**signed(), "signature": "zz", "echostr": "1"}):
        assert http("GET", f"{url}?{urlencode(bad)}")[0] == 403
    assert http("GET", f"{url}?{urlencode(signed())}")[0] == 400
    assert http("GET", f"{server.base}/") == (200, {"status": "ok"})


def test_a_text_gets_a_passive_reply_and_the_bot_an_anonymous_conversation(serve: Callable[..., Served], redis_url: str) -> None:
    server = serve()
    openid = new_openid()
    outcome = server.sim.send(openid, "  我的快递到哪了 ")
    assert outcome["outcome"] == "reply" and outcome["attempts"] == 1, outcome
    assert outcome["reply"]["content"] == "收到：我的快递到哪了\n\n还有什么可以帮您？\n\n回复数字选择：\n1. 查订单\n2. 退货"
    (message,) = server.bot.calls
    sender = conversation_id(APPID, openid)
    assert message.sender_id == sender and sender.startswith("wx-") and SENDER_PATTERN.fullmatch(sender)
    assert openid not in sender
    assert message.text == "我的快递到哪了" and message.input_channel == "wechat"
    assert shopper(message) == {"channel": "wechat", "verified": False, "customer_id": None}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.get(owner_key(sender)) == WECHAT_OWNER
    assert client.hget(f"conversation:channel:{sender}", "openid") == openid
    client.close()


def test_numbers_pick_the_offered_buttons(serve: Callable[..., Served]) -> None:
    server = serve()
    openid = new_openid()
    server.sim.send(openid, "你好")
    server.sim.send(openid, "2")
    server.sim.send(openid, "１")  # full-width digit
    server.sim.send(openid, "9")  # not offered: passed on as typed
    rating = server.sim.send(openid, "评价")["reply"]["content"]
    assert rating == "请为本次服务打分\n\n回复数字选择：\n" + "\n".join(
        f"{n}. {n}分 {label}" for n, label in ((5, "非常满意"), (4, "满意"), (3, "一般"), (2, "不满意"), (1, "非常不满意")))
    server.sim.send(openid, "1")  # one point, not the first button
    assert server.bot.texts() == ["你好", "/return_request", "/order_status", "9", "评价", '/rate_service{"rating":"1"}']


def test_a_slow_bot_answers_success_then_a_customer_service_message(serve: Callable[..., Served]) -> None:
    server = serve(delay_s=1.6, budget_s=0.8)
    openid = new_openid()
    outcome = server.sim.send(openid, "帮我查下退款")
    assert outcome["outcome"] == "success" and outcome["attempts"] == 1
    texts = custom_messages(server.sim, openid)
    assert texts == ["收到：帮我查下退款\n\n还有什么可以帮您？\n\n回复数字选择：\n1. 查订单\n2. 退货"]
    assert server.sim.stats()["tokens_issued"] == 1
    server.bot.delay_s = 0
    server.sim.send(openid, "1")
    assert server.bot.texts()[-1] == "/order_status"


def test_wechat_retries_reach_the_bot_once(serve: Callable[..., Served]) -> None:
    server = serve(delay_s=2.0, budget_s=4.0, sim_timeout_s=1.5)
    openid = new_openid()
    outcome = server.sim.send(openid, "在吗")
    assert outcome["attempts"] == 2 and outcome["outcome"] == "reply", outcome
    assert outcome["reply"]["content"].startswith("收到：在吗")
    assert server.bot.texts() == ["在吗"]
    time.sleep(0.5)
    assert received(server.sim, openid, "custom") == []  # answered once, passively

    server.bot.delay_s = 0
    first = server.sim.send(openid, "同一条消息", msg_id="7700000000000001")
    again = server.sim.send(openid, "同一条消息", msg_id="7700000000000001")
    assert first["outcome"] == "reply" and again["outcome"] == "success"
    assert server.bot.texts() == ["在吗", "同一条消息"]


def test_malformed_posts_are_4xx_and_never_reach_the_bot(serve: Callable[..., Served]) -> None:
    server = serve()
    openid = new_openid()
    bad_bodies = [
        b"<xml><ToUserName>gh</ToUserName",
        b"not xml at all",
        b"",
        b"<html><body/></html>",
        text_xml(openid, "hi").replace(b"<MsgId>", b"<Msg>").replace(b"</MsgId>", b"</Msg>"),
        text_xml("bad openid!", "hi"),
        text_xml(openid, "hi").replace(b"<CreateTime>", b"<CreateTime>x"),
        text_xml(openid, "hi").replace(b"<CreateTime>", "<CreateTime>²".encode()),  # a digit int() refuses
        text_xml(openid, "hi", msg_id="١٢٣"),  # Arabic-Indic digits are digits to str.isdigit
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>',
        "<xml>好</xml>".encode("utf-16"),
    ]
    for body in bad_bodies:
        assert post_xml(server, body)[0] == 400, body
    assert post_xml(server, b"x" * (70 * 1024))[0] == 413
    assert post_xml(server, text_xml(openid, "hi"), signed(token="forged"))[0] == 403
    assert post_xml(server, text_xml(openid, "hi"), {})[0] == 403
    assert post_xml(server, text_xml(openid, "hi"), signed(timestamp=int(time.time()) - 900))[0] == 403
    query = signed()
    assert post_xml(server, text_xml(openid, "第一条", msg_id="1"), query)[0] == 200
    assert post_xml(server, text_xml(openid, "换了内容", msg_id="2"), query)[0] == 403  # a captured URL with another body
    assert server.bot.texts() == ["第一条"]


def test_events_and_other_message_types_get_polite_texts(serve: Callable[..., Served]) -> None:
    server = serve()
    openid = new_openid()
    assert server.sim.send(openid, event="subscribe")["reply"]["content"] == TEXTS["welcome"]
    assert server.sim.send(openid, msgtype="image")["reply"]["content"] == TEXTS["text_only"]
    assert server.sim.send(openid, msgtype="voice")["reply"]["content"] == TEXTS["text_only"]
    assert server.sim.send(openid, event="CLICK")["reply"]["content"] == MESSAGES["unknown_event"]
    assert server.sim.send(openid, event="unsubscribe")["outcome"] == "success"
    assert server.bot.calls == []
    assert UNAVAILABLE not in [m["text"] for m in server.sim.inbox(openid)]


def test_an_oversized_message_is_refused_politely(serve: Callable[..., Served]) -> None:
    server = serve()
    openid = new_openid()
    assert server.sim.send(openid, "好" * 2001)["reply"]["content"] == MESSAGES["message_too_long"]
    assert server.sim.send(openid, "   ")["reply"]["content"] == MESSAGES["empty_message"]
    assert server.bot.calls == []
    server.sim.send(openid, "好" * 2000)
    assert server.bot.texts() == ["好" * 2000]


def test_a_long_answer_goes_out_as_several_customer_service_messages(serve: Callable[..., Served]) -> None:
    server = serve()
    openid = new_openid()
    assert server.sim.send(openid, "长")["outcome"] == "success"
    wait_for(lambda: "".join(received(server.sim, openid, "custom")) == "很长的回答。" * 400, timeout_s=15)
    pieces = received(server.sim, openid, "custom")
    assert len(pieces) >= 2 and all(len(piece.encode()) <= 2000 for piece in pieces)


def test_bound_openids_are_verified_customers_and_others_anonymous(serve: Callable[..., Served], redis_url: str) -> None:
    server = serve()
    bound, other = new_openid(), new_openid()
    server.sim.send(bound, "你好")
    status, body = server.sim.call("POST", "/sim/bind-demo", {"openid": bound, "customer_id": "C000001"})
    assert (status, body["http_status"], body["body"]) == (200, 200, {"status": "bound"})
    assert custom_messages(server.sim, bound) == [TEXTS["bound"]]
    server.sim.send(bound, "我的订单")
    server.sim.send(other, "我的订单")
    assert [shopper(m) for m in server.bot.calls] == [
        {"channel": "wechat", "verified": False, "customer_id": None},
        {"channel": "wechat", "verified": True, "customer_id": "C000001"},
        {"channel": "wechat", "verified": False, "customer_id": None},
    ]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.get(f"wechat:openid:{bound}") == "C000001"
    assert client.get(owner_key(conversation_id(APPID, bound))) == "C000001"

    stamp = str(int(time.time()))
    unbind = {"openid": bound, "timestamp": stamp, "signature": binding_signature(SHOP_SECRET, "unbind", bound, "", stamp)}
    assert http("POST", f"{server.base}/unbind", unbind) == (200, {"status": "unbound"})
    server.sim.send(bound, "还是我")
    assert shopper(server.bot.calls[-1]) == {"channel": "wechat", "verified": False, "customer_id": None}
    assert client.get(owner_key(conversation_id(APPID, bound))) == WECHAT_OWNER
    client.close()


def test_bindings_are_signed_with_the_derived_wechat_bind_key_not_the_secret() -> None:
    key = hmac.new(SHOP_SECRET.encode(), b"key|wechat-bind", hashlib.sha256).digest()
    message = "wechat-bind\noABCDEF123\nC000001\n1700000000"
    assert binding_signature(SHOP_SECRET, "bind", "oABCDEF123", "C000001", "1700000000") == hmac.new(
        key, message.encode(), hashlib.sha256).hexdigest()
    unbind = "wechat-unbind\noABCDEF123\n\n1700000000"
    assert binding_signature(SHOP_SECRET, "unbind", "oABCDEF123", "", "1700000000") == hmac.new(
        key, unbind.encode(), hashlib.sha256).hexdigest()
    with pytest.raises(ValueError):
        binding_signature("", "bind", "oABCDEF123", "C000001", "1700000000")


def test_forged_or_malformed_bindings_are_refused(serve: Callable[..., Served], redis_url: str) -> None:
    server = serve()
    openid = new_openid()
    url = f"{server.base}/bind"
    stamp = str(int(time.time()))
    raw_secret = hmac.new(SHOP_SECRET.encode(), f"wechat-bind\n{openid}\nC000001\n{stamp}".encode(), hashlib.sha256).hexdigest()
    forged = [
        {"openid": openid, "customer_id": "C000001", "timestamp": stamp, "signature": raw_secret},  # the old, raw-secret scheme
        bind_body(openid, "C000001", secret="wrong-secret"),
        {**bind_body(openid, "C000002"), "customer_id": "C000001"},
        {**bind_body(new_openid(), "C000001"), "openid": openid},
        bind_body(openid, "C000001", timestamp=int(time.time()) - 600),
        {**bind_body(openid, "C000001"), "signature": None},
    ]
    for body in forged:
        status, answer = http("POST", url, body)
        assert status == 403, (body, answer)
    malformed = [
        {**bind_body(openid, "C000001"), "openid": "x"},
        {**bind_body(openid, "C000001"), "customer_id": "bad id!"},
        {**bind_body(openid, "C000001"), "timestamp": "yesterday"},
    ]
    for body in malformed:
        assert http("POST", url, body)[0] == 400
    assert http("POST", url, raw=b"{not json")[0] == 400
    assert http("POST", url, raw=b"[1]")[0] == 400
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.get(f"wechat:openid:{openid}") is None
    client.close()
    assert http("POST", url, bind_body(openid, "C000001")) == (200, {"status": "bound"})


@pytest.mark.parametrize("mode, errcode", [("expired", 42001), ("revoked", 40001)])
def test_a_refused_token_is_renewed_and_the_message_sent_again(serve: Callable[..., Served], mode: str, errcode: int) -> None:
    server = serve(delay_s=1.2, budget_s=0.5)
    openid = new_openid()
    server.sim.send(openid, "第一条")
    custom_messages(server.sim, openid)
    assert server.sim.call("POST", "/sim/expire-tokens", {"mode": mode})[0] == 200
    server.sim.send(openid, "第二条")
    texts = custom_messages(server.sim, openid, 2)
    assert texts[1].startswith("收到：第二条")
    stats = server.sim.stats()
    assert stats["tokens_issued"] == 2 and stats[f"errcode_{errcode}"] == 1
    assert server.channel.api.tokens_fetched == 2


def test_during_a_handoff_messages_go_to_the_agent_not_the_bot(serve: Callable[..., Served], redis_url: str, tmp_path: Path) -> None:
    server = serve()
    openid = new_openid()
    sender = conversation_id(APPID, openid)
    server.sim.send(openid, "转人工")
    policy = write_policy(tmp_path / "service.yml")
    handoff = request(sender, customer_id=None, tier=None)

    async def enqueue(ctx: HandoffContext) -> None:
        await queue.enqueue(ctx, handoff)
        await queue.materialize(ctx, handoff)

    run(redis_url, policy, enqueue)
    waiting = server.sim.send(openid, "人呢？")
    assert waiting["outcome"] == "reply" and waiting["reply"]["content"].startswith("已收到您的留言，会一并转给客服。")

    async def claim(ctx: HandoffContext) -> None:
        assert (await queue.claim(ctx, sender, "agent1", "小王")).status == "ok"
        assert (await agent_message(ctx, sender, "agent1", "小王", "您好，我是小王，马上帮您看")).ok

    run(redis_url, policy, claim)
    pushed = custom_messages(server.sim, openid, 2)
    assert pushed == ["客服小王已接入，正在查看您和智能客服的对话记录，马上为您处理。", "【人工客服 小王】您好，我是小王，马上帮您看"]
    with_agent = server.sim.send(openid, "1")
    assert with_agent["reply"]["content"] == "客服小王正在为您服务，您的消息已送达。"
    assert server.bot.texts() == ["转人工"]
    lines = run(redis_url, policy, lambda ctx: transcript(ctx, handoff.handoff_id))
    shopper = [line["text"] for line in lines if line.get("from") == "shopper"]
    assert shopper[-2:] == ["人呢？", "1"]  # the number is the shopper's text, not an old option


def test_a_waiting_shopper_can_leave_the_queue_and_talk_to_the_bot_again(serve: Callable[..., Served], redis_url: str,
                                                                          tmp_path: Path) -> None:
    server = serve()
    openid = new_openid()
    sender = conversation_id(APPID, openid)
    server.sim.send(openid, "转人工")
    handoff = request(sender, customer_id=None, tier=None)

    async def enqueue(ctx: HandoffContext) -> None:
        await queue.enqueue(ctx, handoff)
        await queue.materialize(ctx, handoff)

    run(redis_url, write_policy(tmp_path / "service.yml"), enqueue)
    assert server.sim.send(openid, "取消人工")["reply"]["content"] == cancelled()
    assert server.sim.send(openid, "我的快递到哪了")["reply"]["content"].startswith("收到：我的快递到哪了")
    assert server.bot.texts() == ["转人工", "我的快递到哪了"]


def test_pushed_messages_with_buttons_become_numbered_options(serve: Callable[..., Served], redis_url: str, tmp_path: Path) -> None:
    server = serve()
    openid = new_openid()
    sender = conversation_id(APPID, openid)
    server.sim.send(openid, "谢谢")

    async def push(ctx: HandoffContext) -> None:
        await Outbox(ctx.redis, ttl_s=60).push(sender, {"text": "请为客服小王打分", "buttons": rating_buttons(), "from": "bot"})
        await Outbox(ctx.redis, ttl_s=60).push(sender, {"text": "会话已结束", "from": "system"})

    run(redis_url, write_policy(tmp_path / "service.yml"), push)
    texts = custom_messages(server.sim, openid, 2)
    assert texts[0].startswith("请为客服小王打分\n\n回复数字选择：\n5. 5分 非常满意") and texts[1] == "会话已结束"
    server.sim.send(openid, "4")
    assert server.bot.texts()[-1] == '/rate_service{"rating":"4"}'


def test_bot_failures_are_polite_and_logs_hold_no_openid_or_text(serve: Callable[..., Served], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = serve(behaviour="raise")
    openid = new_openid()
    outcome = server.sim.send(openid, "我的手机号是13812345678")
    assert outcome["reply"]["content"] == MESSAGES["bot_unavailable"]
    server.sim.send(openid, "6")
    assert "wechat.message.failed" in caplog.text
    for secret in (openid, "13812345678", "我的手机号"):
        assert secret not in caplog.text


def test_a_silent_turn_gets_a_polite_text(serve: Callable[..., Served]) -> None:
    server = serve(behaviour="silent")
    outcome = server.sim.send(new_openid(), "退货")
    assert outcome["reply"]["content"] in (MESSAGES["action_server_unreachable"], MESSAGES["no_reply"])


def test_mounted_by_rasa_register_under_webhooks_wechat(serve: Callable[..., Served]) -> None:
    server = serve(mount_with_rasa=True)
    assert server.sim.call("POST", "/sim/verify", {})[1]["ok"] is True
    openid = new_openid()
    assert server.sim.send(openid, "你好")["reply"]["content"].startswith("收到：你好")
    assert shopper(server.bot.calls[0]) == {"channel": "wechat", "verified": False, "customer_id": None}


def test_loaded_from_a_credentials_file_like_rasa_run(tmp_path: Path) -> None:
    from rasa.core.run import create_http_input_channels

    credentials = tmp_path / "credentials.yml"
    credentials.write_text("connectors.wechat.WeChatInput:\n  token: from-file\n  appid: wx-file\n  api_base: http://wx.example/\n",
                           encoding="utf-8")
    (channel,) = create_http_input_channels(None, str(credentials))
    assert isinstance(channel, WeChatInput) and channel.url_prefix() == "wechat"
    assert (channel.token, channel.appid, channel.api_base) == ("from-file", "wx-file", "http://wx.example")
    default = WeChatInput.from_credentials({})
    settings = load_settings()
    assert (default.token, default.appid, default.reply_budget_s) == (settings.wechat_token, settings.wechat_appid, 4.0)
    assert default.api_base.endswith(f":{settings.wechat_sim_port}") or default.api_base == settings.wechat_api_base


# -- safe mode (安全模式), against wechatpy ----------------------------------------------------------


def encrypted_post(server: Served, inner: bytes, crypto: Optional[WeChatCrypto] = None, age_s: int = 0,
                   **query: str) -> Tuple[int, Any]:
    """POST a message as WeChat does in safe mode, encrypted and signed by ``wechatpy`` (``query`` overrides arguments)."""
    stamp, once = str(int(time.time()) - age_s), str(secrets.randbelow(10**9))
    sealed = ElementTree.fromstring((crypto or peer()).encrypt_message(inner.decode(), once, stamp))
    body = f"<xml><ToUserName><![CDATA[gh_test]]></ToUserName><Encrypt><![CDATA[{sealed.findtext('Encrypt')}]]></Encrypt></xml>"
    arguments = {**signed(int(stamp), once), "encrypt_type": "aes", "msg_signature": sealed.findtext("MsgSignature") or "", **query}
    return post_xml(server, body.encode(), arguments)


def test_safe_mode_messages_from_wechatpy_are_understood_and_answered_encrypted(serve: Callable[..., Served]) -> None:
    server = serve(aes_key=ENCODING_AES_KEY)
    openid = new_openid()
    status, answer = encrypted_post(server, text_xml(openid, "我的快递到哪了"))
    assert status == 200 and "<Encrypt>" in answer and "收到" not in answer and openid not in answer
    reply = peer_opened(answer)  # wechatpy checks the reply's MsgSignature and the app id
    assert (reply.findtext("ToUserName"), reply.findtext("FromUserName"), reply.findtext("MsgType")) == (openid, "gh_test", "text")
    assert reply.findtext("Content") == "收到：我的快递到哪了\n\n还有什么可以帮您？\n\n回复数字选择：\n1. 查订单\n2. 退货"
    (message,) = server.bot.calls
    assert message.text == "我的快递到哪了" and message.sender_id == conversation_id(APPID, openid)
    assert shopper(message) == {"channel": "wechat", "verified": False, "customer_id": None}
    assert peer_opened(encrypted_post(server, text_xml(openid, "2"))[1]).findtext("Content", "").startswith("收到：/return_request")
    assert server.bot.texts() == ["我的快递到哪了", "/return_request"]


def test_safe_mode_refuses_forged_plaintext_and_other_accounts_messages(serve: Callable[..., Served]) -> None:
    server = serve(aes_key=ENCODING_AES_KEY)
    openid = new_openid()
    inner = text_xml(openid, "你好")
    refused = [
        encrypted_post(server, inner, msg_signature="0" * 40),
        encrypted_post(server, inner, msg_signature=""),
        encrypted_post(server, inner, signature="0" * 40),  # the plain signature beside it is forged
        encrypted_post(server, inner, encrypt_type=""),
        encrypted_post(server, inner, crypto=peer(token="another-token")),
        encrypted_post(server, inner, crypto=peer(appid="wx-another-account")),  # decrypts, but another account's
        encrypted_post(server, inner, age_s=900),
        post_xml(server, inner),  # plaintext, correctly signed: refused while an EncodingAESKey is configured
    ]
    assert [status for status, _ in refused] == [403] * len(refused), refused
    stamp, once = str(int(time.time())), "42"
    garbage = {**signed(int(stamp), once), "encrypt_type": "aes", "msg_signature": peer_signature(TOKEN, stamp, once, "bm90IGEgbWVzc2FnZQ==")}
    assert post_xml(server, b"<xml><Encrypt>bm90IGEgbWVzc2FnZQ==</Encrypt></xml>", garbage)[0] == 400  # signed, but not a ciphertext
    assert post_xml(server, b"<xml><Encrypt>", {**signed(), "encrypt_type": "aes"})[0] == 400
    other_key = peer(encoding_aes_key="A" * 43)
    assert encrypted_post(server, inner, crypto=other_key)[0] in (400, 403)  # not decryptable with the account's key
    assert server.bot.calls == []
    assert encrypted_post(server, inner)[0] == 200 and server.bot.texts() == ["你好"]


def test_safe_mode_url_verification_decrypts_the_echostr(serve: Callable[..., Served]) -> None:
    server = serve(aes_key=ENCODING_AES_KEY)
    url = f"{server.base}/webhook"

    def verification(echo: str, appid: str = APPID, token: str = TOKEN) -> Dict[str, str]:
        stamp, once, encrypted = str(int(time.time())), str(secrets.randbelow(10**9)), peer_encrypted(echo, appid)
        return {"timestamp": stamp, "nonce": once, "echostr": encrypted, "msg_signature": peer_signature(token, stamp, once, encrypted)}

    query = verification("8723648723")
    assert http("GET", f"{url}?{urlencode(query)}") == (200, 8723648723)
    assert http("GET", f"{url}?{urlencode(query)}")[0] == 403  # the same nonce again
    assert http("GET", f"{url}?{urlencode(verification('1', token='another-token'))}")[0] == 403
    assert http("GET", f"{url}?{urlencode(verification('1', appid='wx-another-account'))}")[0] == 403
    assert http("GET", f"{url}?{urlencode({**verification('1'), 'msg_signature': '0' * 40})}")[0] == 403
    assert http("GET", f"{url}?{urlencode({**signed(), 'echostr': '5150'})}") == (200, 5150)  # the account's plain URL check
    assert server.sim.call("POST", "/sim/verify", {})[1]["ok"] is True  # the simulator in safe mode


def test_the_simulator_in_safe_mode_talks_to_the_channel(serve: Callable[..., Served]) -> None:
    server = serve(aes_key=ENCODING_AES_KEY, delay_s=0.0)
    assert server.sim.configure()["safe_mode"] is True
    openid = new_openid()
    assert server.sim.send(openid, event="subscribe")["reply"]["content"] == TEXTS["welcome"]
    assert server.sim.send(openid, "在吗")["reply"]["content"].startswith("收到：在吗")
    assert server.sim.send(openid, "1")["outcome"] == "reply" and server.bot.texts() == ["在吗", "/order_status"]
    server.bot.delay_s = 1.5
    assert server.sim.send(openid, "慢一点")["outcome"] == "success"
    assert custom_messages(server.sim, openid)[0].startswith("收到：慢一点")


def test_a_malformed_encoding_aes_key_fails_at_start() -> None:
    for key in ("too-short", "=" * 43, ENCODING_AES_KEY + "A"):
        with pytest.raises(ValueError):
            WeChatInput(token=TOKEN, appid=APPID, encoding_aes_key=key, settings=load_settings({}))
    assert WeChatInput(settings=load_settings({"WECHAT_ENCODING_AES_KEY": ENCODING_AES_KEY})).crypto is not None
    assert WeChatInput.from_credentials({"encoding_aes_key": ENCODING_AES_KEY}).crypto is not None
    assert WeChatInput(settings=load_settings({})).crypto is None


# -- the in-progress lease of a message -------------------------------------------------------------


def _dying_worker(redis_url: str, lease_ms: int, urls: Any) -> None:
    """A Rasa worker (forked) whose bot never finishes a turn: it reports its URL, then waits to be killed."""
    channel = WeChatInput(token=TOKEN, appid=APPID, appsecret=APPSECRET, api_base="http://127.0.0.1:9", reply_budget_s=0.2,
                          redis_url=redis_url, identity_secret=SHOP_SECRET, settings=load_settings({}), lease_ms=lease_ms)

    async def stuck(message: UserMessage) -> None:
        redis.Redis.from_url(redis_url).set("test:dying-worker:got", str(message.text))
        await asyncio.sleep(3600)

    app = Sanic(f"wechat_dying_worker_{os.getpid()}")
    app.blueprint(channel.blueprint(stuck), url_prefix="/webhooks/wechat")
    urls.put(ServedApp(app).__enter__().url)
    threading.Event().wait()


def test_a_retry_answers_a_message_whose_worker_died_mid_turn_and_a_completed_one_is_never_answered_again(
        serve: Callable[..., Served], redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    context = multiprocessing.get_context("fork")
    urls = context.Queue()
    worker = context.Process(target=_dying_worker, args=(redis_url, 3000, urls), daemon=True)
    worker.start()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        worker_url = urls.get(timeout=30)
        # the dead turn still holds the conversation's turn lock: waiting for it is not what this test is about
        monkeypatch.setattr(common, "TURN_WAIT_S", 0.3)
        server = serve(budget_s=2.0)
        openid, msg_id = new_openid(), "7700000000000099"
        body, query = text_xml(openid, "我的退款呢", msg_id=msg_id), signed()
        record = f"wechat:msg:{APPID}:{msg_id}"
        assert http("POST", f"{worker_url}/webhooks/wechat/webhook?{urlencode(query)}", raw=body) == (200, "success")
        wait_for(lambda: client.get("test:dying-worker:got") == "我的退款呢")
        time.sleep(0.5)
        assert client.pttl(f"{record}:lease") > 2000  # renewed by the live turn
        os.kill(worker.pid or 0, signal.SIGKILL)
        worker.join(timeout=10)

        server.channel.reply_budget_s = 0.2
        assert post_xml(server, body, query) == (200, "success")  # WeChat's retry while the dead turn's lease runs
        assert server.bot.calls == [] and client.hget(record, "state") == "processing"
        wait_for(lambda: not client.exists(f"{record}:lease"), timeout_s=10)

        server.channel.reply_budget_s = 2.0
        status, answer = post_xml(server, body, query)  # the next retry, once the lease lapsed: answered
        assert status == 200 and "收到：我的退款呢" in answer, answer
        assert server.bot.texts() == ["我的退款呢"]
        assert client.hget(record, "state") == "done" and not client.exists(f"{record}:lease")
        assert post_xml(server, body, query) == (200, "success")  # completed: never answered twice
        time.sleep(0.3)
        assert server.bot.texts() == ["我的退款呢"]
    finally:
        if worker.is_alive():
            os.kill(worker.pid or 0, signal.SIGKILL)
        client.close()


def test_a_live_turn_keeps_its_short_lease_and_retries_during_it_are_deduplicated(serve: Callable[..., Served],
                                                                                  redis_url: str) -> None:
    server = serve(delay_s=2.0, budget_s=4.0, sim_timeout_s=1.0, lease_ms=300)
    openid = new_openid()
    outcome = server.sim.send(openid, "慢慢来", msg_id="7700000000000042")
    assert outcome["attempts"] == 3 and outcome["outcome"] == "reply", outcome  # two retries while the bot took 2 s
    assert server.bot.texts() == ["慢慢来"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    record = f"wechat:msg:{APPID}:7700000000000042"
    assert client.hget(record, "state") == "done" and not client.exists(f"{record}:lease")
    client.close()


def test_only_the_owner_of_a_lease_renews_releases_or_completes_it(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    enter, renew, release, finish = (client.register_script(source) for source in
                                     (wechat_leases._ENTER, wechat_leases._RENEW, wechat_leases._RELEASE, wechat_leases._FINISH))
    record, lease = "wechat:msg:test:1", "wechat:msg:test:1:lease"
    assert enter(keys=[record, lease], args=[60, 5000, "owner-a"]) == "new"
    assert enter(keys=[record, lease], args=[60, 5000, "owner-b"]) == "processing"  # a retry during the live turn
    assert renew(keys=[lease], args=["owner-b", 60000]) == 0 and client.pttl(lease) <= 5000
    assert release(keys=[lease], args=["owner-b"]) == 0 and client.get(lease) == "owner-a"
    assert finish(keys=[record, lease], args=['{"text": "b"}', "owner-b"]) == "lost"
    assert client.hget(record, "state") == "processing" and client.get(lease) == "owner-a"
    assert renew(keys=[lease], args=["owner-a", 60000]) == 1 and client.pttl(lease) > 5000

    assert release(keys=[lease], args=["owner-a"]) == 1  # owner A gives up (cancelled): the next request takes over
    assert enter(keys=[record, lease], args=[60, 5000, "owner-c"]) == "taken_over"
    assert client.hget(record, "owner") == "owner-c" and client.hget(record, "waiting") == "1"
    assert finish(keys=[record, lease], args=['{"text": "a"}', "owner-a"]) == "lost"  # the old owner cannot complete it
    assert finish(keys=[record, lease], args=['{"text": "c"}', "owner-c"]) == "wait"  # a request waits for the answer
    assert client.hget(record, "state") == "done" and not client.exists(lease)
    assert finish(keys=[record, lease], args=['{"text": "c"}', "owner-c"]) == "lost"  # completed once only
    assert enter(keys=[record, lease], args=[60, 5000, "owner-d"]) == "done" and not client.exists(lease)
    client.close()


def test_the_message_crypto_agrees_with_wechatpy_and_refuses_tampering() -> None:
    crypto = MessageCrypto.from_settings(TOKEN, ENCODING_AES_KEY, APPID)
    for text in ("", "a", "好" * 11, "x" * 31, "<xml>" + "长" * 700 + "</xml>"):
        assert peer_decrypted(crypto.encrypt(text)) == text
        assert crypto.decrypt(peer_encrypted(text)).decode() == text
        assert len(base64.b64decode(crypto.encrypt(text))) % 32 == 0  # PKCS#7 to 32-byte blocks
    assert crypto.signature("1", "2", "abc") == peer_signature(TOKEN, "1", "2", "abc")
    cipher = bytearray(base64.b64decode(crypto.encrypt("<xml/>")))
    cipher[-1] ^= 1  # the last block's padding no longer checks (or the app id no longer matches)
    for tampered in (base64.b64encode(bytes(cipher)).decode(), "bm90", "!!", "", base64.b64encode(b"x" * 15).decode()):
        with pytest.raises(WeChatCryptoError):
            crypto.decrypt(tampered)
    with pytest.raises(InvalidAppId):
        crypto.decrypt(peer_encrypted("<xml/>", appid="wx-another-account"))
    with pytest.raises(InvalidSignature):
        crypto.open("0" * 40, "1", "2", crypto.encrypt("<xml/>"))
    key = base64.b64decode(ENCODING_AES_KEY + "=")
    forged_length = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    plaintext = b"r" * 16 + struct.pack(">I", 999) + b"<xml/>" + APPID.encode()
    padded = plaintext + bytes([32 - len(plaintext) % 32]) * (32 - len(plaintext) % 32)
    with pytest.raises(InvalidCiphertext):
        crypto.decrypt(base64.b64encode(forged_length.update(padded) + forged_length.finalize()).decode())
