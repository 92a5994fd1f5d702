"""action_track_order_full on tracker fixtures against the real seeded CRM: every scan, oldest first,
with the ownership checks of tracking (another customer's order is refused like an unknown one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, List

from rasa_sdk.events import SlotSet

from actions import formatting
from actions.orders import ASK_VERIFICATION, NOT_YOUR_ORDER, ActionTrackOrderFull
from actions.verification import ASK_PHONE_TAIL

from .conftest import fetch, load_tracker, run_action

LATE_ORDER = "880000010001"
HUMAN = {"title": "转人工", "payload": '/human_agent{"handoff_reason":"policy_undecided"}'}  # a late order: the agent decides


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "ShopPatternExtractor"}


def expected_event_lines(order: Dict[str, Any]) -> List[str]:
    """Every scan the CRM has, oldest first, written independently of the action's code."""
    events = sorted(order["shipment"]["events"], key=lambda event: datetime.fromisoformat(event["time"]))
    lines = []
    for number, event in enumerate(events, start=1):
        moment = formatting.parse_datetime(event["time"])
        lines.append(f"{number}. {moment.month}月{moment.day}日 {moment:%H:%M}【{event['location']}】{event['description']}")
    return lines


def test_full_track_from_the_button_lists_every_event_oldest_first(crm, crm_url):
    order = fetch(crm_url, f"/api/orders/{LATE_ORDER}")
    events, messages = run_action(ActionTrackOrderFull(), load_tracker("signed_track_order_full"))
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", LATE_ORDER)]
    (message,) = messages
    lines = message["text"].splitlines()
    count = len(order["shipment"]["events"])
    assert count >= 3
    first_item = order["items"][0]["product_name"]
    assert lines[0] == f"订单 {LATE_ORDER}（{first_item} 等 2 件）的完整物流：顺丰速运，运单号 SF{LATE_ORDER}，共 {count} 条，从早到晚："
    assert lines[1:-1] == expected_event_lines(order)
    assert "已揽收" in lines[1] and "延误" in message["text"]
    assert lines[-1] == "当前状态：运输中。"
    assert message["buttons"] == [HUMAN]  # the order is late: the human stays on offer


def test_full_track_of_another_customers_order_is_refused_like_an_unknown_one(crm, crm_url):
    order = fetch(crm_url, f"/api/orders/{LATE_ORDER}")
    _, refused = run_action(ActionTrackOrderFull(), load_tracker("signed_track_order_full", signed_as="C000002"))
    unknown_tracker = load_tracker(
        "signed_track_order_full", signed_as="C000002", latest_message={"entities": [entity("order_id", "999999999999")]}
    )
    events, unknown = run_action(ActionTrackOrderFull(), unknown_tracker)
    assert events == [SlotSet("pending_flow", None)]
    assert refused[0]["text"] == NOT_YOUR_ORDER.format(order_id=LATE_ORDER)
    assert refused[0]["text"].replace(LATE_ORDER, "X") == unknown[0]["text"].replace("999999999999", "X")
    assert all(event["description"] not in refused[0]["text"] for event in order["shipment"]["events"])


def test_typed_request_with_several_orders_in_flight_offers_full_track_buttons(crm, crm_url):
    orders = [o for o in fetch(crm_url, "/api/customers/C000002/orders?limit=50")["items"] if o["in_flight"]]
    tracker = load_tracker("signed_track_order_full", signed_as="C000002", latest_message={"text": "物流详情", "entities": []})
    events, messages = run_action(ActionTrackOrderFull(), tracker)
    assert events == [SlotSet("pending_flow", None)]
    assert messages[0]["text"] == f"您有 {len(orders)} 个订单正在配送中，想看哪一个的完整物流？"
    payloads = sorted(button["payload"] for button in messages[0]["buttons"])
    assert payloads == sorted(f'/track_order_full{{"order_id":"{order["order_id"]}"}}' for order in orders)


def test_typed_request_uses_the_order_the_conversation_is_about(crm, crm_url):
    order = fetch(crm_url, "/api/orders/880000020001")
    tracker = load_tracker(
        "signed_track_order_full",
        slots={"order_id": "880000020001"},
        signed_as="C000002",
        latest_message={"text": "完整物流", "entities": []},
    )
    events, messages = run_action(ActionTrackOrderFull(), tracker)
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", "880000020001")]
    assert messages[0]["text"].splitlines()[1:-1] == expected_event_lines(order)
    assert messages[0]["buttons"] == []


def test_a_remembered_order_of_someone_else_is_never_shown(crm, crm_url):
    other = fetch(crm_url, f"/api/orders/{LATE_ORDER}")
    tracker = load_tracker(
        "signed_track_order_full",
        slots={"order_id": LATE_ORDER},
        signed_as="C000007",
        latest_message={"text": "完整物流", "entities": []},
    )
    events, messages = run_action(ActionTrackOrderFull(), tracker)
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", "880000070001")]
    assert other["shipment"]["tracking_number"] not in messages[0]["text"] and "880000070001" in messages[0]["text"]


def test_order_not_shipped_has_no_track_yet(crm):
    tracker = load_tracker("signed_track_order_full", signed_as="C000002",
                           latest_message={"entities": [entity("order_id", "880000020002")]})
    events, messages = run_action(ActionTrackOrderFull(), tracker)
    assert events == [SlotSet("pending_flow", None), SlotSet("order_id", "880000020002")]
    assert messages[0]["text"].endswith("当前状态：待发货，还没有物流记录。发货后就能看到完整物流。")


def test_anonymous_shopper_is_verified_first(crm):
    events, messages = run_action(ActionTrackOrderFull(), load_tracker("anonymous_track_order_full"))
    assert events == [SlotSet("pending_flow", "track_order")]
    assert messages[0]["text"] == ASK_VERIFICATION


def test_anonymous_shopper_with_a_verified_order_gets_its_track(crm, crm_url):
    order = fetch(crm_url, f"/api/orders/{LATE_ORDER}")
    events, messages = run_action(ActionTrackOrderFull(), load_tracker("anonymous_track_order_full", proven=LATE_ORDER))
    assert events == [SlotSet("pending_flow", None)]
    assert messages[0]["text"].splitlines()[1:-1] == expected_event_lines(order)


def test_anonymous_shopper_asking_for_another_order_must_prove_it(crm, crm_url):
    other = fetch(crm_url, "/api/orders/880000070001")
    tracker = load_tracker(
        "anonymous_track_order_full",
        proven=LATE_ORDER,
        latest_message={"entities": [entity("order_id", "880000070001")]},
    )
    events, messages = run_action(ActionTrackOrderFull(), tracker)
    assert events == [SlotSet("order_id", "880000070001"), SlotSet("pending_flow", "track_order")]
    assert messages[0]["text"] == ASK_PHONE_TAIL.format(order_id="880000070001")
    assert other["shipment"]["tracking_number"] not in messages[0]["text"]
