"""Cancel-order and change-address actions on tracker fixtures against the real CRM: the exact events.

Changes go to a CRM of this module's own; reads that other tests rely on are not disturbed.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk.events import SlotSet

from actions.crm import set_crm_client
from actions.order_changes import ADDRESS_TEXTS, CANCEL_TEXTS, ActionCancelOrder, ActionChangeAddress
from actions.orders import NOT_YOUR_ORDER

from .conftest import fetch, load_tracker, run_action, unreachable_crm_client

HUMAN = {"title": "转人工", "payload": "/human_agent"}
CANCEL_BUTTONS = [{"title": "确认取消", "payload": "/affirm"}, {"title": "不取消了", "payload": "/deny"}]
ADDRESS_BUTTONS = [{"title": "确认修改", "payload": "/affirm"}, {"title": "不改了", "payload": "/deny"}]
CLOSING = "还有什么可以帮您的吗？"
RECEIVER = ("new_receiver_name", "new_receiver_phone", "new_address")


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "ShopPatternExtractor"}


def flow(pending: Optional[str], step: Optional[str], invalid: float = 0.0) -> List[SlotSet]:
    return [SlotSet("pending_flow", pending), SlotSet("flow_step", step), SlotSet("flow_invalid_answers", invalid)]


def ended(*extra: str) -> List[SlotSet]:
    return flow(None, None) + [SlotSet(name, None) for name in ("change_order_id", *extra)]


def answered(fixture: str, flow_name: str, step: str, text: str, intent: str, previous: str,
             proven: Optional[str] = None, **slots: Any):
    """A tracker in which the shopper answers the question ``previous`` asked in ``flow_name``."""
    return load_tracker(
        fixture,
        proven=proven,
        slots={"pending_flow": flow_name, "flow_step": step, **slots},
        latest_message={"text": text, "intent": {"name": intent, "confidence": 0.99}},
        events=[
            {"event": "user", "text": "…", "message_id": "m-1"},
            {"event": "action", "name": previous},
            {"event": "action", "name": "action_listen"},
            {"event": "user", "text": text, "message_id": "m-2"},
        ],
    )


def orders_of(url: str, customer_id: str) -> List[Dict[str, Any]]:
    return fetch(url, f"/api/customers/{customer_id}/orders?limit=50")["items"]


# ------------------------------------------------------------------------------- cancelling
def test_the_only_open_order_goes_straight_to_confirmation(own_crm):
    events, messages = run_action(ActionCancelOrder(), load_tracker("signed_cancel_order"))
    assert events == flow("cancel_order", "confirm") + [SlotSet("change_order_id", "880000080001")]
    assert messages[0]["text"].startswith("请确认是否取消订单 880000080001（")
    assert "还没有付款，取消后不会产生任何费用" in messages[0]["text"]
    assert messages[0]["buttons"] == CANCEL_BUTTONS


def test_several_open_orders_offer_buttons(crm, crm_url):
    open_ids = [o["order_id"] for o in orders_of(crm_url, "C000002") if o["status"] in ("awaiting_shipment", "in_transit")]
    tracker = load_tracker("signed_cancel_order", signed_as="C000002")
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == flow("cancel_order", "choose")
    assert [button["payload"] for button in messages[0]["buttons"]] == [f'/cancel_order{{"order_id":"{oid}"}}' for oid in open_ids]
    assert "待发货" in messages[0]["buttons"][0]["title"] and "运输中" in messages[0]["buttons"][1]["title"]


def test_a_shipped_order_is_refused_with_the_alternatives(crm):
    tracker = load_tracker(
        "signed_cancel_order",
        slots={"pending_flow": "cancel_order", "flow_step": "choose"},
        signed_as="C000002", latest_message={"text": '/cancel_order{"order_id":"880000020001"}',
                        "entities": [entity("order_id", "880000020001")]},
    )
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == ended()
    text = messages[0]["text"]
    assert "已经发货" in text and "JD0880000020001" in text and "拒收" in text and "无理由退货" in text
    assert text.endswith(CLOSING)
    assert messages[0]["buttons"] == [HUMAN]


def test_confirmed_cancellation_goes_through_the_crm(own_crm, own_crm_url):
    events, messages = run_action(
        ActionCancelOrder(),
        answered("signed_cancel_order", "cancel_order", "confirm", "确认", "affirm", "action_cancel_order",
                 change_order_id="880000080001"),
    )
    order = fetch(own_crm_url, "/api/orders/880000080001")
    assert order["status"] == "cancelled"
    assert events == ended()
    assert messages[0]["text"].startswith("订单 880000080001 已为您取消（取消时间 ")
    assert messages[0]["text"].endswith(CLOSING)

    events, messages = run_action(
        ActionCancelOrder(),
        answered("signed_cancel_order", "cancel_order", "confirm_retry", "确认", "affirm", "action_cancel_order",
                 change_order_id="880000080001"),
    )
    assert events == ended()
    assert "已为您取消" in messages[0]["text"]


def test_a_paid_order_is_told_where_the_money_goes(own_crm, own_crm_url):
    tracker = load_tracker("signed_cancel_order", signed_as="C000002", latest_message={
        "entities": [entity("order_id", "880000020002")]})
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == flow("cancel_order", "confirm") + [SlotSet("change_order_id", "880000020002")]
    assert "实付 ¥237.00 将原路退回您的在线钱包，预计 1–3 个工作日到账，最晚 " in messages[0]["text"]
    assert fetch(own_crm_url, "/api/orders/880000020002")["status"] == "awaiting_shipment"


def test_stale_confirmation_is_asked_again(own_crm, own_crm_url):
    tracker = answered("signed_change_address", "cancel_order", "confirm", "确认", "affirm", "utter_human_not_in_chat",
                       change_order_id="880000020002")
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == flow("cancel_order", "confirm")
    assert messages[0]["text"].startswith("请确认是否取消订单 880000020002")
    assert fetch(own_crm_url, "/api/orders/880000020002")["status"] == "awaiting_shipment"


@pytest.mark.parametrize("intent", ["deny", "stop"])
def test_no_or_stop_changes_nothing(own_crm, own_crm_url, intent):
    tracker = answered("signed_change_address", "cancel_order", "confirm", "算了", intent, "action_cancel_order",
                       change_order_id="880000020002")
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == ended()
    assert messages[0]["text"] == "好的，不取消了，订单没有任何改动。\n" + CLOSING
    assert fetch(own_crm_url, "/api/orders/880000020002")["status"] == "awaiting_shipment"


@pytest.mark.parametrize(("text", "intent"), [("不是这个订单，是另一个", "inform"), ("不是这个", "deny")])
def test_correction_offers_the_other_orders(crm, text, intent):
    tracker = answered("signed_change_address", "cancel_order", "confirm", text, intent,
                       "action_cancel_order", change_order_id="880000020002")
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == flow("cancel_order", "choose")
    assert messages[0]["text"] == "好的，您说的是下面哪个订单？"
    assert [button["payload"] for button in messages[0]["buttons"]] == ['/cancel_order{"order_id":"880000020001"}']


def test_another_customers_order_is_refused_like_an_unknown_one(crm):
    def ask(order_id: str):
        tracker = load_tracker("signed_cancel_order", signed_as="C000009", latest_message={
            "text": f"取消订单 {order_id}", "entities": [entity("order_id", order_id)]})
        return run_action(ActionCancelOrder(), tracker)

    events, refused = ask("880000020002")
    _, unknown = ask("999999999999")
    assert events == ended()
    assert refused[0]["text"] == NOT_YOUR_ORDER.format(order_id="880000020002") + "\n" + CLOSING
    assert refused[0]["text"].replace("880000020002", "X") == unknown[0]["text"].replace("999999999999", "X")


CHANGES = [(ActionCancelOrder, CANCEL_TEXTS, ()), (ActionChangeAddress, ADDRESS_TEXTS, RECEIVER)]


@pytest.mark.parametrize(("action_class", "texts", "extra"), CHANGES, ids=["cancel", "address"])
def test_anonymous_shopper_is_asked_to_log_in_and_nothing_is_asked_of_the_crm(recording_crm, action_class, texts, extra):
    events, messages = run_action(action_class(), load_tracker("anonymous_cancel_order"))
    assert events == ended(*extra)
    assert messages == [{**messages[0], "text": texts.login_required, "buttons": [HUMAN]}]
    assert "登录" in texts.login_required and "不能取消或修改" in texts.login_required
    assert recording_crm.requests == []


@pytest.mark.parametrize(("action_class", "texts", "extra"), CHANGES, ids=["cancel", "address"])
def test_the_right_phone_tail_does_not_let_an_anonymous_shopper_change_the_order(recording_crm, action_class, texts, extra):
    tracker = load_tracker("anonymous_cancel_order", latest_message={
        "text": "880000080001 尾号1234", "entities": [entity("order_id", "880000080001"), entity("phone_last4", "1234")]})
    events, messages = run_action(action_class(), tracker)
    assert events == ended(*extra)
    assert messages[0]["text"] == texts.login_required
    assert recording_crm.requests == []


def test_an_order_proven_with_its_phone_tail_is_not_cancelled_even_when_confirmed(recording_own_crm, own_crm_url):
    before = fetch(own_crm_url, "/api/orders/880000080001")
    tracker = answered("anonymous_cancel_order", "cancel_order", "confirm", "确认", "affirm", "action_cancel_order",
                       proven="880000080001", change_order_id="880000080001")
    events, messages = run_action(ActionCancelOrder(), tracker)
    assert events == ended()
    assert messages[0]["text"] == CANCEL_TEXTS.login_required and messages[0]["buttons"] == [HUMAN]
    assert recording_own_crm.requests == []
    assert fetch(own_crm_url, "/api/orders/880000080001") == before


def test_an_order_proven_with_its_phone_tail_is_not_readdressed_even_when_confirmed(recording_own_crm, own_crm_url):
    before = fetch(own_crm_url, "/api/orders/880000080001")
    tracker = answered("anonymous_cancel_order", "change_address", "confirm", "确认", "affirm", "action_change_address",
                       proven="880000080001", change_order_id="880000080001", new_receiver_name="王芳", new_receiver_phone="13900001111",
                       new_address="上海市浦东新区张江路100号3号楼502室")
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events == ended(*RECEIVER)
    assert messages[0]["text"] == ADDRESS_TEXTS.login_required
    assert recording_own_crm.requests == []
    assert fetch(own_crm_url, "/api/orders/880000080001") == before


def test_crm_down_at_confirmation_is_said_honestly(own_crm_url):
    set_crm_client(unreachable_crm_client())
    try:
        events, messages = run_action(ActionCancelOrder(), answered(
            "signed_change_address", "cancel_order", "confirm", "确认", "affirm", "action_cancel_order",
            change_order_id="880000020002"))
    finally:
        set_crm_client(None)
    assert events == []
    assert "暂时没有响应" in messages[0]["text"]
    assert messages[0]["buttons"] == [HUMAN]


# ---------------------------------------------------------------------------- address change
def test_address_change_asks_for_the_new_receiver_with_the_phone_masked(crm):
    tracker = load_tracker("signed_change_address", latest_message={"entities": [entity("order_id", "880000020002")]})
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events == flow("change_address", "details") + [SlotSet("change_order_id", "880000020002")] + [
        SlotSet(name, None) for name in RECEIVER]
    text = messages[0]["text"]
    assert "139****4321" in text and "13987654321" not in text
    assert "收货人姓名、手机号和详细地址" in text


@pytest.mark.parametrize("intent", ["inform", "nlu_fallback", "rate_service"])
def test_address_details_in_one_message_lead_to_a_masked_confirmation(crm, intent):
    tracker = answered("signed_change_address", "change_address", "details", "王芳 13900001111 上海市浦东新区张江路100号3号楼502室",
                       intent, "action_change_address", change_order_id="880000020002")
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events == flow("change_address", "confirm") + [
        SlotSet("change_order_id", "880000020002"),
        SlotSet("new_receiver_name", "王芳"),
        SlotSet("new_receiver_phone", "13900001111"),
        SlotSet("new_address", "上海市浦东新区张江路100号3号楼502室"),
    ]
    assert "手机号：139****1111" in messages[0]["text"] and "13900001111" not in messages[0]["text"]
    assert messages[0]["buttons"] == ADDRESS_BUTTONS


def test_partial_details_ask_for_the_rest(crm):
    tracker = answered("signed_change_address", "change_address", "details", "上海市浦东新区张江路100号", "inform",
                       "action_change_address", change_order_id="880000020002")
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events == flow("change_address", "details") + [
        SlotSet("change_order_id", "880000020002"), SlotSet("new_receiver_name", None), SlotSet("new_receiver_phone", None),
        SlotSet("new_address", "上海市浦东新区张江路100号")]
    assert "还需要新的收货人姓名、手机号" in messages[0]["text"]


def test_two_unreadable_answers_offer_a_human(crm):
    tracker = answered("signed_change_address", "change_address", "details", "嗯嗯", "nlu_fallback", "action_change_address",
                       change_order_id="880000020002", flow_invalid_answers=1.0)
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events[:3] == flow("change_address", "details", 2.0)
    assert messages[0]["buttons"] == [HUMAN]
    assert "转人工" in messages[0]["text"]


def test_faq_during_the_details_comes_back_to_them(crm):
    tracker = answered("signed_change_address", "change_address", "details", "发票怎么开", "faq", "action_change_address",
                       change_order_id="880000020002", new_address="上海市浦东新区张江路100号")
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events[:3] == flow("change_address", "details")
    assert messages[0]["text"].startswith("我们接着刚才的事情：")
    assert SlotSet("new_address", "上海市浦东新区张江路100号") in events


def test_confirmed_address_change_is_read_back_from_the_crm(own_crm, own_crm_url):
    tracker = answered("signed_change_address", "change_address", "confirm", "确认", "affirm", "action_change_address",
                       change_order_id="880000020002", new_receiver_name="李娜", new_receiver_phone="13987654321",
                       new_address="上海市浦东新区张江路100号3号楼502室")
    events, messages = run_action(ActionChangeAddress(), tracker)
    order = fetch(own_crm_url, "/api/orders/880000020002")
    assert (order["receiver_name"], order["receiver_phone"], order["address"]) == ("李娜", "13987654321", "上海市浦东新区张江路100号3号楼502室")
    assert events == ended(*RECEIVER)
    assert messages[0]["text"] == (
        "已为您修改订单 880000020002 的收货信息：收货人 李娜，手机 139****4321，地址 上海市浦东新区张江路100号3号楼502室。"
        "发货后将按新地址配送。\n" + CLOSING
    )


def test_a_shipped_order_cannot_be_readdressed(crm):
    tracker = load_tracker("signed_change_address", signed_as="C000001")
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events == ended(*RECEIVER)
    assert "收货地址已无法在线修改" in messages[0]["text"] and "改派" in messages[0]["text"]
    assert messages[0]["buttons"] == [HUMAN]


def test_goodbye_closes_the_flow_without_another_word(crm):
    tracker = answered("signed_change_address", "change_address", "details", "再见", "goodbye", "utter_goodbye",
                       change_order_id="880000020002", new_address="上海市浦东新区张江路100号")
    events, messages = run_action(ActionChangeAddress(), tracker)
    assert events == ended(*RECEIVER)
    assert messages == []


def test_the_action_server_registers_every_flow_action():
    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    executor.register_package("actions")
    for name in ("action_points_balance", "action_points_expiry", "action_membership_tier", "action_redeem_points",
                 "action_cancel_order", "action_change_address"):
        assert name in executor.actions
