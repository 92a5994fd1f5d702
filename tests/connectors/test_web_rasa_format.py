"""``?format=rasa``: the web channel's messages in Rasa's own socket.io format, what rasa-webchat renders
(a text only when the message has no keys but ``text`` and ``quick_replies``; the rest under ``metadata``)."""

from __future__ import annotations

import asyncio
from typing import Callable

from connectors.web import rasa_message
from tests.connectors.conftest import WebServer, Widget, push_async, signed

RASA_TOP_KEYS = {"text", "quick_replies", "attachment", "image", "custom", "elements", "metadata"}


def test_rasa_format_keeps_rasas_keys_and_moves_the_channels_under_metadata() -> None:
    assert rasa_message({"text": "您好", "from": "bot"}) == {"text": "您好", "metadata": {"from": "bot"}}
    buttons = [{"title": "查看物流", "payload": "/track"}]
    pushed = {"text": "我是小王", "from": "agent", "agent": "小王", "id": "1-0", "buttons": buttons,
              "quick_replies": [{"content_type": "text", "title": "查看物流", "payload": "/track"}]}
    assert rasa_message(pushed) == {"text": "我是小王", "quick_replies": pushed["quick_replies"],
                                    "metadata": {"from": "agent", "agent": "小王", "id": "1-0", "buttons": buttons}}
    assert rasa_message({"text": "请选择", "buttons": buttons})["quick_replies"] == pushed["quick_replies"]
    assert rasa_message({"custom": {"a": 1}, "metadata": {"x": 1}, "from": "bot"}) == {"custom": {"a": 1}, "metadata": {"x": 1, "from": "bot"}}


def test_a_rasa_format_socket_and_a_shop_widget_of_one_session_each_get_their_format(serve_web: Callable[..., WebServer]) -> None:
    server = serve_web()

    async def scenario() -> None:
        async with Widget(f"{server.url}/?standard=1") as webchat, server.widget() as shop:  # no format asked: Rasa's
            session_id = await webchat.open(custom=signed("C10001"))
            await shop.open(session_id, signed("C10001"))
            replies = await webchat.say("你好", customData=signed("C10001"))
            assert replies and all(set(reply) <= RASA_TOP_KEYS and reply["metadata"]["from"] == "bot" and reply["text"] for reply in replies)
            seen_by_shop = await shop.pushed(len(replies))
            assert [(reply["from"], reply["text"]) for reply in seen_by_shop] == [("bot", reply["text"]) for reply in replies]
            (entry_id,) = await push_async(server.channel.redis_url, session_id, {"text": "您好，我是人工客服小王", "from": "agent", "agent": "小王"})
            pushed = (await webchat.pushed(1))[0]
            assert set(pushed) == {"text", "metadata"} and pushed["text"] == "您好，我是人工客服小王"
            assert {key: pushed["metadata"][key] for key in ("from", "agent", "id")} == {"from": "agent", "agent": "小王", "id": entry_id}
            assert (await shop.pushed(1))[0]["from"] == "agent"

    asyncio.run(scenario())
