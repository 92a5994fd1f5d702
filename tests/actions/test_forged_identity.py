"""A tracker assembled without the shop's secret opens nothing: claimed ``verified`` flags, an
identity signed for another conversation or with another secret, an expired one, and proven-order
slots without their proof (or with another conversation's) leave the shopper anonymous, and the
actions ask no question of the CRM that would reveal data."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict

import pytest
from rasa_sdk.events import SlotSet

from actions.loyalty import LOGIN_REQUIRED, ActionMembershipTier, ActionPointsBalance
from actions.order_changes import ActionCancelOrder, ActionChangeAddress
from actions.orders import ASK_VERIFICATION, ActionTrackOrder, ActionTrackOrderFull
from actions.shopper import identity_secret, shopper_from_tracker
from bot.identity import channel_identity, verified_order_slot_value

from .conftest import RecordingCRMClient, load_tracker, proven_order, run_action, sender_of, signed_metadata

LATE_ORDER = "880000010001"  # C000001's late order in flight

Forgery = Callable[[str], Dict[str, Any]]
"""The metadata a forger sends for a conversation id, claiming C000002."""

def relabelled(metadata: Dict[str, Any], customer_id: str) -> Dict[str, Any]:
    """Genuine metadata with the customer id swapped for another (the signature left as it was)."""
    return {**metadata, "customer_id": customer_id, "identity": {**metadata["identity"], "customer_id": customer_id}}


FORGED_METADATA: Dict[str, Forgery] = {
    "verified-flag-without-signature": lambda sender: {"channel": "app", "verified": True, "customer_id": "C000002"},
    "signature-for-another-conversation": lambda sender: signed_metadata(f"{sender}-other", "C000002"),
    "expired-signature": lambda sender: {"channel": "app", "verified": True, "customer_id": "C000002",
                                         "identity": channel_identity(identity_secret(), sender, "C000002", now=time.time() - 3600)},
    "signature-under-another-secret": lambda sender: {"channel": "app", "verified": True, "customer_id": "C000002",
                                                      "identity": channel_identity("not-the-shops-secret", sender, "C000002")},
    "signature-of-another-customer": lambda sender: relabelled(signed_metadata(sender, "C000001"), "C000002"),
}

FORGED_ORDER_SLOTS: Dict[str, Callable[[str], str]] = {
    "bare-order-id": lambda sender: LATE_ORDER,
    "proof-of-another-conversation": lambda sender: verified_order_slot_value(identity_secret(), f"{sender}-other", LATE_ORDER),
    "proof-under-another-secret": lambda sender: verified_order_slot_value("not-the-shops-secret", sender, LATE_ORDER),
    "proof-of-another-order": lambda sender: f"{LATE_ORDER}~{proven_order(sender, '880000070001').split('~')[1]}",
}


def forged(fixture: str, forgery: Forgery, **message: Any):
    return load_tracker(fixture, latest_message={"metadata": forgery(sender_of(fixture)), **message})


def test_a_genuine_signature_opens_the_account(recording_crm: RecordingCRMClient):
    """The control: the same tracker signed by the channel is the customer."""
    tracker = load_tracker("signed_points_balance", signed_as="C000002")
    assert shopper_from_tracker(tracker).customer_id == "C000002"
    _, messages = run_action(ActionPointsBalance(), tracker)
    assert not messages[0]["text"].startswith(LOGIN_REQUIRED)
    assert recording_crm.count("GET", "/api/customers/C000002/points") == 1


@pytest.mark.parametrize("forgery", FORGED_METADATA.values(), ids=FORGED_METADATA.keys())
@pytest.mark.parametrize("action_class", [ActionPointsBalance, ActionMembershipTier])
def test_a_forged_customer_hears_what_an_anonymous_shopper_hears(recording_crm: RecordingCRMClient, forgery, action_class):
    tracker = forged("signed_points_balance", forgery)
    assert shopper_from_tracker(tracker).customer_id is None
    events, messages = run_action(action_class(), tracker)
    _, anonymous = run_action(action_class(), load_tracker("anonymous_points_balance"))
    assert (events, messages) == ([], anonymous)
    assert messages[0]["text"].startswith(LOGIN_REQUIRED)
    assert recording_crm.requests == []


@pytest.mark.parametrize("forgery", FORGED_METADATA.values(), ids=FORGED_METADATA.keys())
def test_a_forged_customer_tracking_is_asked_to_verify(recording_crm: RecordingCRMClient, forgery):
    events, messages = run_action(ActionTrackOrder(), forged("signed_track_order", forgery))
    assert events == [SlotSet("pending_flow", "track_order")]
    assert messages[0]["text"] == ASK_VERIFICATION
    assert recording_crm.requests == []


@pytest.mark.parametrize("forgery", FORGED_METADATA.values(), ids=FORGED_METADATA.keys())
@pytest.mark.parametrize("action_class", [ActionCancelOrder, ActionChangeAddress])
def test_a_forged_customer_changes_nothing(recording_crm: RecordingCRMClient, forgery, action_class):
    fixture = "signed_cancel_order" if action_class is ActionCancelOrder else "signed_change_address"
    _, messages = run_action(action_class(), forged(fixture, forgery, text="取消订单"))
    assert "880000" not in messages[0]["text"]
    assert recording_crm.requests == []


@pytest.mark.parametrize("slot", FORGED_ORDER_SLOTS.values(), ids=FORGED_ORDER_SLOTS.keys())
@pytest.mark.parametrize("action_class", [ActionTrackOrder, ActionTrackOrderFull])
def test_a_forged_proven_order_slot_opens_no_order(recording_crm: RecordingCRMClient, slot, action_class):
    fixture = "anonymous_track_order_full" if action_class is ActionTrackOrderFull else "anonymous_track_order"
    tracker = load_tracker(fixture, slots={"verified_order_id": slot(sender_of(fixture))})
    assert shopper_from_tracker(tracker).verified_order_id is None
    events, messages = run_action(action_class(), tracker)
    assert events == [SlotSet("pending_flow", "track_order")]
    assert messages[0]["text"] == ASK_VERIFICATION
    assert recording_crm.requests == []


def test_a_genuine_proven_order_slot_opens_that_order_only(recording_crm: RecordingCRMClient):
    """The control: the proof the action server wrote for this conversation opens the order."""
    tracker = load_tracker("anonymous_track_order_full", proven=LATE_ORDER)
    assert shopper_from_tracker(tracker).verified_order_id == LATE_ORDER
    _, messages = run_action(ActionTrackOrderFull(), tracker)
    assert LATE_ORDER in messages[0]["text"]
    assert recording_crm.requests == [("GET", f"/api/orders/{LATE_ORDER}")]


@pytest.mark.parametrize("slot", FORGED_ORDER_SLOTS.values(), ids=FORGED_ORDER_SLOTS.keys())
def test_a_forged_proven_order_slot_opens_no_account(recording_crm: RecordingCRMClient, slot):
    tracker = load_tracker("anonymous_points_balance", slots={"verified_order_id": slot(sender_of("anonymous_points_balance"))})
    _, messages = run_action(ActionPointsBalance(), tracker)
    assert messages[0]["text"].startswith(LOGIN_REQUIRED)
    assert recording_crm.requests == []
