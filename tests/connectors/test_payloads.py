"""Shopper-typed ``/`` payloads through the real channels: only a button the conversation was offered
(by the bot's reply or a pushed message) reaches the bot as a payload; any other ``/`` text reaches
it as words, its slash made U+2215 (connectors.payloads)."""

from __future__ import annotations

import asyncio
from typing import Callable, Dict, List

import pytest
import redis

from connectors.payloads import NEUTRAL_PREFIX, RECENT_PUSHED, offered_key
from tests.connectors.conftest import SECRET, ChannelServer, WebServer, push, push_async, send, signed

ServeChannel = Callable[..., ChannelServer]
ServeWeb = Callable[..., WebServer]

HANDOFF = '/human_agent{"handoff_reason":"policy_undecided"}'
RATING = '/rate_service{"rating":5}'
HANDOFF_BUTTON = [{"title": "转人工", "payload": HANDOFF}]
RATING_QUESTION = {"text": "请为本次服务打分", "from": "system", "buttons": [{"title": "5分 非常满意", "payload": RATING}]}


def as_words(text: str) -> str:
    """What the bot reads for a ``/`` text the conversation was not offered."""
    return NEUTRAL_PREFIX + text[1:]


def texts(server: ChannelServer | WebServer) -> List[str]:
    return [message.text for message in server.bot.calls]


@pytest.mark.parametrize("typed", [HANDOFF, "/order_status", "/restart", "/", '/inform{"order_id":"880000010001"}'])
def test_a_typed_payload_reaches_the_bot_as_words(serve_channel: ServeChannel, typed: str) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-typed", typed).status == 200
    (read,) = texts(server)
    assert read == as_words(typed) and read.startswith("\u2215") and not read.startswith("/")


def test_a_text_with_a_slash_elsewhere_is_untouched(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET)
    token = send(server, "conv-slash", "我要退货/换货").headers["X-Conversation-Token"]
    assert send(server, "conv-slash", "  /order_status", token=token).status == 200  # stripped first, then offered
    assert texts(server) == ["我要退货/换货", "/order_status"]


def test_a_button_the_bot_offered_passes_unchanged(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET, buttons=HANDOFF_BUTTON)
    assert send(server, "conv-offered", HANDOFF, signed("C10001")).status == 200  # not offered yet
    assert send(server, "conv-offered", HANDOFF, signed("C10001")).status == 200  # offered by the reply to the first
    assert send(server, "conv-offered", '/human_agent{"handoff_reason":"complaint"}', signed("C10001")).status == 200
    assert texts(server) == [as_words(HANDOFF), HANDOFF, as_words('/human_agent{"handoff_reason":"complaint"}')]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.zrange(offered_key("conv-offered"), 0, -1) == [HANDOFF]
        assert 0 < client.ttl(offered_key("conv-offered"))
    finally:
        client.close()


def test_a_button_offered_in_another_conversation_does_not_pass(serve_channel: ServeChannel) -> None:
    server = serve_channel(SECRET, buttons=HANDOFF_BUTTON)
    assert send(server, "conv-offered-a", "你好", signed("C10001")).status == 200
    assert send(server, "conv-offered-b", HANDOFF, signed("C10001")).status == 200
    assert send(server, "conv-offered-a", HANDOFF, signed("C10001")).status == 200
    assert texts(server) == ["你好", as_words(HANDOFF), HANDOFF]


def test_a_button_of_a_pushed_message_passes_unchanged(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    assert send(server, "conv-rated", "你好", signed("C10001")).status == 200
    assert send(server, "conv-rated", RATING, signed("C10001")).status == 200  # not pushed yet
    push(redis_url, "conv-rated", [RATING_QUESTION])
    assert send(server, "conv-rated", RATING, signed("C10001")).status == 200
    assert send(server, "conv-rated", '/rate_service{"rating":1}', signed("C10001")).status == 200  # not a button it was given
    assert texts(server) == ["你好", as_words(RATING), RATING, as_words('/rate_service{"rating":1}')]


def test_only_the_recent_pushed_messages_count(serve_channel: ServeChannel, redis_url: str) -> None:
    server = serve_channel(SECRET)
    push(redis_url, "conv-rated-old", [RATING_QUESTION, *({"text": f"第{n}条", "from": "agent"} for n in range(RECENT_PUSHED))])
    assert send(server, "conv-rated-old", RATING, signed("C10001")).status == 200
    assert texts(server) == [as_words(RATING)]


def test_payloads_on_the_web(serve_web: ServeWeb, redis_url: str) -> None:
    server = serve_web(buttons=HANDOFF_BUTTON)

    async def scenario() -> None:
        async with server.widget() as widget:
            session_id = await widget.open()
            (offered, _) = await widget.say(HANDOFF)  # typed before any button: words
            assert offered["quick_replies"] == [{"content_type": "text", "title": "转人工", "payload": HANDOFF}]
            await widget.say(HANDOFF)  # the button of the bot's reply: a payload
            await widget.say(RATING)
            await push_async(redis_url, session_id, RATING_QUESTION)
            await widget.pushed(1)
            await widget.say(RATING)

    asyncio.run(scenario())
    assert texts(server) == [as_words(HANDOFF), HANDOFF, as_words(RATING), RATING]


def test_an_offered_payload_is_sent_as_the_bot_gave_it(serve_channel: ServeChannel) -> None:
    buttons: List[Dict[str, str]] = [{"title": "查订单", "payload": "/order_status"}, {"title": "退货", "payload": "/return_request"}]
    server = serve_channel(SECRET, buttons=buttons)
    assert send(server, "conv-two", "你好", signed("C10001")).status == 200
    for typed in ("/return_request", "/order_status", "/ORDER_STATUS", "/order_status "):
        assert send(server, "conv-two", typed, signed("C10001")).status == 200
    assert texts(server)[1:] == ["/return_request", "/order_status", as_words("/ORDER_STATUS"), "/order_status"]
