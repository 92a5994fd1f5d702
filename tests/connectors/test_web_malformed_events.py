"""The web channel and socket.io packets that are no event a client may send: an event packet whose
data is no list, an empty list or one whose first item is no string, one naming a reserved event
(``connect``, ``disconnect``), a packet whose JSON does not parse, of an unknown type or of a type
only a server sends. Each is dropped without an exception; the connection and its conversation go
on (found by the fuzz campaign: python-socketio raised inside its own dispatch and logged a
traceback for every such packet, and a forged ``disconnect`` reached the channel's disconnect
handler while the socket was still connected)."""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

import pytest

from tests.connectors.conftest import WebServer

MALFORMED_EVENT_PACKETS = ('2[]', '2{}', '2"x"', '21', '2null', '2[1]', '2[{}]', '2[[]]', '2[null,{"message":"你好"}]',
                           '2["connect"]', '2["connect",{}]', '21["disconnect"]', '2["disconnect"]')
"""Event packets (type ``2``) with a decodable payload that names no event a client may send."""

UNREADABLE_PACKETS = ('2["user_uttered",', '2{]', '2["user_uttered",{"message":"hi"}]x', '2["user_uttered",' + "[" * 5000 + "]" * 5000 + "]",
                      '4', '4{"message":"x"}', '9', '7')
"""Packets python-socketio cannot read: broken JSON, JSON nested deeper than Python's recursion, a type only the
server sends (``4``), unknown types."""


@pytest.mark.parametrize("packet", MALFORMED_EVENT_PACKETS + UNREADABLE_PACKETS, ids=lambda packet: packet[:40])
def test_a_packet_that_is_no_event_is_dropped_without_an_error(serve_web: Callable[..., WebServer], packet: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    server = serve_web()
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with server.widget() as widget:
            await widget.open()
            sid = widget.sio.get_sid()
            assert (await widget.say("第一句"))[0]["text"] == "收到：第一句"
            await widget.sio.eio.send(packet)
            await asyncio.sleep(0.3)
            assert widget.sio.connected
            assert sid in server.channel._locks  # a forged disconnect left the socket's ordering lock alone
            assert (await widget.say("第二句"))[0]["text"] == "收到：第二句"

    asyncio.run(scenario())
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []
    assert "web.packet.malformed" in caplog.text
    assert [message.text for message in server.bot.calls] == ["第一句", "第二句"]
