"""Order actions: tracking, with verification of anonymous shoppers."""

from __future__ import annotations

from datetime import date
from typing import Any, Dict, List, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.crm import CRMNotFound, CRMUnavailable, get_crm_client
from actions.order_tracking import IN_FLIGHT, choose_order, describe_order, is_late, order_button
from actions.replies import CRM_UNAVAILABLE, human_buttons
from actions.shopper import VERIFIED_ORDER_SLOT, shopper_from_tracker

PENDING_FLOW_SLOT = "pending_flow"
FAILED_ATTEMPTS_SLOT = "failed_attempts"
MAX_FAILED_ATTEMPTS = 2

ASK_VERIFICATION = (
    "为了保护您的隐私，查询订单前需要核实一下身份：请告诉我订单号（12 位数字）和收货手机号的后四位，"
    "例如“202611150023 尾号5678”。您在商城登录后再来问我，就不用核实了。"
)
ASK_PHONE_TAIL = "好的，订单号 {order_id} 已收到。请再告诉我这个订单收货手机号的后四位。"
ASK_ORDER_ID = "好的，请再告诉我订单号（12 位数字，可在“我的订单”里找到）。"
VERIFICATION_FAILED = "抱歉，订单号和手机尾号没能对上，请核对后重新发送。"
VERIFICATION_LOCKED = (
    "订单号和手机尾号已连续 {count} 次没能对上。为了您的账户安全，建议您登录商城后再问我，"
    "或点“转人工”由人工客服协助核实。"
)
NOT_YOUR_ORDER = (
    "在您的账户下没有找到订单 {order_id}，请核对订单号。"
    "如果是用其他账号下的单，请登录那个账号后再问我。"
)
NO_TRACKING_MATCH = "在您的账户下没有找到运单号 {tracking_number} 对应的订单，请核对运单号。"
NO_ORDERS = "您的账户下还没有订单。有其他问题也可以随时问我。"
CHOOSE_ORDER = "您有 {count} 个订单正在配送中，想查哪一个？"


def utter_order(dispatcher: CollectingDispatcher, order: Dict[str, Any], today: date) -> None:
    """Tell one order's status; a late order comes with the offer of a human."""
    buttons = human_buttons() if is_late(order, today) else []
    dispatcher.utter_message(text=describe_order(order, today), buttons=buttons)


def _latest_entity(tracker: Tracker, entity: str) -> Optional[str]:
    value = next(tracker.get_latest_entity_values(entity), None)
    return str(value) if value else None


async def _orders_to_track(customer_id: str, tracking_number: Optional[str]) -> List[Dict[str, Any]]:
    """The orders :func:`choose_order` needs, with as little read from the CRM as possible.

    A tracking number may belong to any recent order; otherwise only the orders in flight matter,
    or, when none is, the most recent one.
    """
    crm = get_crm_client()
    if tracking_number:
        return await crm.list_orders(customer_id)
    in_flight = await crm.list_orders(customer_id, statuses=IN_FLIGHT)
    return in_flight or await crm.list_orders(customer_id, limit=1)


class ActionTrackOrder(Action):
    """Tells the shopper where their order is, straight from the CRM."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_track_order"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Answer for a verified customer, or verify an anonymous shopper first."""
        shopper = shopper_from_tracker(tracker)
        try:
            if shopper.is_verified_customer:
                return await self._track_for_customer(dispatcher, tracker, shopper.customer_id or "")
            return await self._track_for_anonymous(dispatcher, tracker, shopper.verified_order_id)
        except CRMUnavailable:
            dispatcher.utter_message(text=CRM_UNAVAILABLE, buttons=human_buttons())
            return [SlotSet(PENDING_FLOW_SLOT, None)]

    async def _track_for_customer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str
    ) -> List[EventType]:
        crm = get_crm_client()
        today = formatting.today_in_shop()
        order_id = _latest_entity(tracker, "order_id")
        if order_id:
            try:
                order = await crm.get_order(order_id)
            except CRMNotFound:
                order = None
            if order is None or order.get("customer_id") != customer_id:
                dispatcher.utter_message(text=NOT_YOUR_ORDER.format(order_id=order_id))
                return [SlotSet(PENDING_FLOW_SLOT, None)]
            utter_order(dispatcher, order, today)
            return [SlotSet(PENDING_FLOW_SLOT, None), SlotSet("order_id", order_id)]

        tracking_number = _latest_entity(tracker, "tracking_number")
        choice = choose_order(await _orders_to_track(customer_id, tracking_number), tracking_number)
        if choice.order is not None:
            utter_order(dispatcher, choice.order, today)
            return [SlotSet(PENDING_FLOW_SLOT, None), SlotSet("order_id", choice.order["order_id"])]
        if choice.candidates:
            dispatcher.utter_message(
                text=CHOOSE_ORDER.format(count=len(choice.candidates)),
                buttons=[order_button(order) for order in choice.candidates],
            )
            return [SlotSet(PENDING_FLOW_SLOT, None)]
        if tracking_number:
            dispatcher.utter_message(text=NO_TRACKING_MATCH.format(tracking_number=tracking_number))
        else:
            dispatcher.utter_message(text=NO_ORDERS)
        return [SlotSet(PENDING_FLOW_SLOT, None)]

    async def _track_for_anonymous(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, verified_order_id: Optional[str]
    ) -> List[EventType]:
        order_id = _latest_entity(tracker, "order_id") or tracker.get_slot("order_id")
        phone_last4 = _latest_entity(tracker, "phone_last4") or tracker.get_slot("phone_last4")
        if verified_order_id and order_id in (None, verified_order_id):
            order = await get_crm_client().get_order(verified_order_id)
            utter_order(dispatcher, order, formatting.today_in_shop())
            return [SlotSet(PENDING_FLOW_SLOT, None)]
        if not order_id and not phone_last4:
            dispatcher.utter_message(text=ASK_VERIFICATION)
            return [SlotSet(PENDING_FLOW_SLOT, "track_order")]
        if not phone_last4:
            dispatcher.utter_message(text=ASK_PHONE_TAIL.format(order_id=order_id))
            return [SlotSet(PENDING_FLOW_SLOT, "track_order"), SlotSet("order_id", order_id)]
        if not order_id:
            dispatcher.utter_message(text=ASK_ORDER_ID)
            return [SlotSet(PENDING_FLOW_SLOT, "track_order"), SlotSet("phone_last4", phone_last4)]

        owner = await get_crm_client().verify_order(order_id, phone_last4)
        if owner is None:
            failures = int(tracker.get_slot(FAILED_ATTEMPTS_SLOT) or 0) + 1
            reset = [SlotSet("order_id", None), SlotSet("phone_last4", None), SlotSet(FAILED_ATTEMPTS_SLOT, float(failures))]
            if failures >= MAX_FAILED_ATTEMPTS:
                dispatcher.utter_message(text=VERIFICATION_LOCKED.format(count=failures), buttons=human_buttons())
                return reset + [SlotSet(PENDING_FLOW_SLOT, None)]
            dispatcher.utter_message(text=VERIFICATION_FAILED)
            return reset + [SlotSet(PENDING_FLOW_SLOT, "track_order")]

        order = await get_crm_client().get_order(order_id)
        utter_order(dispatcher, order, formatting.today_in_shop())
        return [
            SlotSet(VERIFIED_ORDER_SLOT, order_id),
            SlotSet(FAILED_ATTEMPTS_SLOT, 0.0),
            SlotSet(PENDING_FLOW_SLOT, None),
            SlotSet("order_id", order_id),
            SlotSet("phone_last4", None),
        ]
