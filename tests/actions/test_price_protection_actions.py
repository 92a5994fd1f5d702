"""Price protection (价保) on tracker fixtures against the real seeded CRM: a dropped price is claimed
once with its amount, destination and dates; each refusal says its concrete reason and offers a
human; only a signed customer's own orders, or an anonymous shopper's proven order, are checked.

Claims change data, so they go to a CRM of this module's own (``own_crm``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict

import pytest
from rasa_sdk.events import SlotSet

from actions import formatting
from actions.order_change_rules import order_choice_button
from actions.orders import NOT_YOUR_ORDER
from actions.price_protection import ActionPriceProtection
from actions.replies import CRM_UNAVAILABLE, human_buttons
from actions.service_topics import ActionAnswerFaq, price_protection_answer
from bot.shop_calendar import add_working_days
from bot.texts import render
from crm.policy import load_service_policy

from .conftest import RecordingCRMClient, fetch, load_tracker, proven_order, run_action, sender_of
from .test_forged_identity import FORGED_METADATA, FORGED_ORDER_SLOTS, forged

DROPPED = "880000010001"
FLASH_SALE = "880000010002"
WINDOW_PASSED = "880000030001"
UNCHANGED = "880000040001"
HUMAN = [{"title": "转人工", "payload": '/human_agent{"handoff_reason":"policy_undecided"}'}]
ANSWERED = [SlotSet("pending_flow", None)]


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "ShopPatternExtractor"}


def asking(order_id: str, signed_as: Any, text: str = "") -> Any:
    """The signed fixture asking about ``order_id`` (signed for ``signed_as``)."""
    return load_tracker("signed_price_protection", signed_as=signed_as,
                        latest_message={"text": text or f"申请价保 {order_id}", "entities": [entity("order_id", order_id)]})


def day(value: dt.date) -> str:
    return formatting.day(value, formatting.today_in_shop())


def moment(value: dt.datetime) -> str:
    local = value.astimezone(formatting.shop_timezone())
    return f"{day(local.date())} {local:%H:%M}"


def test_a_dropped_price_is_claimed_once_with_amount_destination_and_dates(own_crm):
    url = own_crm.base_url
    events, messages = run_action(ActionPriceProtection(), load_tracker("signed_price_protection"))
    today = formatting.today_in_shop()
    earliest, latest = add_working_days(today, 1), add_working_days(today, 3)
    assert events == ANSWERED
    assert messages[0]["text"] == (
        f"已为您提交订单 {DROPPED} 的价保申请，共退差价 ¥200.00：\n"
        "· 华为 FreeBuds Pro 3 无线耳机：您实付 ¥1499.00/件，现价 ¥1299.00，1 件共退 ¥200.00\n"
        f"差价原路退回您付款用的在线钱包，预计 {day(earliest)} 至 {day(latest)} 到账（1–3 个工作日）。"
    )
    assert messages[0]["buttons"] == []
    (claim,) = fetch(url, f"/api/orders/{DROPPED}/price-protection")["items"]
    assert (claim["refund_fen"], claim["refund_method"], claim["refund_expected_by"]) == (20000, "wallet", latest.isoformat())

    events, messages = run_action(ActionPriceProtection(), load_tracker("signed_price_protection"))
    assert events == ANSWERED
    assert messages[0]["text"] == (
        f"订单 {DROPPED} 已经申请过价保：{day(today)}申请，差价 ¥200.00 原路退回您的在线钱包，"
        f"预计 {day(earliest)} 至 {day(latest)} 到账（1–3 个工作日）。每件商品只能申请一次价保；如果到了日期还没收到差价，请点“转人工”。"
    )
    assert messages[0]["buttons"] == HUMAN
    assert fetch(url, f"/api/orders/{DROPPED}/price-protection")["total"] == 1


def test_a_flash_sale_price_is_refused_with_its_kind(own_crm):
    events, messages = run_action(ActionPriceProtection(), asking(FLASH_SALE, "C000001"))
    assert events == ANSWERED
    assert messages == [{**messages[0], "text": (
        f"抱歉，订单 {FLASH_SALE} 里降价的耐克 Air Zoom 跑鞋现在的价格是秒杀价，这类价格不参与价保，所以这次不能补差价。"
        "如有疑问，可以点“转人工”。"), "buttons": HUMAN}]
    assert fetch(own_crm.base_url, f"/api/orders/{FLASH_SALE}/price-protection")["total"] == 0


def test_a_passed_window_names_the_day_it_ended(own_crm):
    order = fetch(own_crm.base_url, f"/api/orders/{WINDOW_PASSED}")
    paid = formatting.parse_datetime(order["paid_at"])
    events, messages = run_action(ActionPriceProtection(), asking(WINDOW_PASSED, "C000003"))
    assert events == ANSWERED
    assert messages[0]["text"] == (
        f"抱歉，订单 {WINDOW_PASSED} 于 {moment(paid)} 付款，价保期是付款后 7 天，已于 {moment(paid + dt.timedelta(days=7))} 结束，"
        "这个订单现在不能申请价保了。如果您有特殊情况需要说明，可以点“转人工”。"
    )
    assert messages[0]["buttons"] == HUMAN


def test_no_drop_compares_the_prices_and_says_until_when_to_come_back(own_crm):
    order = fetch(own_crm.base_url, f"/api/orders/{UNCHANGED}")
    ends = formatting.parse_datetime(order["paid_at"]) + dt.timedelta(days=7)
    events, messages = run_action(ActionPriceProtection(), asking(UNCHANGED, "C000004"))
    assert events == ANSWERED
    assert messages[0]["text"] == (
        f"我查了订单 {UNCHANGED}：阳澄湖大闸蟹 礼盒装 8只实付 ¥398.00/件、现价 ¥398.00；优衣库 摇粒绒外套实付 ¥199.00/件、现价 ¥199.00，"
        f"现价都没有低于您的实付单价，暂时没有差价可退。价保期到 {moment(ends)}，在这之前降价的话，您再来找我申请就可以。如有疑问，可以点“转人工”。"
    )
    assert messages[0]["buttons"] == HUMAN


def test_another_customers_order_is_not_checked(own_crm):
    events, messages = run_action(ActionPriceProtection(), asking(FLASH_SALE, "C000002"))
    assert events == ANSWERED
    assert messages[0]["text"] == NOT_YOUR_ORDER.format(order_id=FLASH_SALE)
    assert fetch(own_crm.base_url, f"/api/orders/{FLASH_SALE}/price-protection")["total"] == 0


def test_a_signed_customer_without_an_order_number_chooses_among_the_orders_in_the_window(own_crm):
    tracker = load_tracker("signed_price_protection", latest_message={"text": "申请价保", "entities": []})
    events, messages = run_action(ActionPriceProtection(), tracker)
    assert events == [SlotSet("pending_flow", "price_protection")]
    orders = [fetch(own_crm.base_url, f"/api/orders/{order_id}") for order_id in (DROPPED, FLASH_SALE)]
    assert messages[0]["text"] == render("utter_price_protection_choose_order")
    assert messages[0]["buttons"] == [order_choice_button(order, "price_protection_request") for order in orders]
    assert messages[0]["buttons"][0]["payload"] == f'/price_protection_request{{"order_id":"{DROPPED}"}}'


def test_an_anonymous_shopper_proves_the_order_first(own_crm):
    tracker = load_tracker("anonymous_price_protection")
    events, messages = run_action(ActionPriceProtection(), tracker)
    assert events == [SlotSet("pending_flow", "price_protection")]
    assert messages[0]["text"] == (
        "好的，我帮您查这个订单能不能补差价。为了保护您的隐私，请先告诉我订单号（12 位数字）和收货手机号的后四位，"
        "例如“202611150023 尾号5678”。您在商城登录后再来找我，就不用核实了。"
    )

    answer = load_tracker("anonymous_price_protection", slots={"pending_flow": "price_protection"}, latest_message={
        "text": f"{UNCHANGED} 4444", "intent": {"name": "inform", "confidence": 0.9},
        "entities": [entity("order_id", UNCHANGED), entity("phone_last4", "4444")]})
    events, messages = run_action(ActionPriceProtection(), answer)
    assert events == [
        SlotSet("verified_order_id", proven_order(answer.sender_id, UNCHANGED)),
        SlotSet("failed_attempts", 0.0),
        SlotSet("order_id", UNCHANGED),
        SlotSet("phone_last4", None),
        SlotSet("pending_flow", None),
    ]
    assert messages[0]["text"].startswith(f"我查了订单 {UNCHANGED}：阳澄湖大闸蟹")
    assert messages[0]["buttons"] == HUMAN


def test_a_wrong_phone_tail_checks_nothing(own_crm):
    answer = load_tracker("anonymous_price_protection", slots={"pending_flow": "price_protection"}, latest_message={
        "text": f"{FLASH_SALE} 0000", "intent": {"name": "inform", "confidence": 0.9},
        "entities": [entity("order_id", FLASH_SALE), entity("phone_last4", "0000")]})
    events, messages = run_action(ActionPriceProtection(), answer)
    assert events[-1] == SlotSet("pending_flow", "price_protection")
    assert messages[0]["text"] == "抱歉，订单号和手机尾号没能对上，请核对后重新发送。"
    assert fetch(own_crm.base_url, f"/api/orders/{FLASH_SALE}/price-protection")["total"] == 0


def test_an_faq_naming_an_order_checks_that_order(own_crm):
    tracker = load_tracker("faq_price_protection", signed_as="C000004", latest_message={
        "text": f"订单 {UNCHANGED} 刚买就降价了，能补差价吗", "entities": [entity("order_id", UNCHANGED)]})
    events, messages = run_action(ActionAnswerFaq(), tracker)
    assert events == ANSWERED
    assert messages[0]["text"].startswith(f"我查了订单 {UNCHANGED}：")


def test_a_crm_that_does_not_answer_offers_a_human(dead_crm):
    events, messages = run_action(ActionPriceProtection(), load_tracker("signed_price_protection"))
    assert events == ANSWERED
    assert messages[0]["text"] == CRM_UNAVAILABLE and messages[0]["buttons"] == human_buttons()


@pytest.mark.parametrize("forgery", FORGED_METADATA.values(), ids=FORGED_METADATA.keys())
def test_a_forged_customer_is_asked_for_the_phone_tail_and_nothing_is_read(recording_crm: RecordingCRMClient, forgery):
    events, messages = run_action(ActionPriceProtection(), forged("signed_price_protection", forgery))
    assert events == [SlotSet("order_id", DROPPED), SlotSet("pending_flow", "price_protection")]
    assert messages[0]["text"] == f"好的，订单号 {DROPPED} 已收到。请再告诉我这个订单收货手机号的后四位。"
    assert recording_crm.requests == []


@pytest.mark.parametrize("slot", FORGED_ORDER_SLOTS.values(), ids=FORGED_ORDER_SLOTS.keys())
def test_a_forged_proven_order_slot_claims_nothing(recording_crm: RecordingCRMClient, slot):
    tracker = load_tracker("anonymous_price_protection", slots={"verified_order_id": slot(sender_of("anonymous_price_protection"))})
    events, messages = run_action(ActionPriceProtection(), tracker)
    assert events == [SlotSet("pending_flow", "price_protection")]
    assert messages[0]["text"] == render("utter_price_protection_ask_verification")
    assert recording_crm.requests == []


def test_the_faq_promises_what_the_chat_does():
    """Both FAQ answers (the policy's and the written one) say how to ask in the chat, not 「把订单号发给我」:
    a bare order number after the FAQ goes to order tracking."""
    written = render("utter_faq/price_protection")
    from_policy = price_protection_answer(load_service_policy("price_protection"))
    for text in (written, from_policy):
        assert "直接把订单号发给我" not in text and "申请价保" in text
    assert render("utter_price_protection_faq_apply") in from_policy
    assert "“申请价保”加上订单号" in written
