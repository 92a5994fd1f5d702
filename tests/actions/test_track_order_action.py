"""action_track_order on tracker fixtures against the real CRM: the exact events it returns."""

from __future__ import annotations

from rasa_sdk.events import SlotSet

from actions.order_tracking import IN_FLIGHT
from actions.orders import ActionTrackOrder

from .conftest import fetch, load_tracker, proven_order, run_action


def entity(name: str, value: str):
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "ShopPatternExtractor"}


def in_flight(crm_url: str, customer_id: str):
    orders = fetch(crm_url, f"/api/customers/{customer_id}/orders?limit=50")["items"]
    return [order for order in orders if order["status"] in IN_FLIGHT]


def test_signed_customer_with_one_order_in_flight(crm, crm_url):
    (order,) = in_flight(crm_url, "C000001")
    events, messages = run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", order["order_id"])]
    assert len(messages) == 1
    assert order["order_id"] in messages[0]["text"]
    assert order["shipment"]["tracking_number"] in messages[0]["text"]


def test_signed_customer_with_several_orders_gets_buttons(crm, crm_url):
    orders = in_flight(crm_url, "C000002")
    tracker = load_tracker("signed_track_order", signed_as="C000002")
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events == [SlotSet("pending_flow", None)]
    payloads = [button["payload"] for button in messages[0]["buttons"]]
    assert sorted(payloads) == sorted(f'/track_order{{"order_id":"{order["order_id"]}"}}' for order in orders)


def test_forged_metadata_is_anonymous(crm):
    events, messages = run_action(ActionTrackOrder(), load_tracker("forged_metadata_track_order"))
    assert events == [SlotSet("pending_flow", "track_order")]
    assert "后四位" in messages[0]["text"]


def test_anonymous_with_matching_pair_is_verified(crm, crm_url):
    (order,) = in_flight(crm_url, "C000001")
    tracker = load_tracker(
        "anonymous_track_order",
        latest_message={"intent": {"name": "inform", "confidence": 0.9},
                        "entities": [entity("order_id", order["order_id"]), entity("phone_last4", order["receiver_phone"][-4:])]},
    )
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events == [
        SlotSet("verified_order_id", proven_order(tracker.sender_id, order["order_id"])),
        SlotSet("failed_attempts", 0.0),
        SlotSet("order_id", order["order_id"]),
        SlotSet("phone_last4", None),
        SlotSet("pending_flow", None),
    ]
    assert order["order_id"] in messages[0]["text"]


def test_anonymous_with_wrong_tail_learns_nothing(crm, crm_url):
    (order,) = in_flight(crm_url, "C000001")
    wrong = f"{(int(order['receiver_phone'][-4:]) + 1) % 10000:04d}"
    tracker = load_tracker(
        "anonymous_track_order",
        latest_message={"entities": [entity("order_id", order["order_id"]), entity("phone_last4", wrong)]},
    )
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events == [SlotSet("order_id", None), SlotSet("phone_last4", None), SlotSet("failed_attempts", 1.0),
                      SlotSet("pending_flow", "track_order")]
    assert order["shipment"]["tracking_number"] not in messages[0]["text"]


def test_anonymous_second_failure_offers_a_human(crm):
    tracker = load_tracker(
        "anonymous_track_order",
        slots={"failed_attempts": 1.0},
        latest_message={"entities": [entity("order_id", "999999999999"), entity("phone_last4", "0000")]},
    )
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events[-1] == SlotSet("pending_flow", None)
    assert SlotSet("failed_attempts", 2.0) in events
    assert messages[0]["buttons"] == [{"title": "转人工", "payload": "/human_agent"}]


def test_anonymous_order_number_only_asks_for_the_tail(crm):
    tracker = load_tracker("anonymous_track_order", latest_message={"entities": [entity("order_id", "202611150023")]})
    events, messages = run_action(ActionTrackOrder(), tracker)
    assert events == [SlotSet("order_id", "202611150023"), SlotSet("pending_flow", "track_order")]
    assert "后四位" in messages[0]["text"]


def test_other_customers_order_is_refused_like_an_unknown_one(crm, crm_url):
    (other,) = in_flight(crm_url, "C000001")
    _, refused = run_action(ActionTrackOrder(), load_tracker(
        "signed_track_order", signed_as="C000002", latest_message={"entities": [entity("order_id", other["order_id"])]}))
    _, unknown = run_action(ActionTrackOrder(), load_tracker(
        "signed_track_order", signed_as="C000002", latest_message={"entities": [entity("order_id", "999999999999")]}))
    assert refused[0]["text"].replace(other["order_id"], "X") == unknown[0]["text"].replace("999999999999", "X")


def test_crm_unreachable_is_said_honestly(dead_crm):
    events, messages = run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    assert events == [SlotSet("pending_flow", None)]
    assert "暂时没有响应" in messages[0]["text"]
    assert messages[0]["buttons"] == [{"title": "转人工", "payload": "/human_agent"}]


def test_late_order_comes_with_the_full_track_and_the_offer_of_a_human(crm, crm_url):
    (order,) = in_flight(crm_url, "C000001")
    assert order["is_late"]
    _, messages = run_action(ActionTrackOrder(), load_tracker("signed_track_order"))
    assert "非常抱歉" in messages[0]["text"] and "催件" in messages[0]["text"] and "延误补偿" in messages[0]["text"]
    assert messages[0]["buttons"] == [
        {"title": "查看完整物流", "payload": f'/track_order_full{{"order_id":"{order["order_id"]}"}}'},
        {"title": "转人工", "payload": '/human_agent{"handoff_reason":"policy_undecided"}'},
    ]
