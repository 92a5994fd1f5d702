"""Order actions: tracking (with verification of anonymous shoppers), late orders, the full track."""

from __future__ import annotations

import asyncio
import logging
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.crm import CRMError, CRMNotFound, CRMRequestError, CRMUnavailable, Written, get_crm_client
from actions.delivery_policy import Compensation, compensation_for, compensation_key, default_policy, urge_answer_due
from actions.handoff import handoff_context
from actions.order_tracking import (
    COMPENSATION,
    IN_FLIGHT,
    URGE,
    LateHandling,
    choose_order,
    days_overdue,
    describe_full_track,
    describe_late_handling,
    describe_order,
    full_track_button,
    is_late,
    order_button,
    track_events,
)
from actions.replies import CRM_UNAVAILABLE, human_buttons
from actions.shopper import Shopper, shopper_from_tracker
from actions.verification import verification_reply, verify_anonymous_order
from bot.settings import get_settings
from bot.texts import render
from handoff import carrier_urges
from handoff.context import REDIS_FAILURES
from handoff.policy import PolicyError, ServicePolicy
from handoff.policy import load_policy as load_service_policy

logger = logging.getLogger(__name__)

PENDING_FLOW_SLOT = "pending_flow"

# The texts are responses in data/responses/orders.yml.
ASK_VERIFICATION = render("utter_order_ask_verification")
NOT_YOUR_ORDER = render("utter_order_not_your_order", order_id="{order_id}")
"""The reply about an order number not in the shopper's account, with ``{order_id}`` left for ``str.format``."""

Order = Dict[str, Any]


def service_hours() -> Optional[ServicePolicy]:
    """The human service policy whose opening hours the urge's answer time counts (None if unreadable)."""
    try:
        return load_service_policy(get_settings().handoff_policy_file)
    except PolicyError:
        logger.warning("human service policy unreadable; urges are answered within clock minutes", exc_info=True)
        return None


def now_in_shop() -> datetime:
    """The current time in the shop's timezone."""
    return datetime.now(formatting.shop_timezone())


async def _file_urge(order: Order, now: datetime) -> Written:
    due = urge_answer_due(default_policy(), now, service_hours())
    return await get_crm_client().urge_order(order["order_id"], due)


async def _grant_compensation(order: Order, today: date) -> Tuple[Optional[Written], Optional[Compensation], str]:
    """Grant what the policy allows, once per order; the grant (new or earlier), the rule and the tier name."""
    crm = get_crm_client()
    customer = await crm.get_customer(order["customer_id"])
    compensation = compensation_for(default_policy(), days_overdue(order, today), customer.get("tier"))
    tier_name = str(customer.get("tier_name") or "")
    if compensation is None:
        return None, None, tier_name
    try:
        written = await crm.grant_late_compensation(order["order_id"], compensation.points, compensation_key(order["order_id"]))
    except CRMRequestError as error:
        if (error.status, error.code) != (409, "conflict"):
            raise
        earlier = await crm.get_late_compensation(order["order_id"])
        if earlier is None:
            raise
        written = Written(earlier, created=False)
    return written, compensation, tier_name


async def handle_late_order(order: Order, now: datetime, may_compensate: bool) -> LateHandling:
    """Urge the carrier and grant the compensation the policy allows (only to a verified shopper).

    What the CRM cannot do is listed in ``failed``, so the shopper still hears the status and is
    offered a human for the rest.
    """
    async def nothing() -> Tuple[Optional[Written], Optional[Compensation], str]:
        return None, None, ""

    compensating = _grant_compensation(order, now.date()) if may_compensate else nothing()
    urge, grant = await asyncio.gather(_file_urge(order, now), compensating, return_exceptions=True)
    failed: List[str] = []
    for part, outcome in ((URGE, urge), (COMPENSATION, grant)):
        if isinstance(outcome, CRMError):
            logger.warning("late order %s: %s failed: %s", order["order_id"], part, outcome)
            failed.append(part)
        elif isinstance(outcome, BaseException):
            raise outcome
    handling = LateHandling(failed=tuple(failed))
    if isinstance(urge, Written):
        handling = replace(handling, urge=urge.record, urge_created=urge.created)
    written, compensation, tier_name = grant if isinstance(grant, tuple) else (None, None, "")
    if written is not None:
        handling = replace(
            handling,
            grant=written.record,
            grant_created=written.created,
            compensation=compensation if written.created else None,
            tier_name=tier_name,
        )
    return handling


