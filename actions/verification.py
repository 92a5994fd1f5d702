"""Verification of an anonymous shopper by order number + last four digits of the order's phone:
the one rule every flow that shows one order uses (tracking, returns, refund status).

The pair is collected over one or two turns in the ``order_id`` and ``phone_last4`` slots. Before
the CRM is asked, the attempt is counted in Redis on the order and on the conversation
(:mod:`actions.throttle`): an order or a conversation with too many recent failures is refused
without asking the CRM, right tail or wrong, and told when to retry; a Redis that cannot count
refuses too. A wrong pair gets the same answer whether the order exists or not, and the
conversation's second failure in a row offers a human instead of another try. A proven order is
remembered in ``verified_order_id`` with its proof (:func:`actions.shopper.proven_order_slot`).

A proven order may be looked at, never changed: cancelling and changing the address need a
signed-in shopper (:mod:`actions.order_changes`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from actions import formatting
from actions.crm import CRMClient
from actions.replies import human_buttons
from actions.shopper import proven_order_slot, shopper_from_tracker
from actions.throttle import ORDER, Attempt, ThrottleUnavailable, default_policy, get_throttle
from bot.texts import render

logger = logging.getLogger(__name__)

FAILED_ATTEMPTS_SLOT = "failed_attempts"

# The texts are responses in data/responses/orders.yml.
ASK_PHONE_TAIL = render("utter_verify_ask_phone_tail", order_id="{order_id}")
"""The request for the phone tail, with ``{order_id}`` left for ``str.format``."""
VERIFICATION_UNAVAILABLE = render("utter_verify_unavailable")


@dataclass(frozen=True)
class VerificationStep:
    """The outcome of one verification turn.

    Attributes:
        order_id: the order the shopper has proven (now or earlier); None while not proven.
        text: what to say when the order is not proven yet.
        buttons: buttons for that reply.
        events: slot events to return.
        locked: True when the shopper may not try again now and was offered a human instead.
    """

    order_id: Optional[str] = None
    text: Optional[str] = None
    buttons: List[Dict[str, str]] = field(default_factory=list)
    events: List[EventType] = field(default_factory=list)
    locked: bool = False


def _entity(tracker: Tracker, name: str) -> Optional[str]:
    value = next(tracker.get_latest_entity_values(name), None)
    return str(value) if value else None


def throttle_clients(tracker: Tracker) -> List[str]:
    """Who an attempt is counted on besides the order: the conversation, and its signed customer."""
    clients = [f"sender:{tracker.sender_id}"]
    customer_id = shopper_from_tracker(tracker).customer_id
    if customer_id:
        clients.append(f"customer:{customer_id}")
    return clients


def refusal_text(attempt: Attempt, order_id: str, now: Optional[datetime] = None) -> str:
    """What a shopper refused by the throttle is told, with when they may retry (shop time)."""
    tz = formatting.shop_timezone()
    retry = attempt.retry_time(tz)
    current = now or datetime.now(tz)
    retry_at = formatting.when(retry, current) if retry is not None else render("utter_verify_retry_soon")
    response = "utter_verify_order_throttled" if attempt.refused_by == ORDER else "utter_verify_client_throttled"
    return render(response, order_id=order_id, retry_at=retry_at)


def _refused(text: str) -> VerificationStep:
    return VerificationStep(text=text, buttons=human_buttons(), locked=True,
                            events=[SlotSet("order_id", None), SlotSet("phone_last4", None)])


async def verify_anonymous_order(tracker: Tracker, crm: CRMClient, ask_text: str) -> VerificationStep:
    """Advance the verification of an anonymous shopper by one turn.

    Args:
        tracker: the conversation.
        crm: the CRM client.
        ask_text: the request for order number and phone tail when neither was given yet.

    Returns:
        The proven order id, or what to say instead.

    Raises:
        CRMUnavailable: the CRM could not answer.
    """
    verified = shopper_from_tracker(tracker).verified_order_id
    order_id = _entity(tracker, "order_id") or tracker.get_slot("order_id")
    phone_last4 = _entity(tracker, "phone_last4") or tracker.get_slot("phone_last4")
    if verified and order_id in (None, verified):
        return VerificationStep(order_id=verified)
    if not order_id and not phone_last4:
        return VerificationStep(text=ask_text)
    if not phone_last4:
        return VerificationStep(text=ASK_PHONE_TAIL.format(order_id=order_id), events=[SlotSet("order_id", order_id)])
    if not order_id:
        return VerificationStep(text=render("utter_verify_ask_order_id"), events=[SlotSet("phone_last4", phone_last4)])

    throttle = get_throttle()
    try:
        attempt = await throttle.reserve(order_id, throttle_clients(tracker))
    except ThrottleUnavailable as error:
        logger.warning("verification.throttle.unavailable sender=%s error=%s", tracker.sender_id, error)
        return _refused(VERIFICATION_UNAVAILABLE)
    if not attempt.allowed:
        logger.info("verification.throttled sender=%s by=%s", tracker.sender_id, attempt.refused_by)
        return _refused(refusal_text(attempt, order_id))
    try:
        owner = await crm.verify_order(order_id, phone_last4)
    except BaseException:
        await throttle.release(attempt)
        raise
    if owner is None:
        failures = int(tracker.get_slot(FAILED_ATTEMPTS_SLOT) or 0) + 1
        reset: List[EventType] = [
            SlotSet("order_id", None),
            SlotSet("phone_last4", None),
            SlotSet(FAILED_ATTEMPTS_SLOT, float(failures)),
        ]
        if failures >= default_policy().failures_before_human:
            return VerificationStep(
                text=render("utter_verify_locked", count=failures), buttons=human_buttons(), events=reset, locked=True
            )
        return VerificationStep(text=render("utter_verify_failed"), events=reset)
    await throttle.release(attempt)
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
