"""Price protection end to end: app channel → Rasa (the trained NLU and rules) → action server → CRM
over HTTP, on real Redis. A signed customer's order with a dropped price gets its claim filed and
told; an anonymous shopper proves the order with its phone tail first."""

from __future__ import annotations

import pytest

from actions import formatting
from bot.shop_calendar import add_working_days

from .conftest import RunningStack, buttons, new_sender, texts

pytestmark = pytest.mark.integration

DROPPED = "880000010001"  # C000001: 华为 FreeBuds Pro 3 paid 1,499 元, now 1,299 元
UNCHANGED = "880000040001"  # C000004 (phone tail 4444): nothing dropped


def test_a_signed_customer_gets_the_difference_filed_and_told(running_stack: RunningStack) -> None:
    status, replies = running_stack.say(new_sender(), f"这个降价了能补差价吗 {DROPPED}", "C000001")
    assert status == 200
    today = formatting.today_in_shop()
    latest = formatting.day(add_working_days(today, 3), today)
    reply = texts(replies)
    assert f"已为您提交订单 {DROPPED} 的价保申请，共退差价 ¥200.00" in reply
    assert f"差价原路退回您付款用的在线钱包，预计 {formatting.day(add_working_days(today, 1), today)} 至 {latest} 到账" in reply
    (claim,) = running_stack.crm(f"/api/orders/{DROPPED}/price-protection")["items"]
    assert (claim["refund_fen"], claim["customer_id"]) == (20000, "C000001")


def test_an_anonymous_shopper_proves_the_order_then_hears_why_there_is_no_difference(running_stack: RunningStack) -> None:
    sender = new_sender()
    status, replies = running_stack.say(sender, "申请价保")
    assert status == 200
    assert "收货手机号的后四位" in texts(replies)
    status, replies = running_stack.say(sender, f"{UNCHANGED} 尾号4444")
    assert status == 200
    reply = texts(replies)
    assert reply.startswith(f"我查了订单 {UNCHANGED}：阳澄湖大闸蟹 礼盒装 8只实付 ¥398.00/件、现价 ¥398.00")
    assert [button["title"] for button in buttons(replies)] == ["转人工"]
    assert running_stack.crm(f"/api/orders/{UNCHANGED}/price-protection")["total"] == 0