LATE_REASON = "policy_undecided"
"""Handoff reason when a shopper takes a late order to a human: whether what the policy offered is enough is theirs to say."""


async def keep_urge_promise(urge: Order, sender: str, shopper: Shopper) -> bool:
    """Record the promise of the urge's answer as a carrier-urge ticket, so its answer (or an apology
    at the due time) reaches this conversation (:mod:`handoff.carrier_urges`); True when it is
    recorded (now or before). Redis down: the shopper still has the answer time and the offer of a
    human, but is not told the answer comes here; the miss is logged."""
    try:
        await carrier_urges.promise(handoff_context(), urge, sender, shopper.customer_id)
    except REDIS_FAILURES as error:
        logger.warning("urge %s of order %s: promise not recorded: %s", urge.get("urge_id"), urge.get("order_id"), type(error).__name__)
        return False
    return True


async def utter_order(dispatcher: CollectingDispatcher, order: Order, shopper: Shopper, sender: str = "") -> None:
    """Tell one order's status with the full-track button; a late order is urged and compensated, with a human offered.

    The urge's answer time told in conversation ``sender`` is recorded as a carrier-urge ticket.
    """
    now = now_in_shop()
    text = describe_order(order, now.date())
    buttons = [full_track_button(order)] if track_events(order) else []
    if is_late(order, now.date()):
        handling = await handle_late_order(order, now, may_compensate=shopper.may_see(order))
        if handling.urge is not None and sender:
            handling = replace(handling, relayed=await keep_urge_promise(handling.urge, sender, shopper))
        text += "\n" + describe_late_handling(handling, now)
        buttons += human_buttons(LATE_REASON)
    dispatcher.utter_message(text=text, buttons=buttons)


def utter_full_track(dispatcher: CollectingDispatcher, order: Order) -> None:
    """Tell every scan of one order's parcel; a late order keeps the offer of a human."""
    buttons = human_buttons(LATE_REASON) if is_late(order, formatting.today_in_shop()) else []
    dispatcher.utter_message(text=describe_full_track(order), buttons=buttons)


def _latest_entity(tracker: Tracker, entity: str) -> Optional[str]:
    value = next(tracker.get_latest_entity_values(entity), None)
    return str(value) if value else None


async def _orders_to_track(customer_id: str, tracking_number: Optional[str]) -> List[Order]:
    """The orders :func:`choose_order` needs, with as little read from the CRM as possible.

    A tracking number may belong to any recent order; otherwise only the orders in flight matter,
    or, when none is, the most recent one.
    """
    crm = get_crm_client()
    if tracking_number:
        return await crm.list_orders(customer_id)
    in_flight = await crm.list_orders(customer_id, statuses=IN_FLIGHT)
    return in_flight or await crm.list_orders(customer_id, limit=1)


async def _owned_order(order_id: str, customer_id: str) -> Optional[Order]:
    """The order when it exists and belongs to ``customer_id``; None otherwise (the same either way)."""
    try:
        order = await get_crm_client().get_order(order_id)
    except CRMNotFound:
        return None
    return order if order.get("customer_id") == customer_id else None


@dataclass
class Lookup:
    """Which of a signed customer's orders a question is about.

    Attributes:
        order: the one order to answer about.
        candidates: orders to choose from (several in flight).
        refusal: what to say when there is no order to show.
    """

    order: Optional[Order] = None
    candidates: List[Order] = field(default_factory=list)
    refusal: str = ""


async def lookup_customer_order(tracker: Tracker, customer_id: str, remembered: bool = False) -> Lookup:
    """The order a signed customer means: the order number they gave (if theirs), the one the
    conversation was about (when ``remembered``), the one matching a tracking number, the only one
    in flight, or several to choose from."""
    order_id = _latest_entity(tracker, "order_id")
    if order_id:
        order = await _owned_order(order_id, customer_id)
        return Lookup(order=order) if order else Lookup(refusal=NOT_YOUR_ORDER.format(order_id=order_id))
    slot = tracker.get_slot("order_id")
    if remembered and isinstance(slot, str) and slot:
        order = await _owned_order(slot, customer_id)
        if order is not None:
            return Lookup(order=order)
    tracking_number = _latest_entity(tracker, "tracking_number")
    choice = choose_order(await _orders_to_track(customer_id, tracking_number), tracking_number)
    if choice.order is not None or choice.candidates:
        return Lookup(order=choice.order, candidates=choice.candidates)
    if tracking_number:
        return Lookup(refusal=render("utter_order_no_tracking_match", tracking_number=tracking_number))
    return Lookup(refusal=render("utter_order_no_orders"))


