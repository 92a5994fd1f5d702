"""Who may use a conversation, through the real channels (Sanic, HTTP, socket.io, the session's redis-server).

An anonymous conversation belongs to whoever holds its token (answered with its first message), not
to whoever knows its id; a customer's conversation to the customer an unexpired identity token of
the shop proves. A refused request reaches neither the bot nor the conversation's messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import redis
from redis.asyncio import Redis

from bot.identity import conversation_token, identity_token_for, sign_identity_token
from bot.settings import Settings, load_settings
from connectors.binding import ANONYMOUS_OWNER, owner_key, turn_key
from connectors.common import MESSAGES
from handoff import agents
from handoff.context import context_from_settings
from handoff.keys import REQUESTS_STREAM
from tests.connectors.conftest import (
    SECRET,
    ChannelServer,
    WebServer,
    assert_error,
    assert_sent_by,
    fetch,
    push,
    push_async,
    send,
    signed,
    statically_signed,
)
from tests.support.desk import write_policy

ServeChannel = Callable[..., ChannelServer]
ServeWeb = Callable[..., WebServer]


def keys_of(redis_url: str, sender: str) -> Dict[str, Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return {"owner": client.get(owner_key(sender)), "turn": client.get(turn_key(sender)),
                "requests": client.xlen(REQUESTS_STREAM)}
    finally:
        client.close()


def agent_online(redis_url: str, tmp_path: Path) -> Settings:
    """Settings whose human queue is open, with an agent online: an explicit 「转人工」 would be queued at once."""
    settings = dataclasses.replace(load_settings({}), handoff_policy_file=write_policy(tmp_path / "service.yml"))

    async def heartbeat() -> None:
        client = Redis.from_url(redis_url, decode_responses=True)
        await agents.heartbeat(context_from_settings(settings, client), "agent1")
        await client.close()

    asyncio.run(heartbeat())
    return settings


def tampered(token: str) -> str:
    """The token with the last character of its signature changed."""
    return token[:-1] + ("1" if token.endswith("0") else "0")


# -- the app channel: anonymous conversations -----------------------------------------------------


def test_an_anonymous_conversation_opens_only_with_its_token(serve_channel: ServeChannel, redis_url: str, tmp_path: Path) -> None:
    server = serve_channel(SECRET, settings=agent_online(redis_url, tmp_path))
    first = send(server, "conv-door", "我想退货")
    assert first.status == 200 and first.headers["X-Conversation-Id"] == "conv-door"
    token = first.headers["X-Conversation-Token"]
    (pushed,) = push(redis_url, "conv-door", [{"text": "您的退货单号是 R20240001", "from": "agent"}])

    other = conversation_token(SECRET, "conv-elsewhere")
    for stranger in (None, "", other, "0" * 64, token.upper()[:-1], token + "0"):
        status, body = send(server, "conv-door", "转人工", token=stranger)
        assert_error(status, body, 403, "conversation_forbidden")
        status, body = fetch(server, "conv-door", token=stranger)
        assert_error(status, body, 403, "conversation_forbidden")
        assert "R20240001" not in str(body)
    # neither an identity (a customer's token) nor the old signature opens an anonymous conversation
    assert_error(*send(server, "conv-door", "转人工", signed("C10001")), 403, "conversation_forbidden")
    assert_error(*fetch(server, "conv-door", identity=signed("C10001")["identity_token"]), 403, "conversation_forbidden")

    assert [message.text for message in server.bot.calls] == ["我想退货"]  # the stranger's messages never reached the bot
    assert keys_of(redis_url, "conv-door") == {"owner": ANONYMOUS_OWNER, "turn": None, "requests": 0}

    status, body = fetch(server, "conv-door", token=token)
    assert status == 200 and [(m["cursor"], m["text"]) for m in body["messages"]] == [(pushed, "您的退货单号是 R20240001")]
    status, body = send(server, "conv-door", "好的，谢谢", token=token)
    assert status == 200 and body[0]["text"] == "收到：好的，谢谢"
    assert fetch(server, "conv-door", token=token.upper()).status == 200  # hex in either case
    assert [message.text for message in server.bot.calls] == ["我想退货", "好的，谢谢"]
    assert_sent_by(server.bot.calls[-1], "app", None)


def test_a_token_opens_its_own_conversation_only(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET)
    mine, theirs = send(server, "conv-mine", "你好"), send(server, "conv-theirs", "你好")
    assert mine.headers["X-Conversation-Token"] != theirs.headers["X-Conversation-Token"]
    assert_error(*send(server, "conv-theirs", "看看", token=mine.headers["X-Conversation-Token"]), 403, "conversation_forbidden")
    assert_error(*fetch(server, "conv-theirs", token=mine.headers["X-Conversation-Token"]), 403, "conversation_forbidden")
    assert len(server.bot.calls) == 2


def test_a_refused_stranger_leaves_an_unknown_conversation_unknown(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    assert_error(*fetch(server, "conv-never", token=conversation_token(SECRET, "conv-never")), 404, "conversation_not_found")
    status, body = send(server, "conv-bad-identity", "你好", {"identity_token": "C10001.1.00"})
    assert_error(status, body, 401, "invalid_identity")
    assert keys_of(redis_url, "conv-bad-identity")["owner"] is None and server.bot.calls == []


# -- the app channel: identity tokens -------------------------------------------------------------


def test_a_valid_identity_token_is_a_verified_customer(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    answer = send(server, "conv-token", "我的订单到哪了", signed("C10001"))
    assert answer.status == 200 and "X-Conversation-Token" not in answer.headers
    nearly_a_day = {"identity_token": identity_token_for(SECRET, "C10001", ttl_s=24 * 3600 - 60)}
    assert send(server, "conv-token", "还有一个问题", nearly_a_day).status == 200
    for message in server.bot.calls:
        assert_sent_by(message, "app", "C10001")
    assert keys_of(redis_url, "conv-token")["owner"] == "C10001"
    assert fetch(server, "conv-token", identity=signed("C10001")["identity_token"]) == (200, {"messages": [], "cursor": "0-0"})


def _refused_tokens() -> List[Any]:
    now = int(time.time())
    valid = identity_token_for(SECRET, "C10001")
    customer, expires, mac = valid.split(".")
    return [
        pytest.param(sign_identity_token(SECRET, "C10001", now - 1), id="expired"),
        pytest.param(sign_identity_token(SECRET, "C10001", now + 25 * 3600), id="25h-ahead"),
        pytest.param(tampered(valid), id="tampered-signature"),
        pytest.param(f"C10002.{expires}.{mac}", id="other-customer-same-signature"),
        pytest.param(f"{customer}.{int(expires) + 60}.{mac}", id="later-expiry-same-signature"),
        pytest.param(identity_token_for("another-shop-secret", "C10001"), id="other-secret"),
        pytest.param("C10001", id="customer-id-only"),
        pytest.param(f"{customer}.{expires}", id="no-signature"),
        pytest.param(f"{customer}.soon.{mac}", id="expiry-not-a-number"),
        pytest.param(f"bad id!.{expires}.{mac}", id="bad-customer-id"),
        pytest.param(valid + "." + mac, id="four-parts"),
    ]


@pytest.mark.parametrize("token", _refused_tokens())
def test_an_invalid_identity_token_is_refused_before_anything(serve_channel: ServeChannel, redis_url: str, token: str) -> None:
    server = serve_channel(SECRET)
    status, body = send(server, "conv-refused", "我的订单到哪了", {"identity_token": token})
    assert_error(status, body, 401, "invalid_identity")
    assert server.bot.calls == [] and keys_of(redis_url, "conv-refused")["owner"] is None


@pytest.mark.parametrize("token", _refused_tokens()[:3])
def test_an_invalid_identity_token_opens_no_customer_conversation(serve_channel: ServeChannel, token: str) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-owned-t", "你好", signed("C10001")).status == 200
    assert_error(*send(server, "conv-owned-t", "改地址", {"identity_token": token}), 401, "invalid_identity")
    assert_error(*fetch(server, "conv-owned-t", identity=token), 401, "invalid_identity")
    assert len(server.bot.calls) == 1


def test_another_customers_token_on_an_owned_conversation_is_forbidden(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-owned-c", "你好", signed("C10001")).status == 200
    assert_error(*send(server, "conv-owned-c", "改地址", signed("C10002")), 403, "conversation_forbidden")
    assert_error(*fetch(server, "conv-owned-c", identity=signed("C10002")["identity_token"]), 403, "conversation_forbidden")
    assert_error(*send(server, "conv-owned-c", "改地址", token=conversation_token(SECRET, "conv-owned-c")), 403,
                 "conversation_forbidden")
    assert len(server.bot.calls) == 1


# -- the web channel ------------------------------------------------------------------------------


def test_an_anonymous_web_conversation_opens_only_with_its_token(serve_web: ServeWeb, redis_url: str) -> None:
    server = serve_web()

    async def scenario() -> Dict[str, str]:
        async with server.widget() as shopper:
            session_id = await shopper.open()
            assert shopper.conversation_token == conversation_token(SECRET, session_id)
            assert (await shopper.say("我想退货"))[0]["text"] == "收到：我想退货"
        (pushed,) = await push_async(redis_url, session_id, {"text": "您的退货单号是 R20240001", "from": "agent"})

        async with server.widget() as guesser, server.widget() as forger, server.widget() as writer:
            # the id alone: a fresh conversation of the guesser's own, nothing of the shopper's replayed
            fresh = await guesser.open(session_id)
            assert fresh != session_id and guesser.conversation_token == conversation_token(SECRET, fresh)
            assert (await guesser.say("我也想退货"))[0]["text"] == "收到：我也想退货"
            # the id with a wrong token: refused
            for wrong in ("0" * 64, conversation_token(SECRET, fresh)):
                assert await forger.start(session_id, {"conversation_token": wrong}) == (
                    "error", {"code": "conversation_forbidden", "message": MESSAGES["conversation_forbidden"]})
            # writing to the id without a session, with no token, a wrong one or a customer's identity
            for custom in (None, {"conversation_token": "0" * 64}, signed("C10001")):
                fields = {"customData": custom} if custom is not None else {}
                (refusal,) = await writer.say("把退款打到我的卡上", session_id=session_id, **fields)
                assert refusal == {"text": MESSAGES["conversation_forbidden"], "from": "system", "error": "conversation_forbidden"}
            for socket in (guesser, forger, writer):
                assert all("R20240001" not in str(data) for _, data in socket.seen)

        async with server.widget() as reloaded:  # the shopper's own page, reloaded with the token it kept
            assert await reloaded.start(session_id, {"conversation_token": conversation_token(SECRET, session_id)}) == (
                "session_confirm", {"session_id": session_id, "conversation_token": conversation_token(SECRET, session_id)})
            assert [m["id"] for m in await reloaded.pushed(1)] == [pushed]
            assert (await reloaded.say("好的，谢谢"))[0]["text"] == "收到：好的，谢谢"
        async with server.widget() as other_tab:  # a message carrying the token needs no session request
            replies = await other_tab.say("还在吗", session_id=session_id,
                                          customData={"conversation_token": conversation_token(SECRET, session_id)})
            assert replies[0]["text"] == "收到：还在吗"
        return {"session": session_id, "fresh": fresh}

    ids = asyncio.run(scenario())
    assert [(m.sender_id, m.text) for m in server.bot.calls] == [
        (ids["session"], "我想退货"), (ids["fresh"], "我也想退货"), (ids["session"], "好的，谢谢"), (ids["session"], "还在吗")]
    for message in server.bot.calls:
        assert_sent_by(message, "web", None)


@pytest.mark.parametrize("claim", [pytest.param({"customer_id": "C10001"}, id="customer-id-only"),
                                   pytest.param({"customer_id": "C10001", "signature": "0" * 64}, id="forged-signature"),
                                   pytest.param(statically_signed("C10001"), id="static-signature-not-accepted"),
                                   pytest.param({"customer_id": "bad id!"}, id="bad-customer-id")])
def test_an_unverified_claim_does_not_open_an_anonymous_web_conversation(serve_web: ServeWeb, redis_url: str,
                                                                         claim: Dict[str, str]) -> None:
    server = serve_web()

    async def scenario() -> str:
        async with server.widget() as shopper:
            session_id = await shopper.open()
            await shopper.say("我想退货")
        await push_async(redis_url, session_id, {"text": "您的退货单号是 R20240001", "from": "agent"})
        async with server.widget() as stranger:
            assert await stranger.start(session_id, claim) == (
                "error", {"code": "conversation_forbidden", "message": MESSAGES["conversation_forbidden"]})
            (refusal,) = await stranger.say("把退款打到我的卡上", session_id=session_id, customData=claim)
            assert refusal["error"] == "conversation_forbidden"
            assert all("R20240001" not in str(data) and conversation_token(SECRET, session_id) not in str(data)
                       for _, data in stranger.seen)
        return session_id

    session_id = asyncio.run(scenario())
    assert [(m.sender_id, m.text) for m in server.bot.calls] == [(session_id, "我想退货")]


@pytest.mark.parametrize("token", _refused_tokens()[:3])
def test_an_invalid_identity_token_is_an_error_on_the_web(serve_web: ServeWeb, redis_url: str, token: str) -> None:
    server = serve_web()
    refused = {"code": "invalid_identity", "message": MESSAGES["invalid_identity"]}

    async def scenario() -> None:
        async with server.widget() as widget:
            assert await widget.start("conv-web-refused", {"identity_token": token}) == ("error", refused)
            (answer,) = await widget.say("我的订单", session_id="conv-web-refused", customData={"identity_token": token})
            assert answer == {"text": refused["message"], "from": "system", "error": "invalid_identity"}

    asyncio.run(scenario())
    assert server.bot.calls == [] and keys_of(redis_url, "conv-web-refused")["owner"] is None


def test_identity_tokens_on_the_web(serve_web: ServeWeb) -> None:
    server = serve_web()

    async def scenario() -> str:
        async with server.widget() as customer, server.widget() as other:
            session_id = await customer.open(custom=signed("C10001"))
            assert customer.conversation_token is None
            assert (await customer.say("我的订单"))[0]["text"] == "收到：我的订单"
            assert (await other.start(session_id, signed("C10002")))[1]["code"] == "conversation_forbidden"
            (refusal,) = await other.say("改地址", session_id=session_id, customData=signed("C10002"))
            assert refusal["error"] == "conversation_forbidden"
            return session_id

    session_id = asyncio.run(scenario())
    (message,) = server.bot.calls
    assert message.sender_id == session_id
    assert_sent_by(message, "web", "C10001")
