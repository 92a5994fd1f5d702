"""The return, exchange and refund-status actions on tracker fixtures against the real CRM: the exact
events they return and the facts they tell."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk.events import ActiveLoop, SlotSet

from actions import formatting
from actions import return_policy as rp
from actions.crm import CRMClient
from actions.returns import (
    ActionRefundStatus,
    ActionReturnFinish,
    ActionReturnStop,
    ValidateReturnForm,
    idempotency_key,
)

from .conftest import as_uttered, fetch, load_tracker, proven_order, run_action

SHOE_ORDER = "880000010002"  # C000001, delivered 3 days ago: 耐克 跑鞋 + 安踏 T恤, wallet, coupon
CRAB_ORDER = "880000040001"  # C000004, delivered yesterday with 运费险: 大闸蟹 (fresh) + 优衣库 外套
POLICY = rp.default_policy()


def ent(name: str, value: Any) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(str(value)), "extractor": "DIETClassifier"}


def in_form(text: str, intent: str, entities: Optional[List[Dict[str, Any]]] = None, customer: str = "C000001",
            fixture: str = "signed_return_form", events: Optional[List[Dict[str, Any]]] = None, **slots: Any):
    """A tracker inside the return form, answering with ``text``."""
    message = {"text": text, "intent": {"name": intent, "confidence": 0.95}, "entities": entities or []}
    changes: Dict[str, Any] = {"latest_message": message, "slots": slots}
    if events is not None:
        changes["events"] = events
    return load_tracker(fixture, signed_as=customer if fixture.startswith("signed") else None, **changes)


def starting(text: str, intent: str = "return_request", entities: Optional[List[Dict[str, Any]]] = None,
             customer: str = "C000001", **slots: Any):
    message = {"text": text, "intent": {"name": intent, "confidence": 0.95}, "entities": entities or []}
    return load_tracker("signed_return_request", signed_as=customer, latest_message=message, slots=slots)


def text_of(messages: List[Dict[str, Any]]) -> str:
    return "\n".join(message.get("text") or "" for message in messages)


def payloads(messages: List[Dict[str, Any]]) -> List[str]:
    return [button["payload"] for message in messages for button in message.get("buttons") or []]


SHOE_AT_REASON = {
    "return_kind": "return", "return_order_id": SHOE_ORDER, "return_lines": [{"line_id": 1, "quantity": 1}],
    "requested_slot": "return_reason_code",
}
SHOE_AT_CONFIRM = {**SHOE_AT_REASON, "return_reason_code": "wrong_size", "return_package": "not_required",
                   "requested_slot": "return_confirmed"}


# ----------------------------------------------------------------------------- starting
def test_a_signed_customer_starts_a_return_and_gets_the_items_of_their_one_recent_order(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), starting("我要退货"))
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_order_id", SHOE_ORDER), SlotSet("return_invalid_count", 0.0)]
    assert len(messages) == 1
    assert SHOE_ORDER in messages[0]["text"]
    assert payloads(messages) == ['/inform{"product":"耐克 Air Zoom 跑鞋"}', '/inform{"product":"安踏 速干运动T恤"}',
                                  '/inform{"product":"全部商品"}']


def test_a_product_mention_picks_the_order_and_the_line(crm) -> None:
    tracker = starting("我要退那双耐克跑鞋", entities=[ent("product", "耐克跑鞋")])
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_order_id", SHOE_ORDER),
                      SlotSet("return_lines", [{"line_id": 1, "quantity": 1}]), SlotSet("return_invalid_count", 0.0)]
    assert "原因" in messages[0]["text"]
    assert '/inform{"return_reason":"quality_issue"}' in payloads(messages)
    assert len(messages[0]["buttons"]) == len(POLICY.reason_labels)


def test_starting_again_forgets_an_earlier_return_and_other_pending_flows(crm) -> None:
    tracker = starting("我要退货", pending_flow="track_order", return_order_id="880000099999", return_reason_code="other",
                       return_id="R0000000001", return_invalid_count=1.0)
    events, _ = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("pending_flow", None), SlotSet("return_kind", "return"), SlotSet("return_order_id", SHOE_ORDER),
                      SlotSet("return_reason_code", None), SlotSet("return_invalid_count", 0.0), SlotSet("return_id", None)]


def test_a_customer_with_orders_in_flight_only_hears_when_they_can_return(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), starting("我要退货", customer="C000002"))
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_invalid_count", 0.0), ActiveLoop(None)]
    assert "880000020001" in messages[0]["text"] and "签收后才能申请退货" in messages[0]["text"]


def test_an_order_delivered_40_days_ago_is_refused_with_the_rule_and_repair_is_offered(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), starting("我要退货", customer="C000003"))
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_invalid_count", 0.0), ActiveLoop(None)]
    text = messages[0]["text"]
    assert "880000030001" in text and "质量问题 15 天包退换" in text and "第 40 天" in text
    assert payloads(messages) == ["/human_agent"]


def test_a_customer_without_orders(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), starting("我要退货", customer="C000009"))
    assert events[-1] == ActiveLoop(None)
    assert "没有已签收的订单" in messages[0]["text"]


# ------------------------------------------------------------------------ the happy path
def test_the_reason_leads_to_a_summary_with_amount_shipping_pickup_and_refund_date(crm, crm_url) -> None:
    events, messages = run_action(ValidateReturnForm(), in_form("尺码不合适", "inform", [ent("return_reason", "wrong_size")],
                                                                  **SHOE_AT_REASON))
    assert events == [SlotSet("return_reason_code", "wrong_size"), SlotSet("return_package", "not_required"),
                      SlotSet("return_invalid_count", 0.0)]
    order = fetch(crm_url, f"/api/orders/{SHOE_ORDER}")
    today = formatting.today_in_shop()
    quote = rp.quote_refund(order, [(1, 1)], "wrong_size", today, POLICY)
    text = messages[0]["text"]
    assert quote.total_fen == order["items"][0]["paid_fen"]
    assert formatting.money(quote.total_fen) in text
    assert formatting.money(order["items"][0]["unit_price_fen"] - order["items"][0]["paid_fen"]) in text  # the coupon share
    assert "7天无理由退货" in text and "由您承担" in text
    assert formatting.day(quote.pickup_date, today) in text and "09:00–18:00" in text
    assert formatting.day(quote.refund_expected_by, today) in text and "在线钱包" in text
    assert payloads(messages) == ["/affirm", "/deny", "/stop"]


def test_a_reason_typed_in_words_is_understood(crm) -> None:
    events, _ = run_action(ValidateReturnForm(), in_form("鞋子穿着太小了", "inform", **SHOE_AT_REASON))
    assert SlotSet("return_reason_code", "wrong_size") in events


def test_a_quality_problem_is_free_to_send_back(crm) -> None:
    _, messages = run_action(ValidateReturnForm(), in_form("/inform", "inform", [ent("return_reason", "quality_issue")],
                                                             **SHOE_AT_REASON))
    assert "由商家承担" in messages[0]["text"] and "质量问题 15 天包退换" in messages[0]["text"]


# ------------------------------------------------------------------------------ refusals
def test_fresh_food_without_a_quality_problem_is_refused_with_the_rule_and_alternatives(crm) -> None:
    tracker = starting("大闸蟹不想要了", entities=[ent("product", "大闸蟹"), ent("return_reason", "no_longer_wanted")],
                       customer="C000004")
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_order_id", CRAB_ORDER),
                      SlotSet("return_lines", [{"line_id": 1, "quantity": 1}]), SlotSet("return_invalid_count", 0.0)]
    text = messages[0]["text"]
    assert "生鲜商品" in text and "不支持七天无理由退货" in text and "质量问题" in text
    assert payloads(messages) == ['/inform{"return_reason":"quality_issue"}', '/inform{"product":"优衣库 摇粒绒外套"}',
                                  '/human_agent{"handoff_reason":"policy_undecided"}', "/stop"]


def test_fresh_food_that_arrived_damaged_is_accepted(crm) -> None:
    tracker = in_form("/inform", "inform", [ent("return_reason", "damaged_on_arrival")], customer="C000004",
                      return_kind="return", return_order_id=CRAB_ORDER, return_lines=[{"line_id": 1, "quantity": 1}],
                      requested_slot="return_reason_code")
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("return_reason_code", "damaged_on_arrival"), SlotSet("return_package", "not_required"),
                      SlotSet("return_invalid_count", 0.0)]
    assert "符合「质量问题 15 天包退换」" in messages[0]["text"] and "¥398.00" in messages[0]["text"]


def test_the_shipping_insurance_pays_a_no_reason_return(crm) -> None:
    tracker = in_form("尺码不对", "inform", [ent("return_reason", "wrong_size")], customer="C000004",
                      return_kind="return", return_order_id=CRAB_ORDER, return_lines=[{"line_id": 2, "quantity": 1}],
                      requested_slot="return_reason_code")
    _, messages = run_action(ValidateReturnForm(), tracker)
    assert "运费险" in messages[0]["text"] and "¥199.00" in messages[0]["text"]


# ------------------------------------------------------------------ conversation behaviour
@pytest.mark.parametrize("intent", ["faq", "faq/return_policy", "chitchat", "stop", "track_order", "human_agent", "refund_status"])
def test_a_message_that_leaves_the_question_rejects_the_form(crm, intent: str) -> None:
    events, messages = run_action(ValidateReturnForm(), in_form("运费怎么算", intent, **SHOE_AT_REASON))
    assert (events, messages) == ([], [])


def test_after_a_faq_the_form_asks_its_question_again(crm) -> None:
    events_log = [
        {"event": "user", "text": "运费险是什么", "parse_data": {"intent": {"name": "faq"}}},
        {"event": "action", "name": "action_extract_slots"},
        {"event": "action_execution_rejected", "name": "return_form"},
        {"event": "action", "name": "utter_faq"},
        {"event": "bot", "text": "运费险是……"},
        {"event": "slot", "name": "requested_slot", "value": "return_reason_code"},
        {"event": "action", "name": "return_form"},
    ]
    tracker = in_form("运费险是什么", "faq", events=events_log, **SHOE_AT_REASON)
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("return_invalid_count", 0.0)]
    assert messages[0]["text"].startswith("我们接着刚才的退货申请：")
    assert "原因" in messages[0]["text"]


def test_two_invalid_answers_in_a_row_offer_a_human(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), in_form("嗯嗯嗯", "nlu_fallback", **SHOE_AT_REASON))
    assert events == [SlotSet("return_invalid_count", 1.0)]
    assert messages[0]["text"].startswith("抱歉，我没能理解您的回答。")
    assert "/human_agent" not in payloads(messages)
    events, messages = run_action(ValidateReturnForm(), in_form("啊？", "nlu_fallback", **{**SHOE_AT_REASON, "return_invalid_count": 1.0}))
    assert events == [SlotSet("return_invalid_count", 2.0)]
    assert "转人工" in messages[0]["text"]
    assert payloads(messages)[-1] == "/human_agent"
    assert '/inform{"return_reason":"wrong_size"}' in payloads(messages)


def test_a_valid_answer_resets_the_count(crm) -> None:
    tracker = in_form("尺码不合适", "inform", [ent("return_reason", "wrong_size")], **{**SHOE_AT_REASON, "return_invalid_count": 1.0})
    events, _ = run_action(ValidateReturnForm(), tracker)
    assert events[-1] == SlotSet("return_invalid_count", 0.0)


def test_another_order_when_there_is_no_other_ends_with_the_reason_why(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), in_form("不是这个订单，是另一个", "inform", **SHOE_AT_CONFIRM))
    assert events == [SlotSet("return_order_id", None), SlotSet("return_lines", None), SlotSet("return_reason_code", None),
                      SlotSet("return_package", None), SlotSet("return_invalid_count", 0.0), ActiveLoop(None)]
    assert "880000010001" in messages[0]["text"] and "签收后才能申请" in messages[0]["text"]


def test_a_different_reason_at_the_confirmation_updates_the_summary(crm) -> None:
    tracker = in_form("原因是质量问题", "inform", [ent("return_reason", "quality_issue")], **SHOE_AT_CONFIRM)
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("return_reason_code", "quality_issue"), SlotSet("return_invalid_count", 0.0)]
    assert "由商家承担" in messages[0]["text"] and "确认提交吗" in messages[0]["text"]


def test_deny_at_the_confirmation_keeps_the_draft_and_asks_what_to_change(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), in_form("不对", "deny", **SHOE_AT_CONFIRM))
    assert events == [SlotSet("return_invalid_count", 0.0)]
    assert "还没有提交" in messages[0]["text"]


def test_an_exchange_that_the_policy_allows_goes_to_after_sales_with_a_return_as_alternative(crm) -> None:
    tracker = starting("鞋子偏大，换小一码", intent="exchange_request",
                       entities=[ent("product", "鞋子"), ent("return_reason", "wrong_size")])
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("return_kind", "exchange"), SlotSet("return_order_id", SHOE_ORDER),
                      SlotSet("return_lines", [{"line_id": 1, "quantity": 1}]), SlotSet("return_reason_code", "wrong_size"),
                      SlotSet("return_package", "not_required"), SlotSet("return_invalid_count", 0.0), ActiveLoop(None)]
    assert "7天无理由换货" in messages[0]["text"]
    assert payloads(messages) == ["/human_agent",
                                  '/return_request{"order_id":"880000010002","product":["耐克 Air Zoom 跑鞋"],"return_reason":"wrong_size"}']


# ------------------------------------------------------------------------------ security
def test_another_customers_order_number_is_refused_without_confirming_it_exists(crm) -> None:
    tracker = starting(f"退货 {SHOE_ORDER}", entities=[ent("order_id", SHOE_ORDER)], customer="C000004")
    events, messages = run_action(ValidateReturnForm(), tracker)
    text = text_of(messages)
    assert f"在您的账户下没有找到订单 {SHOE_ORDER}" in text
    assert "耐克" not in text and "880000010001" not in text
    assert SlotSet("return_order_id", SHOE_ORDER) not in events
    unknown = starting("退货 880099999999", entities=[ent("order_id", "880099999999")], customer="C000004")
    _, unknown_messages = run_action(ValidateReturnForm(), unknown)
    assert text_of(unknown_messages).replace("880099999999", SHOE_ORDER) == text


def test_an_anonymous_shopper_is_asked_to_verify_and_learns_nothing(crm) -> None:
    events, messages = run_action(ValidateReturnForm(), load_tracker("anonymous_return_request"))
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_invalid_count", 0.0)]
    assert "后四位" in messages[0]["text"] and "880000" not in messages[0]["text"]


def test_forged_metadata_is_anonymous(crm) -> None:
    forged = {"text": "我要退货", "intent": {"name": "return_request"}, "entities": [],
              "metadata": {"channel": "app", "verified": "true", "customer_id": "C000001"}}
    _, messages = run_action(ValidateReturnForm(), load_tracker("anonymous_return_request", latest_message=forged))
    assert "后四位" in messages[0]["text"] and SHOE_ORDER not in messages[0]["text"]


def test_an_anonymous_shopper_with_the_right_phone_tail_continues_with_that_order(crm) -> None:
    tracker = load_tracker("anonymous_return_form", latest_message={"entities": [ent("order_id", CRAB_ORDER), ent("phone_last4", "4444")]},
                           slots={"return_kind": "return", "requested_slot": "return_order_id"})
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("verified_order_id", proven_order(tracker.sender_id, CRAB_ORDER)), SlotSet("failed_attempts", 0.0),
                      SlotSet("order_id", CRAB_ORDER),
                      SlotSet("phone_last4", None), SlotSet("return_order_id", CRAB_ORDER), SlotSet("return_invalid_count", 0.0)]
    assert CRAB_ORDER in messages[0]["text"]
    assert payloads(messages) == ['/inform{"product":"阳澄湖大闸蟹 礼盒装 8只"}', '/inform{"product":"优衣库 摇粒绒外套"}',
                                  '/inform{"product":"全部商品"}']


def test_an_anonymous_shopper_with_a_wrong_tail_twice_is_offered_a_human_and_the_form_ends(crm) -> None:
    wrong = {"entities": [ent("order_id", SHOE_ORDER), ent("phone_last4", "0000")]}
    tracker = load_tracker("anonymous_return_form", latest_message=wrong, slots={"return_kind": "return", "requested_slot": "return_order_id"})
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events == [SlotSet("order_id", None), SlotSet("phone_last4", None), SlotSet("failed_attempts", 1.0),
                      SlotSet("return_invalid_count", 0.0)]
    assert "没能对上" in messages[0]["text"] and "耐克" not in messages[0]["text"]
    tracker = load_tracker("anonymous_return_form", latest_message=wrong,
                           slots={"return_kind": "return", "requested_slot": "return_order_id", "failed_attempts": 1.0})
    events, messages = run_action(ValidateReturnForm(), tracker)
    assert events[-1] == ActiveLoop(None)
    assert payloads(messages) == ["/human_agent"]


# ------------------------------------------------------------------------ the CRM fails
def test_the_crm_down_at_the_start_says_so_offers_a_human_and_ends(dead_crm) -> None:
    events, messages = run_action(ValidateReturnForm(), starting("我要退货"))
    assert events == [SlotSet("return_kind", "return"), SlotSet("return_invalid_count", 0.0), ActiveLoop(None)]
    assert "没有响应" in messages[0]["text"] and payloads(messages) == ["/human_agent"]


def test_the_crm_down_at_the_confirmation_keeps_the_draft(dead_crm) -> None:
    events, messages = run_action(ValidateReturnForm(), in_form("确认", "affirm", **SHOE_AT_CONFIRM))
    assert events == [SlotSet("return_invalid_count", 0.0)]
    assert "还没有提交成功" in messages[0]["text"] and "确认" in messages[0]["text"]
    assert payloads(messages) == ["/human_agent"]


def test_refund_status_with_the_crm_down(dead_crm) -> None:
    events, messages = run_action(ActionRefundStatus(), load_tracker("signed_refund_status"))
    assert events == [SlotSet("pending_flow", None)]
    assert payloads(messages) == ["/human_agent"]


# ------------------------------------------------------------------- stop and finish
def test_stop_closes_the_form_without_submitting(crm) -> None:
    tracker = in_form("算了", "stop", **SHOE_AT_CONFIRM)
    events, messages = run_action(ActionReturnStop(), tracker)
    assert events == [ActiveLoop(None), SlotSet("requested_slot", None), SlotSet("return_kind", None),
                      SlotSet("return_order_id", None), SlotSet("return_lines", None), SlotSet("return_reason_code", None),
                      SlotSet("return_package", None)]
    assert as_uttered(messages[0])["text"] == "好的，这次退货申请已取消，没有提交。还有什么可以帮您的吗？"


def test_finish_forgets_the_flow_and_asks_what_else(crm) -> None:
    tracker = in_form("确认", "affirm", **{**SHOE_AT_CONFIRM, "return_confirmed": True, "return_id": "R0000000001"})
    events, messages = run_action(ActionReturnFinish(), tracker)
    assert events == [SlotSet("return_kind", None), SlotSet("return_order_id", None), SlotSet("return_lines", None),
                      SlotSet("return_reason_code", None), SlotSet("return_package", None), SlotSet("return_confirmed", None),
                      SlotSet("return_id", None)]
    assert [as_uttered(message)["text"] for message in messages] == ["还有什么可以帮您的吗？"]


# ---------------------------------------------------------------------------- refund status
def test_refund_status_of_a_return_in_progress(crm, crm_url) -> None:
    tracker = load_tracker("signed_refund_status", signed_as="C000005")
    events, messages = run_action(ActionRefundStatus(), tracker)
    assert events == [SlotSet("pending_flow", None)]
    (ret,) = fetch(crm_url, "/api/customers/C000005/returns")["items"]
    text = messages[0]["text"]
    assert ret["return_id"] in text and ret["status_label"] in text
    assert formatting.money(ret["refund_fen"]) in text and "在线钱包" in text
    assert formatting.day(formatting.parse_date(ret["refund_expected_by"]), formatting.today_in_shop()) in text
    assert text.endswith("还有什么可以帮您的吗？")


def test_refund_status_of_a_paid_refund(crm, crm_url) -> None:
    tracker = load_tracker("signed_refund_status", signed_as="C000006")
    _, messages = run_action(ActionRefundStatus(), tracker)
    (ret,) = fetch(crm_url, "/api/customers/C000006/returns")["items"]
    refunded = formatting.parse_datetime(ret["refunded_at"])
    assert f"已于 {formatting.moment(refunded)} 退款 {formatting.money(ret['refund_fen'])}" in messages[0]["text"]
    assert "银行卡" in messages[0]["text"]


def test_refund_status_without_returns(crm) -> None:
    tracker = load_tracker("signed_refund_status", signed_as="C000009")
    _, messages = run_action(ActionRefundStatus(), tracker)
    assert "没有退货退款记录" in messages[0]["text"]
    assert payloads(messages) == ["/return_request"]


def test_refund_status_for_another_customers_order_is_refused(crm) -> None:
    tracker = load_tracker("signed_refund_status", signed_as="C000001",
                           latest_message={"entities": [ent("order_id", "880000050001")]})
    events, messages = run_action(ActionRefundStatus(), tracker)
    assert events == [SlotSet("pending_flow", None)]
    assert "没有找到订单 880000050001" in messages[0]["text"] and "R8800000501" not in messages[0]["text"]


def test_refund_status_for_an_anonymous_shopper_verifies_first(crm) -> None:
    events, messages = run_action(ActionRefundStatus(), load_tracker("anonymous_refund_status"))
    assert events == [SlotSet("pending_flow", "refund_status")]
    assert "后四位" in messages[0]["text"]
    answer = {"intent": {"name": "inform"}, "entities": [ent("order_id", "880000050001"), ent("phone_last4", "6666")]}
    tracker = load_tracker("anonymous_refund_status", latest_message=answer, slots={"pending_flow": "refund_status"})
    events, messages = run_action(ActionRefundStatus(), tracker)
    assert events == [SlotSet("verified_order_id", proven_order(tracker.sender_id, "880000050001")), SlotSet("failed_attempts", 0.0),
                      SlotSet("order_id", "880000050001"), SlotSet("phone_last4", None), SlotSet("pending_flow", None)]
    assert "R8800000501" in messages[0]["text"]


# --------------------------------------------------------------- creating the return
def test_confirming_creates_one_return_even_when_the_confirmation_is_repeated(own_crm, own_crm_url) -> None:
    tracker = in_form("确认", "affirm", **SHOE_AT_CONFIRM)
    events, messages = run_action(ValidateReturnForm(), tracker)
    (created,) = fetch(own_crm_url, f"/api/orders/{SHOE_ORDER}/returns")["items"]
    assert events == [SlotSet("return_confirmed", True), SlotSet("return_invalid_count", 0.0), SlotSet("return_id", created["return_id"])]
    order = fetch(own_crm_url, f"/api/orders/{SHOE_ORDER}")
    today = formatting.today_in_shop()
    expected = rp.refund_dates(today, "wallet", POLICY)[1]
    assert (created["reason"], created["refund_fen"], created["return_shipping_paid_by"]) == ("wrong_size", 88080, "shopper")
    assert created["refund_expected_by"] == expected.isoformat()
    assert [(item["line_id"], item["quantity"]) for item in created["items"]] == [(1, 1)]
    assert order["items"][0]["returned_quantity"] == 1
    text = messages[0]["text"]
    assert created["return_id"] in text and "¥880.80" in text and formatting.day(expected, today) in text
    again, messages_again = run_action(ValidateReturnForm(), tracker)
    assert again == events
    assert len(fetch(own_crm_url, f"/api/orders/{SHOE_ORDER}/returns")["items"]) == 1
    assert created["return_id"] in messages_again[0]["text"]


def test_the_idempotency_key_depends_on_conversation_order_and_lines() -> None:
    key = idempotency_key("conv-1", SHOE_ORDER, [(1, 1)])
    assert key == idempotency_key("conv-1", SHOE_ORDER, [(1, 1)])
    assert key != idempotency_key("conv-2", SHOE_ORDER, [(1, 1)])
    assert key != idempotency_key("conv-1", SHOE_ORDER, [(1, 1), (2, 1)])
    assert idempotency_key("conv-1", SHOE_ORDER, [(2, 1), (1, 1)]) == idempotency_key("conv-1", SHOE_ORDER, [(1, 1), (2, 1)])
    assert len(key) <= 128


def test_a_returned_item_is_not_offered_again(own_crm, own_crm_url) -> None:
    events, messages = run_action(ValidateReturnForm(), starting("我要退货"))
    assert SlotSet("return_lines", [{"line_id": 2, "quantity": 1}]) in events  # only the T-shirt is left
    refund = asyncio.run(_customer_returns(own_crm_url, "C000001"))
    assert any(ret["order_id"] == SHOE_ORDER for ret in refund)


async def _customer_returns(url: str, customer_id: str) -> List[Dict[str, Any]]:
    client = CRMClient(url, "dev-crm-key")
    try:
        return await client.list_customer_returns(customer_id)
    finally:
        await client.close()
