"""Verification of an anonymous shopper by order number + last four digits of the order's phone,
for any flow that acts on one order.

It follows the same rules as order tracking (:mod:`actions.orders`): the pair is collected over one
or two turns in the ``order_id`` and ``phone_last4`` slots, a wrong pair gets the same answer
whether the order exists or not, and the second failure in a row offers a human instead of
another try. A proven order is remembered in ``verified_order_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from actions.crm import CRMClient
from actions.orders import (
    ASK_ORDER_ID,
    ASK_PHONE_TAIL,
    FAILED_ATTEMPTS_SLOT,
    MAX_FAILED_ATTEMPTS,
    VERIFICATION_FAILED,
    VERIFICATION_LOCKED,
)
from actions.replies import human_buttons
from actions.shopper import proven_order_slot, shopper_from_tracker


@dataclass(frozen=True)
class VerificationStep:
    """The outcome of one verification turn.

    Attributes:
        order_id: the order the shopper has proven (now or earlier); None while not proven.
        text: what to say when the order is not proven yet.
        buttons: buttons for that reply.
        events: slot events to return.
        locked: True when the shopper failed too often and was offered a human instead.
    """

    order_id: Optional[str] = None
    text: Optional[str] = None
    buttons: List[Dict[str, str]] = field(default_factory=list)
    events: List[EventType] = field(default_factory=list)
    locked: bool = False


def _entity(tracker: Tracker, name: str) -> Optional[str]:
    value = next(tracker.get_latest_entity_values(name), None)
    return str(value) if value else None


async def verify_anonymous_order(tracker: Tracker, crm: CRMClient, ask_text: str) -> VerificationStep:
    """Advance the verification of an anonymous shopper by one turn.

    Args:
        tracker: the conversation.
        crm: the CRM client.
        ask_text: the request for order number and phone tail when neither was given yet.

    Returns:
        The proven order id, or what to ask next.

    Raises:
        CRMUnavailable: the CRM could not answer.
    """
    verified = shopper_from_tracker(tracker).verified_order_id
    order_id = _entity(tracker, "order_id") or tracker.get_slot("order_id")
    phone_last4 = _entity(tracker, "phone_last4") or tracker.get_slot("phone_last4")
    if isinstance(verified, str) and verified and order_id in (None, verified):
        return VerificationStep(order_id=verified)
    if not order_id and not phone_last4:
        return VerificationStep(text=ask_text)
    if not phone_last4:
        return VerificationStep(text=ASK_PHONE_TAIL.format(order_id=order_id), events=[SlotSet("order_id", order_id)])
    if not order_id:
        return VerificationStep(text=ASK_ORDER_ID, events=[SlotSet("phone_last4", phone_last4)])

    owner = await crm.verify_order(order_id, phone_last4)
    if owner is None:
        failures = int(tracker.get_slot(FAILED_ATTEMPTS_SLOT) or 0) + 1
        reset: List[EventType] = [
            SlotSet("order_id", None),
            SlotSet("phone_last4", None),
            SlotSet(FAILED_ATTEMPTS_SLOT, float(failures)),
        ]
        if failures >= MAX_FAILED_ATTEMPTS:
            return VerificationStep(
                text=VERIFICATION_LOCKED.format(count=failures), buttons=human_buttons(), events=reset, locked=True
            )
        return VerificationStep(text=VERIFICATION_FAILED, events=reset)
    return VerificationStep(
        order_id=order_id,
        events=[
            proven_order_slot(tracker, order_id),
            SlotSet(FAILED_ATTEMPTS_SLOT, 0.0),
            SlotSet("order_id", order_id),
            SlotSet("phone_last4", None),
        ],
    )


def verification_reply(step: VerificationStep) -> Dict[str, Any]:
    """The message for a step that did not prove an order."""
    return {"text": step.text or "", "buttons": list(step.buttons)}
