"""Order change actions: cancelling an order and changing its receiver, through the CRM.

Each flow goes: which order (buttons when several could be meant) → whether the policy allows it in
the order's state (and what to do instead when it does not) → the new receiver (address change
only) → a confirmation → the CRM → the result with its facts. Only a signed-in customer changes an
order, and only their own: an anonymous shopper (even one who proved an order with its phone tail,
which lets them look at it) is asked to log in to the shop's app or site, or offered a human, and
nothing is changed. The words are responses in ``data/responses/order_changes.yml``.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.conversation import (
    ANSWER_INTENTS,
    FLOW_STEP_SLOT,
    RESUME_PREFIX,
    SILENT_END_INTENTS,
    STOP_INTENTS,
    current_step,
    end_flow_events,
    flow_events,
    invalid_answer_reply,
    invalid_answers,
    last_bot_action,
    latest_entity,
    latest_intent,
    latest_text,
    with_closing,
)
from actions.crm import CRMNotFound, CRMRequestError, CRMUnavailable, get_crm_client
from actions.order_change_rules import (
    ReceiverDraft,
    address_changed_text,
    address_refusal,
    ask_receiver_text,
    can_cancel,
    can_change_address,
    cancel_refusal,
    cancelled_text,
    confirm_address_text,
    confirm_cancel_text,
    open_orders,
    order_choice_button,
    parse_receiver,
    refusal_offers_human,
    wants_another_order,
)
from actions.orders import NOT_YOUR_ORDER
from actions.replies import CRM_UNAVAILABLE, human_buttons
from actions.shopper import Shopper, shopper_from_tracker
from bot.texts import render

CANCEL_FLOW = "cancel_order"
ADDRESS_FLOW = "change_address"
CHOOSE = "choose"
DETAILS = "details"
CONFIRM = "confirm"
CONFIRM_RETRY = "confirm_retry"
CHANGE_ORDER_SLOT = "change_order_id"
NAME_SLOT = "new_receiver_name"
PHONE_SLOT = "new_receiver_phone"
ADDRESS_SLOT = "new_address"
RECEIVER_SLOTS = (NAME_SLOT, PHONE_SLOT, ADDRESS_SLOT)

Order = Dict[str, Any]
Resolved = Tuple[Order, List[EventType], bool]


@dataclass(frozen=True)
class FlowTexts:
    """What one order-change flow says at each step: the responses ``utter_<flow>_<step>``.

    Attributes:
        flow: the flow's name in its responses (``cancel``, ``address``).
    """

    flow: str

    def say(self, step: str, **values: Any) -> str:
        """The flow's response for ``step`` filled with ``values``."""
        return render(f"utter_{self.flow}_{step}", **values)

    @property
    def login_required(self) -> str:
        """The request to sign in (a proven order may only be looked at)."""
        return self.say("login_required")

    @property
    def confirm_buttons(self) -> Tuple[Dict[str, str], ...]:
        """The confirmation question's buttons: yes, no."""
        return ({"title": self.say("button_confirm"), "payload": "/affirm"},
                {"title": self.say("button_deny"), "payload": "/deny"})


CANCEL_TEXTS = FlowTexts("cancel")
ADDRESS_TEXTS = FlowTexts("address")

def _reply(dispatcher: CollectingDispatcher, text: str, buttons: Optional[List[Dict[str, str]]] = None) -> None:
    dispatcher.utter_message(text=text, buttons=list(buttons or []))


async def _order_or_none(order_id: str) -> Optional[Order]:
    try:
        return await get_crm_client().get_order(order_id)
    except CRMNotFound:
        return None


async def _owned_order(shopper: Shopper, order_id: Optional[str]) -> Optional[Order]:
    """The order when this shopper may see it; None otherwise (and for unknown orders)."""
    if not order_id:
        return None
    order = await _order_or_none(order_id)
    return order if order is not None and shopper.may_see(order) else None


