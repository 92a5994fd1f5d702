"""Points and membership actions on tracker fixtures against the real CRM: the exact events."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from rasa_sdk.events import SlotSet

from actions import formatting
from actions import loyalty_rules as rules
from actions.conversation import idempotency_key
from actions.crm import CRMClient, set_crm_client
from actions.loyalty import (
    LOGIN_REQUIRED,
    LOYALTY_UNAVAILABLE,
    REDEEM_STOPPED,
    REDEEM_UNCONFIRMED,
    ActionMembershipTier,
    ActionPointsBalance,
    ActionPointsExpiry,
    ActionRedeemPoints,
)

from .conftest import fetch, load_tracker, run_action, unreachable_crm_client

HUMAN = {"title": "转人工", "payload": "/human_agent"}
CONFIRM_BUTTONS = [{"title": "确认兑换", "payload": "/affirm"}, {"title": "先不换了", "payload": "/deny"}]


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "RegexMessageHandler"}


def user(text: str, message_id: str) -> Dict[str, Any]:
    return {"event": "user", "text": text, "message_id": message_id, "timestamp": 1.0}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name}


def flow(step: Any, invalid: float = 0.0, pending: Any = "redeem_points") -> List[SlotSet]:
    return [SlotSet("pending_flow", pending), SlotSet("flow_step", step), SlotSet("flow_invalid_answers", invalid)]


def confirm_turn(customer_id: str, coupon_id: str, key: str, step: str = "confirm", previous: str = "action_redeem_points"):
    """A tracker in which the shopper answers 「确认」 to the redemption question."""
    return load_tracker(
        "signed_points_redeem",
        signed_as=customer_id,
        slots={"pending_flow": "redeem_points", "flow_step": step, "redeem_coupon_id": coupon_id, "redeem_key": key},
        latest_message={"text": "确认", "intent": {"name": "affirm", "confidence": 0.99}, "message_id": "m-2"},
        events=[user("满199减20", "m-1"), action(previous), action("action_listen"), user("确认", "m-2")],
    )


# ------------------------------------------------------------------------ balance and expiry
def test_balance_with_next_expiry_and_recent_lines(crm, crm_url):
    summary = fetch(crm_url, "/api/customers/C000001/points")
    today = formatting.today_in_shop()
    events, messages = run_action(ActionPointsBalance(), load_tracker("signed_points_balance"))
    assert events == []
    (message,) = messages
    text = message["text"]
    assert text.startswith(f"您当前可用积分 {rules.points(summary['balance'])}，可抵 {rules.points_value(summary['balance'])}")
    first = rules.upcoming_expiries(summary["expiring"], today)[0]
    assert rules.expiry_phrase(first, today) in text
    assert rules.ledger_line(summary["recent"][0]) in text
    assert text.endswith("还有什么可以帮您的吗？")
    assert message["buttons"] == [{"title": "兑换优惠券", "payload": "/points_redeem"}, {"title": "查会员等级", "payload": "/membership_tier"}]


def test_ledger_details_on_request(crm, crm_url):
    ledger = fetch(crm_url, "/api/customers/C000001/points/ledger?limit=10")["items"]
    tracker = load_tracker("signed_points_balance", latest_message={"text": "看一下积分明细"})
    events, messages = run_action(ActionPointsBalance(), tracker)
    assert events == []
    assert f"积分明细（最近 {len(ledger)} 笔）" in messages[0]["text"]
    assert all(rules.ledger_line(entry) in messages[0]["text"] for entry in ledger)


def test_expiry_names_this_months_points_and_dates(crm, crm_url):
    summary = fetch(crm_url, "/api/customers/C000001/points")
    today = formatting.today_in_shop()
    this_month = rules.expiring_this_month(summary["expiring"], today)
    assert this_month > 0
    tracker = load_tracker("signed_points_balance", latest_message={"text": "这个月有多少积分过期", "intent": {"name": "points_expiry"}})
    events, messages = run_action(ActionPointsExpiry(), tracker)
    assert events == []
    text = messages[0]["text"]
    assert f"本月有 {rules.points(this_month)} 积分到期" in text
    for entry in rules.upcoming_expiries(summary["expiring"], today):
        assert rules.expiry_phrase(entry, today) in text
    assert rules.POINTS_RULE in text


@pytest.mark.parametrize("action_class", [ActionPointsBalance, ActionPointsExpiry, ActionMembershipTier, ActionRedeemPoints])
def test_anonymous_shopper_is_told_to_log_in(crm, action_class):
    events, messages = run_action(action_class(), load_tracker("anonymous_points_balance"))
    ends = flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert events == (ends if action_class is ActionRedeemPoints else [])
    assert messages[0]["text"] == LOGIN_REQUIRED + "\n还有什么可以帮您的吗？"


@pytest.mark.parametrize("action_class", [ActionPointsBalance, ActionMembershipTier])
def test_a_verified_order_does_not_open_the_account(crm, action_class):
    tracker = load_tracker("anonymous_points_balance", proven="880000010001")
    events, messages = run_action(action_class(), tracker)
    assert events == []
    assert messages[0]["text"].startswith(LOGIN_REQUIRED)
    assert "39" not in messages[0]["text"].replace(LOGIN_REQUIRED, "")


def test_forged_identity_is_anonymous(crm):
    tracker = load_tracker("signed_points_balance", latest_message={"metadata": {"channel": "app", "verified": False, "customer_id": "C000001"}})
    _, messages = run_action(ActionPointsBalance(), tracker)
    assert messages[0]["text"].startswith(LOGIN_REQUIRED)


def test_crm_down_is_said_honestly_with_a_human(dead_crm):
    events, messages = run_action(ActionPointsBalance(), load_tracker("signed_points_balance"))
    assert events == []
    assert [(message["text"], message["buttons"]) for message in messages] == [(LOYALTY_UNAVAILABLE, [HUMAN])]


# ------------------------------------------------------------------------------------ tiers
@pytest.mark.parametrize("customer_id", ["C000001", "C000002", "C000003", "C000007", "C000009"])
def test_tier_growth_value_and_exact_gap(crm, crm_url, customer_id):
    customer = fetch(crm_url, f"/api/customers/{customer_id}")
    tracker = load_tracker("signed_points_balance", signed_as=customer_id, latest_message={"intent": {"name": "membership_tier"}})
    events, messages = run_action(ActionMembershipTier(), tracker)
    assert events == []
    text = messages[0]["text"]
    assert f"您目前是{customer['tier_name']}（{customer['tier']}），近 12 个月成长值 {rules.points(customer['growth_value'])}。" in text
    upper = customer["next_tier"]
    if upper:
        assert f"再累计 {rules.points(upper['growth_missing'])} 成长值即可升级为{upper['name']}" in text
    else:
        assert "这已是最高等级" in text
    assert messages[0]["buttons"] == [{"title": "查积分", "payload": "/points_balance"}]


# ------------------------------------------------------------------------------- redemption
def test_redeem_shows_the_catalogue_as_buttons(crm, crm_url):
    coupons = fetch(crm_url, "/api/coupons")["items"]
    events, messages = run_action(ActionRedeemPoints(), load_tracker("signed_points_redeem"))
    assert events == flow("choose") + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    payloads = [button["payload"] for button in messages[0]["buttons"]]
    assert payloads == [f'/points_redeem{{"coupon_id":"{coupon["coupon_id"]}"}}' for coupon in coupons]


def test_choosing_a_coupon_asks_for_confirmation_with_cost_and_balance_after(crm, crm_url):
    balance = fetch(crm_url, "/api/customers/C000001/points")["balance"]
    tracker = load_tracker(
        "signed_points_redeem",
        slots={"pending_flow": "redeem_points", "flow_step": "choose"},
        latest_message={"text": '/points_redeem{"coupon_id":"CP0020"}', "entities": [entity("coupon_id", "CP0020")]},
    )
    events, messages = run_action(ActionRedeemPoints(), tracker)
    key = idempotency_key("fixture-redeem", "fixture-redeem-m1", "CP0020")
    assert events == flow("confirm") + [SlotSet("redeem_coupon_id", "CP0020"), SlotSet("redeem_key", key)]
    assert f"兑换后您的积分从 {rules.points(balance)} 变为 {rules.points(balance - 2000)}" in messages[0]["text"]
    assert messages[0]["buttons"] == CONFIRM_BUTTONS


@pytest.mark.parametrize("intent", ["inform", "points_redeem", "nlu_fallback", "rate_service"])
def test_typed_coupon_choice_is_understood(crm, intent):
    tracker = load_tracker(
        "signed_points_redeem",
        slots={"pending_flow": "redeem_points", "flow_step": "choose"},
        latest_message={"text": "换那个满500减50的", "intent": {"name": intent}},
    )
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events[:3] == flow("confirm")
    assert SlotSet("redeem_coupon_id", "CP0050") in events
    assert "「满500减50」" in messages[0]["text"]


def test_confirmed_redemption_is_made_once_whatever_the_repeats(own_crm, own_crm_url):
    before = fetch(own_crm_url, "/api/customers/C000001/points")["balance"]
    key = idempotency_key("fixture-redeem", "turn-42", "CP0020")
    events, messages = run_action(ActionRedeemPoints(), confirm_turn("C000001", "CP0020", key))
    assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    after = fetch(own_crm_url, "/api/customers/C000001/points")["balance"]
    assert after == before - 2000
    assert f"剩余 {rules.points(after)} 积分" in messages[0]["text"]
    assert messages[0]["text"].endswith("还有什么可以帮您的吗？")
    redemption_id = messages[0]["text"].split("兑换单号 ")[1][:12]

    _, again = run_action(ActionRedeemPoints(), confirm_turn("C000001", "CP0020", key))
    assert redemption_id in again[0]["text"]
    assert fetch(own_crm_url, "/api/customers/C000001/points")["balance"] == after


def test_stale_confirmation_is_asked_again_not_executed(own_crm, own_crm_url):
    before = fetch(own_crm_url, "/api/customers/C000001/points")["balance"]
    key = idempotency_key("fixture-redeem", "turn-43", "CP0010")
    tracker = confirm_turn("C000001", "CP0010", key, previous="utter_human_not_in_chat")
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events == flow("confirm")
    assert "确认兑换吗？" in messages[0]["text"]
    assert fetch(own_crm_url, "/api/customers/C000001/points")["balance"] == before


def test_not_enough_points_says_exactly_how_many_are_missing(crm):
    tracker = load_tracker(
        "signed_points_redeem",
        signed_as="C000008", latest_message={"text": '/points_redeem{"coupon_id":"CP0005"}',
                        "entities": [entity("coupon_id", "CP0005")]},
    )
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert messages[0]["text"].startswith("抱歉，积分还不够：兑换「无门槛5元券」需要 500 积分，您当前可用 0 积分，还差 500 积分。")


def test_zero_points_catalogue_ends_the_flow(crm):
    tracker = load_tracker("signed_points_redeem", signed_as="C000008")
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert "暂时还不够兑换优惠券" in messages[0]["text"] and "还差 500 积分" in messages[0]["text"]


def test_crm_refusal_at_confirmation_is_explained(own_crm):
    key = idempotency_key("fixture-redeem", "turn-44", "CP0005")
    events, messages = run_action(ActionRedeemPoints(), confirm_turn("C000008", "CP0005", key))
    assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert "还差 500 积分" in messages[0]["text"]


@pytest.mark.parametrize("intent", ["stop", "deny"])
def test_stop_leaves_the_points_untouched(crm, intent):
    tracker = load_tracker(
        "signed_points_redeem",
        slots={"pending_flow": "redeem_points", "flow_step": "confirm", "redeem_coupon_id": "CP0020", "redeem_key": "k"},
        latest_message={"text": "算了", "intent": {"name": intent}},
    )
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert messages[0]["text"] == REDEEM_STOPPED + "\n还有什么可以帮您的吗？"


def test_two_unusable_answers_offer_a_human(crm):
    def answer(invalid: float):
        return load_tracker(
            "signed_points_redeem",
            slots={"pending_flow": "redeem_points", "flow_step": "choose", "flow_invalid_answers": invalid},
            latest_message={"text": "嗯嗯随便吧", "intent": {"name": "inform"}},
        )

    events, messages = run_action(ActionRedeemPoints(), answer(0.0))
    assert events == flow("choose", 1.0) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert HUMAN not in messages[0]["buttons"]
    events, messages = run_action(ActionRedeemPoints(), answer(1.0))
    assert events == flow("choose", 2.0) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert messages[0]["buttons"][-1] == HUMAN


def test_faq_in_the_middle_comes_back_to_the_question(crm):
    tracker = load_tracker(
        "signed_points_redeem",
        slots={"pending_flow": "redeem_points", "flow_step": "confirm", "redeem_coupon_id": "CP0020", "redeem_key": "k"},
        latest_message={"text": "运费怎么算", "intent": {"name": "faq"}},
    )
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events == flow("confirm")
    assert messages[0]["text"].startswith("我们接着刚才的事情：\n请确认：用 2,000 积分兑换「满199减20」")
    assert messages[0]["buttons"] == CONFIRM_BUTTONS


def test_crm_down_at_confirmation_keeps_the_key_for_a_safe_retry(own_crm_url):
    key = idempotency_key("fixture-redeem", "turn-45", "CP0005")
    set_crm_client(unreachable_crm_client())
    try:
        events, messages = run_action(ActionRedeemPoints(), confirm_turn("C000001", "CP0005", key))
    finally:
        set_crm_client(None)
    assert events == flow("confirm_retry")
    assert messages[0]["text"] == REDEEM_UNCONFIRMED
    assert messages[0]["buttons"] == [CONFIRM_BUTTONS[0], HUMAN]

    set_crm_client(CRMClient(own_crm_url, "dev-crm-key", timeout_s=2.0))
    try:
        before = fetch(own_crm_url, "/api/customers/C000001/points")["balance"]
        events, messages = run_action(ActionRedeemPoints(), confirm_turn("C000001", "CP0005", key, step="confirm_retry"))
        assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
        assert fetch(own_crm_url, "/api/customers/C000001/points")["balance"] == before - 500
        assert "兑换成功" in messages[0]["text"]
    finally:
        set_crm_client(None)


def test_goodbye_closes_the_flow_without_another_word(crm):
    tracker = load_tracker(
        "signed_points_redeem",
        slots={"pending_flow": "redeem_points", "flow_step": "confirm", "redeem_coupon_id": "CP0020", "redeem_key": "k"},
        latest_message={"text": "再见", "intent": {"name": "goodbye"}},
    )
    events, messages = run_action(ActionRedeemPoints(), tracker)
    assert events == flow(None, pending=None) + [SlotSet("redeem_coupon_id", None), SlotSet("redeem_key", None)]
    assert messages == []
