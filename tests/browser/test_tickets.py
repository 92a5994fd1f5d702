"""Callback tickets in a real browser: an agent sees an overdue ticket, answers a callback in the shopper's
conversation and finds the conversation among their own once the shopper writes back."""

from __future__ import annotations

import json
import time

import pytest

from bot.outbox import outbox_key
from handoff import callbacks, conversation, keys
from handoff.models import CallbackTicket
from tests.support.console import signed_in_page
from tests.support.desk import DeskProcess
from tests.support.handoff import run, sync_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def book(desk: DeskProcess, sender: str, due_in_s: float) -> str:
    now = time.time()
    ticket = CallbackTicket(callback_id=keys.new_callback_id(), sender=sender, customer_id=None, phone_masked="139****1234",
                            tier="L3", reason="requested", summary={"wanted": ["咨询发票"]}, summary_text="顾客想开发票",
                            window_start=now + due_in_s - 3600, window_end=now + due_in_s, created_at=now - 7200)
    assert run(desk.redis_url, desk.policy_file, lambda ctx: callbacks.create_callback(ctx, ticket))
    return ticket.callback_id


def test_agent_answers_a_callback_and_sees_an_overdue_ticket(browser, desk: DeskProcess) -> None:
    late = book(desk, "conv-ticket-late", due_in_s=-600)
    sender = "conv-ticket-answer"
    callback_id = book(desk, sender, due_in_s=3600)

    page, errors = signed_in_page(browser, desk.url, "agent1")
    page.click("#tab-callbacks")
    page.wait_for_selector(f"tr.overdue[data-callback='{late}']")
    page.wait_for_selector("#tickets-overdue:has-text('回访 1 件')")

    row = page.wait_for_selector(f"tr[data-callback='{callback_id}'] .cb-answer")
    row.query_selector(".cb-answer-text").fill("您好，我是客服小王，发票已为您开好。")
    row.query_selector(".cb-answer-send").click()
    page.wait_for_selector(f"tr[data-callback='{callback_id}'] .cb-answer-status:has-text('已发送')")
    client = sync_client(desk.redis_url)
    sent = [json.loads(f["message"]) for _, f in client.xrange(outbox_key(sender))]
    assert [m["text"] for m in sent if m.get("from") == "agent"] == ["您好，我是客服小王，发票已为您开好。"]

    routed = run(desk.redis_url, desk.policy_file, lambda ctx: conversation.route_shopper_message(ctx, sender, "收到，谢谢！"))
    assert routed is not None and routed.agent == "agent1"
    page.click(".tab[data-view='desk']")
    page.wait_for_selector(f".mine-item[data-sender='{sender}']").click()
    page.wait_for_selector("#transcript .entry:has-text('收到，谢谢！')")
    wait_for(lambda: "顾客想开发票" in page.inner_text("body"))
    assert not errors, errors