class OrderChangeAction(Action, metaclass=ABCMeta):
    """The steps shared by cancelling an order and changing its address.

    Every turn sets ``pending_flow`` explicitly (the rules tell a continuing flow from an ended one
    by it), except when the CRM cannot answer in the middle of the flow, which keeps it open.
    """

    flow = ""
    texts = CANCEL_TEXTS
    working_slots: Tuple[str, ...] = (CHANGE_ORDER_SLOT,)

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Advance the flow by one turn."""
        shopper = shopper_from_tracker(tracker)
        intent = latest_intent(tracker)
        step = current_step(tracker, self.flow)
        if intent in SILENT_END_INTENTS:
            return self._end()
        correction = intent == "deny" and step in (DETAILS, CONFIRM, CONFIRM_RETRY) and wants_another_order(latest_text(tracker))
        if step is not None and (intent in STOP_INTENTS or (intent == "deny" and not correction)):
            return self._stop(dispatcher, step)
        if not shopper.is_verified_customer:
            _reply(dispatcher, self.texts.login_required, human_buttons())
            return self._end()
        try:
            if step in (CONFIRM, CONFIRM_RETRY) and intent == "affirm" and last_bot_action(tracker) == self.name():
                order = await _owned_order(shopper, tracker.get_slot(CHANGE_ORDER_SLOT))
                if order is not None:
                    return await self.execute(dispatcher, tracker, order)
            resolved = await self._resolve(dispatcher, tracker, shopper, step, intent)
            if isinstance(resolved, list):
                return resolved
            order, events, switched = resolved
            return events + self.proceed(dispatcher, tracker, order, None if switched else step, intent)
        except CRMUnavailable:
            _reply(dispatcher, CRM_UNAVAILABLE, human_buttons())
            return [] if step else self._end()

    # --------------------------------------------------------------------- hooks per flow
    @abstractmethod
    def proceed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order, step: Optional[str], intent: str
    ) -> List[EventType]:
        """Act on the order the shopper means (``step`` is None when it was just chosen)."""

    @abstractmethod
    async def execute(self, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order) -> List[EventType]:
        """Carry out the confirmed change in the CRM."""

    # ------------------------------------------------------------------------ shared steps
    def _end(self) -> List[EventType]:
        return end_flow_events(self.working_slots)

    def _stop(self, dispatcher: CollectingDispatcher, step: str) -> List[EventType]:
        if step == CONFIRM_RETRY:
            _reply(dispatcher, with_closing(render("utter_change_stopped_unconfirmed")), human_buttons())
        else:
            _reply(dispatcher, with_closing(self.texts.say("stopped")))
        return self._end()

    def _kind(self, intent: str) -> str:
        """``answer`` (to the open question), ``restart`` (the flow's own intent) or ``digression``."""
        if intent == self.flow:
            return "restart"
        return "answer" if intent in ANSWER_INTENTS else "digression"

    def _choose(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        candidates: List[Order],
        step: Optional[str],
        intent: str,
        text: Optional[str] = None,
    ) -> List[EventType]:
        text = text or self.texts.say("choose", count=len(candidates))
        buttons = [order_choice_button(order, self.flow) for order in candidates]
        if step == CHOOSE and self._kind(intent) == "answer":
            count = invalid_answers(tracker) + 1
            dispatcher.utter_message(**invalid_answer_reply(render("utter_change_which_order") + text, buttons, count))
            return flow_events(self.flow, CHOOSE, count)
        prefix = RESUME_PREFIX + "\n" if step is not None and self._kind(intent) == "digression" else ""
        _reply(dispatcher, prefix + text, buttons)
        return flow_events(self.flow, CHOOSE)

    async def _resolve(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, shopper: Shopper, step: Optional[str], intent: str
    ) -> Union[Resolved, List[EventType]]:
        """The signed customer's order they mean, or the reply already given (buttons, a refusal)."""
        crm = get_crm_client()
        customer_id = shopper.customer_id or ""
        current_id = tracker.get_slot(CHANGE_ORDER_SLOT) if step in (DETAILS, CONFIRM, CONFIRM_RETRY) else None
        named = latest_entity(tracker, "order_id")
        if named:
            order = await _owned_order(shopper, named)
            if order is not None:
                return order, [], named != current_id
            candidates = open_orders(await crm.list_orders(customer_id))
            text = NOT_YOUR_ORDER.format(order_id=named)
            if candidates:
                _reply(dispatcher, text, [order_choice_button(item, self.flow) for item in candidates])
                return flow_events(self.flow, CHOOSE)
            _reply(dispatcher, with_closing(text))
            return self._end()
        if current_id:
            if self._kind(intent) == "answer" and wants_another_order(latest_text(tracker)):
                others = [item for item in open_orders(await crm.list_orders(customer_id)) if item["order_id"] != current_id]
                if not others:
                    _reply(dispatcher, with_closing(render("utter_change_no_other_order")))
                    return self._end()
                return self._choose(dispatcher, tracker, others, None, intent, render("utter_change_choose_other"))
            order = await _owned_order(shopper, str(current_id))
            if order is not None:
                return order, [], False
        candidates = open_orders(await crm.list_orders(customer_id))
        if len(candidates) == 1 and step != CHOOSE:
            return candidates[0], [], True
        if candidates:
            return self._choose(dispatcher, tracker, candidates, step, intent)
        _reply(dispatcher, with_closing(self.texts.say("no_open_orders")))
        return self._end()

    def _refuse(self, dispatcher: CollectingDispatcher, order: Order, text: str) -> List[EventType]:
        buttons = human_buttons() if refusal_offers_human(order) else []
        _reply(dispatcher, with_closing(text), buttons)
        return self._end()

    def _reask_confirmation(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, text: str, step: str, intent: str
    ) -> List[EventType]:
        """The confirmation question again: after a digression, or after an answer it could not use."""
        buttons = list(self.texts.confirm_buttons)
        kind = self._kind(intent)
        if kind == "answer" and intent != "affirm":
            count = invalid_answers(tracker) + 1
            dispatcher.utter_message(**invalid_answer_reply(render("utter_change_confirm_or_not") + "\n" + text, buttons, count))
            return flow_events(self.flow, step, count)
        prefix = RESUME_PREFIX + "\n" if kind == "digression" else ""
        _reply(dispatcher, prefix + text, buttons)
        return flow_events(self.flow, step, invalid_answers(tracker))

    def _unconfirmed(self, dispatcher: CollectingDispatcher, order: Order) -> List[EventType]:
        _reply(dispatcher, self.texts.say("unconfirmed", order_id=order["order_id"]), [dict(self.texts.confirm_buttons[0])] + human_buttons())
        return flow_events(self.flow, CONFIRM_RETRY)


class ActionCancelOrder(OrderChangeAction):
    """Cancels an order that has not shipped, after a confirmation."""

    flow = CANCEL_FLOW
    texts = CANCEL_TEXTS
    working_slots = (CHANGE_ORDER_SLOT,)

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_cancel_order"

    def proceed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order, step: Optional[str], intent: str
    ) -> List[EventType]:
        """Refuse with the alternatives, or ask for confirmation."""
        if not can_cancel(order):
            return self._refuse(dispatcher, order, cancel_refusal(order))
        text = confirm_cancel_text(order, formatting.today_in_shop())
        if step in (CONFIRM, CONFIRM_RETRY):
            return self._reask_confirmation(dispatcher, tracker, text, step, intent)
        _reply(dispatcher, text, list(self.texts.confirm_buttons))
        return flow_events(self.flow, CONFIRM) + [SlotSet(CHANGE_ORDER_SLOT, order["order_id"])]

    async def execute(self, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order) -> List[EventType]:
        """Cancel in the CRM; a refusal re-reads the order to explain it."""
        crm = get_crm_client()
        today = formatting.today_in_shop()
        if not can_cancel(order):
            if order.get("status") == "cancelled" and tracker.get_slot(FLOW_STEP_SLOT) == CONFIRM_RETRY:
                _reply(dispatcher, with_closing(cancelled_text(order, today)))
                return self._end()
            return self._refuse(dispatcher, order, cancel_refusal(order))
        try:
            cancelled = await crm.cancel_order(order["order_id"])
        except CRMUnavailable:
            return self._unconfirmed(dispatcher, order)
        except CRMRequestError as error:
            if error.status != 409:
                _reply(dispatcher, with_closing(render("utter_change_failed")), human_buttons())
                return self._end()
            fresh = await crm.get_order(order["order_id"])
            if fresh.get("status") == "cancelled":
                _reply(dispatcher, with_closing(cancelled_text(fresh, today)))
                return self._end()
            return self._refuse(dispatcher, fresh, cancel_refusal(fresh))
        _reply(dispatcher, with_closing(cancelled_text(cancelled, today)))
        return self._end()


