"""An agent answers a callback ticket in the shopper's conversation, on every channel it lives on."""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest

from bot.outbox import outbox_key
from handoff import callbacks, conversation, keys
from handoff.models import CallbackTicket
from tests.support.desk import DeskProcess
from tests.support.handoff import run, sync_client

StartDesk = Callable[..., DeskProcess]


def book(desk: DeskProcess, sender: str, customer_id: str = "C000001") -> str:
    """A callback ticket as the bot books it out of hours; returns its id."""
    now = time.time()
    ticket = CallbackTicket(callback_id=keys.new_callback_id(), sender=sender, customer_id=customer_id, phone_masked="138****0000",
                            tier="L2", reason="requested", summary={"wanted": ["查询退款进度"]}, summary_text="顾客想知道退款进度",
                            window_start=now + 3600, window_end=now + 7200, created_at=now)
    assert run(desk.redis_url, desk.policy_file, lambda ctx: callbacks.create_callback(ctx, ticket))
    return ticket.callback_id


def outbox_texts(desk: DeskProcess, sender: str) -> list:
    return [json.loads(fields["message"]) for _, fields in sync_client(desk.redis_url).xrange(outbox_key(sender))]


@pytest.fixture()
def desk(start_desk: StartDesk) -> DeskProcess:
    desk = start_desk()
    desk.login("agent1")
    desk.login("agent2")
    return desk


def test_an_agent_answers_a_callback_and_the_shopper_answer_reaches_them(desk: DeskProcess):
    callback_id = book(desk, "conv-cb-answer")
    status, body = desk.call("POST", f"/api/callbacks/{callback_id}/messages", "agent1", {"text": "您好，我是客服小王，您的退款已到账。"})
    assert status == 201, body
    handoff_id = body["handoff_id"]
    agent_lines = [m for m in outbox_texts(desk, "conv-cb-answer") if m.get("from") == "agent"]
    assert [m["text"] for m in agent_lines] == ["您好，我是客服小王，您的退款已到账。"]
    assert agent_lines[0]["agent"] == "小王"

    # The shopper writes back (from the app, the same customer on another channel): the agent's conversation has it.
    routed = run(desk.redis_url, desk.policy_file,
                 lambda ctx: conversation.route_shopper_message(ctx, "conv-cb-answer", "好的，谢谢"))
    assert routed is not None and routed.handoff_id == handoff_id and routed.agent == "agent1"
    joined = run(desk.redis_url, desk.policy_file,
                 lambda ctx: conversation.route_shopper_message(ctx, "conv-cb-other-channel", "我在微信上也看到了", customer_id="C000001",
                                                                channel="wechat"))
    assert joined is not None and joined.handoff_id == handoff_id and joined.joined

    status, body = desk.call("POST", f"/api/callbacks/{callback_id}/messages", "agent1", {"text": "还有其他问题吗？"})
    assert status == 201 and body["handoff_id"] == handoff_id
    for sender in ("conv-cb-answer", "conv-cb-other-channel"):
        assert "还有其他问题吗？" in [m["text"] for m in outbox_texts(desk, sender)]

    status, view = desk.call("GET", f"/api/callbacks/{callback_id}", "agent1")
    assert status == 200 and view["live_handoff"] == handoff_id
    said = [(e["from"], e["text"]) for e in view["exchange"] if e["from"] in ("agent", "shopper")]
    assert ("agent", "您好，我是客服小王，您的退款已到账。") in said and ("shopper", "好的，谢谢") in said
    assert ("shopper", "我在微信上也看到了") in said and said[-1] == ("agent", "还有其他问题吗？")

    status, conv = desk.call("GET", "/api/conversations/conv-cb-answer", "agent1")
    assert status == 200 and conv["can_reply"] and conv["summary_text"] == "顾客想知道退款进度"

    assert desk.call("POST", f"/api/callbacks/{callback_id}/messages", "agent2", {"text": "我来"})[0] == 403
    status, done = desk.call("POST", f"/api/callbacks/{callback_id}/complete", "agent1", {"code": "resolved", "note": "已电话确认"})
    assert status == 200, done
    status, body = desk.call("POST", f"/api/callbacks/{callback_id}/messages", "agent1", {"text": "再补充一句"})
    assert status == 409 and body["error"]["code"] == "done"


@pytest.mark.parametrize("path, body, status, code", [
    ("/api/callbacks/not-an-id/messages", {"text": "您好"}, 400, "invalid_callback"),
    ("/api/callbacks/c000000000000000000000000/messages", {"text": "您好"}, 404, "not_found"),
    ("/api/callbacks/{id}/messages", {"text": "  "}, 400, "invalid_text"),
    ("/api/callbacks/{id}/messages", {"text": 5}, 400, "invalid_text"),
    ("/api/callbacks/{id}/messages", {"text": "您好" * 1001}, 413, "text_too_long"),
    ("/api/callbacks/{id}/messages", {"text": "您好", "client_id": 7}, 400, "invalid_client_id"),
    ("/api/callbacks/{id}/messages", {"text": "您好", "client_id": "带空格 的编号"}, 400, "invalid_client_id"),
    ("/api/callbacks/not-an-id", None, 400, "invalid_callback"),
    ("/api/callbacks/c000000000000000000000000", None, 404, "not_found"),
])
def test_bad_input_is_a_clear_error(desk: DeskProcess, path: str, body, status: int, code: str):
    callback_id = book(desk, "conv-cb-bad")
    got, answer = desk.call("POST" if body is not None else "GET", path.replace("{id}", callback_id), "agent1", body)
    assert (got, answer["error"]["code"]) == (status, code)
    assert not [m for m in outbox_texts(desk, "conv-cb-bad") if m.get("from") == "agent"]


def test_without_a_session_it_is_401(desk: DeskProcess):
    callback_id = book(desk, "conv-cb-anon")
    assert desk.call("POST", f"/api/callbacks/{callback_id}/messages", "", {"text": "您好"})[0] == 401


def test_a_shopper_in_another_live_conversation_is_answered_there(desk: DeskProcess):
    callback_id = book(desk, "conv-cb-busy")
    sync_client(desk.redis_url).set(keys.active("conv-cb-busy"), keys.new_handoff_id())
    status, body = desk.call("POST", f"/api/callbacks/{callback_id}/messages", "agent1", {"text": "您好"})
    assert status == 409 and body["error"]["code"] == "in_conversation"
