"""Returns end to end: app channel → Rasa (form, rules) → action server → CRM over HTTP, on real
Redis. Every fact the shopper reads is checked against the CRM."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from actions import formatting
from actions import return_policy as rp

from .conftest import RunningStack, new_sender, texts

pytestmark = pytest.mark.integration

SHOE_ORDER = "880000010002"
CRAB_ORDER = "880000040001"
FLEECE = "优衣库 摇粒绒外套"
CRAB = "阳澄湖大闸蟹 礼盒装 8只"


def payloads(replies: List[Dict[str, Any]]) -> List[str]:
    return [button["payload"] for reply in replies for button in reply.get("buttons", [])]


class Chat:
    """One conversation through the app channel."""

    def __init__(self, stack: RunningStack, customer_id: Optional[str] = None) -> None:
        self.stack = stack
        self.customer_id = customer_id
        self.sender = new_sender()

    def say(self, text: str) -> List[Dict[str, Any]]:
        status, replies = self.stack.say(self.sender, text, self.customer_id)
        assert status == 200, replies
        assert isinstance(replies, list) and replies, f"no reply to {text!r}"
        return replies


def product_button(name: str) -> str:
    return f'/inform{{"product":"{name}"}}'


def reason_button(code: str) -> str:
    return f'/inform{{"return_reason":"{code}"}}'


def test_a_customer_returns_an_item_and_gets_the_number_amount_and_refund_date(running_stack: RunningStack) -> None:
    chat = Chat(running_stack, "C000004")
    replies = chat.say("我要退货")
    assert CRAB_ORDER in texts(replies)
    assert product_button(FLEECE) in payloads(replies)
    replies = chat.say(product_button(FLEECE))
    assert reason_button("wrong_size") in payloads(replies)
    replies = chat.say(reason_button("wrong_size"))
    summary = texts(replies)
    order = running_stack.crm(f"/api/orders/{CRAB_ORDER}")
    today = formatting.today_in_shop()
    quote = rp.quote_refund(order, [(2, 1)], "wrong_size", today, rp.default_policy())
    assert formatting.money(quote.total_fen) in summary and "运费险" in summary
    assert formatting.day(quote.pickup_date, today) in summary and formatting.day(quote.refund_expected_by, today) in summary
    assert payloads(replies) == ["/affirm", "/deny", "/stop"]

    replies = chat.say("确认")
    (created,) = [ret for ret in running_stack.crm(f"/api/orders/{CRAB_ORDER}/returns")["items"] if ret["status"] != "cancelled"]
    done = texts(replies)
    assert created["return_id"] in done
    assert formatting.money(created["refund_fen"]) in done
    assert formatting.day(formatting.parse_date(created["refund_expected_by"]), today) in done
    assert (created["refund_fen"], created["return_shipping_paid_by"], created["reason"]) == (quote.total_fen, "shop", "wrong_size")
    assert done.endswith("还有什么可以帮您的吗？")

    chat.say("确认")  # a repeated confirmation creates nothing
    assert len(running_stack.crm(f"/api/orders/{CRAB_ORDER}/returns")["items"]) == 1

    replies = chat.say("退款到哪了")
    assert created["return_id"] in texts(replies)
    assert formatting.money(created["refund_fen"]) in texts(replies)


def test_fresh_food_is_refused_with_the_rule_and_the_shopper_can_stop(running_stack: RunningStack) -> None:
    chat = Chat(running_stack, "C000004")
    chat.say("我要退货")
    chat.say(product_button(CRAB))
    replies = chat.say(reason_button("no_longer_wanted"))
    refusal = texts(replies)
    assert "生鲜商品" in refusal and "不支持七天无理由退货" in refusal and "质量问题" in refusal
    assert reason_button("quality_issue") in payloads(replies)
    assert '/human_agent{"handoff_reason":"policy_undecided"}' in payloads(replies)  # an agent decides a contested refusal
    replies = chat.say("算了")
    assert "没有提交" in texts(replies) and "还有什么可以帮您" in texts(replies)


def test_a_faq_in_the_middle_and_back_to_the_question(running_stack: RunningStack) -> None:
    chat = Chat(running_stack, "C000001")
    replies = chat.say("我要退货")
    assert product_button("耐克 Air Zoom 跑鞋") in payloads(replies)
    replies = chat.say("运费险是什么")
    reply = texts(replies)
    assert "运费险" in reply
    assert "我们接着刚才的退货申请" in reply
    assert product_button("耐克 Air Zoom 跑鞋") in payloads(replies)
    replies = chat.say(product_button("耐克 Air Zoom 跑鞋"))
    assert reason_button("quality_issue") in payloads(replies)
    replies = chat.say(reason_button("wrong_size"))
    assert "7天无理由退货" in texts(replies) and "确认提交吗" in texts(replies)
    replies = chat.say("算了")
    assert "没有提交" in texts(replies)
    assert running_stack.crm(f"/api/orders/{SHOE_ORDER}/returns")["items"] == []


def test_two_answers_not_understood_offer_a_human(running_stack: RunningStack) -> None:
    chat = Chat(running_stack, "C000001")
    chat.say("我要退货")
    chat.say(product_button("耐克 Air Zoom 跑鞋"))
    first = chat.say("那个东西")  # an answer with nothing the flow can use
    assert "没能理解" in texts(first) and "/human_agent" not in payloads(first)
    second = chat.say("那个东西")
    assert "转人工" in texts(second) and "/human_agent" in payloads(second)


def test_another_customers_order_reveals_nothing(running_stack: RunningStack) -> None:
    chat = Chat(running_stack, "C000002")
    replies = chat.say(f"我要退货，订单号{SHOE_ORDER}")
    reply = texts(replies)
    assert "耐克" not in reply and "安踏" not in reply and "¥" not in reply
    unknown = Chat(running_stack, "C000002").say("我要退货，订单号880099999999")
    assert texts(unknown).replace("880099999999", SHOE_ORDER) == reply


def test_an_anonymous_shopper_must_prove_the_order(running_stack: RunningStack) -> None:
    chat = Chat(running_stack)
    replies = chat.say("我要退货")
    assert "后四位" in texts(replies) and "880000" not in texts(replies)
    replies = chat.say(f"{SHOE_ORDER} 尾号0000")
    assert "没能对上" in texts(replies) and "耐克" not in texts(replies)
    replies = chat.say(f"{CRAB_ORDER} 尾号4444")
    assert CRAB_ORDER in texts(replies)
    assert product_button(FLEECE) in payloads(replies) or reason_button("quality_issue") in payloads(replies)


def test_the_crm_down_at_the_confirmation_then_back(running_stack: RunningStack) -> None:
    chat = Chat(running_stack, "C000001")
    chat.say("我要退货")
    chat.say(product_button("安踏 速干运动T恤"))
    replies = chat.say(reason_button("quality_issue"))
    assert "确认提交吗" in texts(replies)
    with running_stack.stopped("crm"):
        replies = chat.say("确认")
        assert "没有响应" in texts(replies) and "/human_agent" in payloads(replies)
    replies = chat.say("确认")
    (created,) = [ret for ret in running_stack.crm(f"/api/orders/{SHOE_ORDER}/returns")["items"]
                  if [item["line_id"] for item in ret["items"]] == [2]]
    assert created["return_id"] in texts(replies)
    assert created["return_shipping_paid_by"] == "shop"


def test_refund_status_of_a_paid_refund(running_stack: RunningStack) -> None:
    (ret,) = running_stack.crm("/api/customers/C000006/returns")["items"]
    replies = Chat(running_stack, "C000006").say("退款到账了吗")
    reply = texts(replies)
    assert ret["return_id"] in reply and formatting.money(ret["refund_fen"]) in reply and "银行卡" in reply
    refunded = formatting.parse_datetime(ret["refunded_at"])
    assert formatting.moment(refunded) in reply