class OrderAnswerAction(Action, metaclass=ABCMeta):
    """An answer about one order with tracking's ownership checks: a signed customer's own orders
    (choosing among several in flight), or the one order an anonymous shopper proved with its
    phone tail, verifying them first."""

    remembers_order = False
    """Whether a question naming no order is about the order the conversation is about."""
    choose_response = "utter_order_choose"
    """The question which of several orders in flight (a response with ``{count}``)."""

    @abstractmethod
    async def answer(self, dispatcher: CollectingDispatcher, order: Order, shopper: Shopper, sender: str) -> None:
        """Tell the shopper in conversation ``sender`` about ``order``, which they may see."""

    def choice_button(self, order: Order) -> Dict[str, str]:
        """The button that picks ``order`` among several in flight."""
        return order_button(order)

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Answer for a verified customer, or verify an anonymous shopper first."""
        shopper = shopper_from_tracker(tracker)
        try:
            if shopper.is_verified_customer:
                return await self._for_customer(dispatcher, tracker, shopper)
            return await self._for_anonymous(dispatcher, tracker)
        except CRMUnavailable:
            dispatcher.utter_message(text=CRM_UNAVAILABLE, buttons=human_buttons())
            return [SlotSet(PENDING_FLOW_SLOT, None)]

    async def _for_customer(self, dispatcher: CollectingDispatcher, tracker: Tracker, shopper: Shopper) -> List[EventType]:
        lookup = await lookup_customer_order(tracker, shopper.customer_id or "", remembered=self.remembers_order)
        if lookup.order is not None:
            await self.answer(dispatcher, lookup.order, shopper, tracker.sender_id)
            return [SlotSet(PENDING_FLOW_SLOT, None), SlotSet("order_id", lookup.order["order_id"])]
        if lookup.candidates:
            dispatcher.utter_message(
                text=render(self.choose_response, count=len(lookup.candidates)),
                buttons=[self.choice_button(order) for order in lookup.candidates],
            )
        else:
            dispatcher.utter_message(text=lookup.refusal)
        return [SlotSet(PENDING_FLOW_SLOT, None)]

    async def _for_anonymous(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        """Answer about the order the shopper proved, or take the verification one step further."""
        step = await verify_anonymous_order(tracker, get_crm_client(), ASK_VERIFICATION)
        if step.order_id is None:
            dispatcher.utter_message(**verification_reply(step))
            return [*step.events, SlotSet(PENDING_FLOW_SLOT, None if step.locked else "track_order")]
        order = await get_crm_client().get_order(step.order_id)
        await self.answer(dispatcher, order, Shopper(verified_order_id=step.order_id), tracker.sender_id)
        return [*step.events, SlotSet(PENDING_FLOW_SLOT, None)]


class ActionTrackOrder(OrderAnswerAction):
    """Tells the shopper where their order is, straight from the CRM; a late order is urged and compensated."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_track_order"

    async def answer(self, dispatcher: CollectingDispatcher, order: Order, shopper: Shopper, sender: str) -> None:
        """The order's status, with the full-track button."""
        await utter_order(dispatcher, order, shopper, sender)


class ActionTrackOrderFull(OrderAnswerAction):
    """Tells every scan of an order's parcel, oldest first, with the same ownership checks as tracking."""

    remembers_order = True
    choose_response = "utter_order_choose_full_track"

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_track_order_full"

    async def answer(self, dispatcher: CollectingDispatcher, order: Order, shopper: Shopper, sender: str) -> None:
        """Every scan of the order's parcel."""
        utter_full_track(dispatcher, order)

    def choice_button(self, order: Order) -> Dict[str, str]:
        """The order's button, asking for its full track."""
        return {**order_button(order), "payload": full_track_button(order)["payload"]}