class ActionChangeAddress(OrderChangeAction):
    """Changes the receiver (name, phone, address) of an order that has not shipped."""

    flow = ADDRESS_FLOW
    texts = ADDRESS_TEXTS
    working_slots = (CHANGE_ORDER_SLOT, *RECEIVER_SLOTS)

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_change_address"

    @staticmethod
    def _draft(tracker: Tracker) -> ReceiverDraft:
        return ReceiverDraft(
            name=tracker.get_slot(NAME_SLOT), phone=tracker.get_slot(PHONE_SLOT), address=tracker.get_slot(ADDRESS_SLOT)
        )

    @staticmethod
    def _draft_events(draft: ReceiverDraft) -> List[EventType]:
        return [SlotSet(NAME_SLOT, draft.name), SlotSet(PHONE_SLOT, draft.phone), SlotSet(ADDRESS_SLOT, draft.address)]

    def proceed(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order, step: Optional[str], intent: str
    ) -> List[EventType]:
        """Refuse with the alternatives, collect the new receiver, or ask for confirmation."""
        if not can_change_address(order):
            return self._refuse(dispatcher, order, address_refusal(order))
        kind = self._kind(intent)
        text = latest_text(tracker)
        readable = kind in ("answer", "restart") and not text.startswith("/")
        parsed = parse_receiver(text) if readable else ReceiverDraft()
        earlier = self._draft(tracker) if step in (DETAILS, CONFIRM, CONFIRM_RETRY) else ReceiverDraft()
        draft = parsed.merged_over(earlier).with_current(order)
        keep = [SlotSet(CHANGE_ORDER_SLOT, order["order_id"])]
        if step in (CONFIRM, CONFIRM_RETRY) and parsed.is_empty:
            return self._reask_confirmation(dispatcher, tracker, confirm_address_text(order, draft), step, intent)
        missing = draft.missing()
        if missing:
            text = ask_receiver_text(order, draft, first_time=step not in (DETAILS, CONFIRM, CONFIRM_RETRY))
            if step == DETAILS and parsed.is_empty and kind == "answer":
                count = invalid_answers(tracker) + 1
                dispatcher.utter_message(**invalid_answer_reply(render("utter_address_not_read") + "\n" + text, [], count))
                return flow_events(self.flow, DETAILS, count) + keep + self._draft_events(draft)
            prefix = RESUME_PREFIX + "\n" if step is not None and kind == "digression" else ""
            _reply(dispatcher, prefix + text)
            return flow_events(self.flow, DETAILS) + keep + self._draft_events(draft)
        _reply(dispatcher, confirm_address_text(order, draft), list(self.texts.confirm_buttons))
        return flow_events(self.flow, CONFIRM) + keep + self._draft_events(draft)

    async def execute(self, dispatcher: CollectingDispatcher, tracker: Tracker, order: Order) -> List[EventType]:
        """Change the receiver in the CRM and read the result back from the CRM's order."""
        draft = self._draft(tracker)
        if draft.missing():
            return self.proceed(dispatcher, tracker, order, DETAILS, "restart")
        if not can_change_address(order):
            return self._refuse(dispatcher, order, address_refusal(order))
        crm = get_crm_client()
        try:
            changed = await crm.change_address(order["order_id"], draft.name or "", draft.phone or "", draft.address or "")
        except CRMUnavailable:
            return self._unconfirmed(dispatcher, order)
        except CRMRequestError as error:
            if error.status == 409:
                fresh = await crm.get_order(order["order_id"])
                return self._refuse(dispatcher, fresh, address_refusal(fresh))
            if error.status in (400, 422):
                _reply(dispatcher, render("utter_address_rejected"))
                return flow_events(self.flow, DETAILS) + self._draft_events(ReceiverDraft())
            _reply(dispatcher, with_closing(render("utter_change_failed")), human_buttons())
            return self._end()
        _reply(dispatcher, with_closing(address_changed_text(changed)))
        return self._end()
