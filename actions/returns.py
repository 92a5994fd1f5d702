"""Return, exchange and refund-status actions: the form's validation, its ending, and 「退款到哪了」.

The logic lives in :mod:`actions.return_flow` (the conversation), :mod:`actions.refund_status` and
:mod:`actions.return_policy` (the rules), the words in ``data/responses/returns.yml``; these actions
read the tracker, fetch what the shopper may see from the CRM, and turn the outcome into events.
Nothing about an order or a return is read or changed unless the channel verified the customer or
the anonymous shopper proved the order with its phone tail.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions import return_flow as flow
from actions.crm import CRMClient, CRMNotFound, CRMRequestError, CRMUnavailable, get_crm_client
from actions.refund_status import describe_returns
from actions.replies import CRM_UNAVAILABLE, human_buttons
from actions.return_policy import ReturnPolicy, crm_shipping_payer, default_policy
from actions.return_state import kind_word
from actions.shopper import Shopper, shopper_from_tracker
from actions.verification import verify_anonymous_order
from bot.texts import render

PENDING_FLOW_SLOT = "pending_flow"
REFUND_STATUS_FLOW = "refund_status"
ANYTHING_ELSE = "utter_return_anything_else"
STOPPED = "utter_return_stopped"

# Intents that leave the open question for something else: the form lets rules answer them,
# then asks its question again (stop, goodbye and a human end it, see data/rules/returns.yml).
DIGRESSION_INTENTS = frozenset({
    "greet", "goodbye", "thank", "stop", "bot_challenge", "rate_service",
    "track_order", "track_order_full", "urge_delivery", "cancel_order", "change_address", "refund_status",
    "points_balance", "points_expiry", "points_redeem", "membership_tier",
    "human_agent", "complaint",
})
DIGRESSION_PREFIXES = ("faq", "chitchat")
# Actions that run between a message and the form's own turn.
_TURN_MACHINERY = frozenset({"action_listen", "action_extract_slots", flow.FORM_NAME, f"validate_{flow.FORM_NAME}"})


def _intent(tracker: Tracker) -> str:
    intent = (tracker.latest_message or {}).get("intent") or {}
    return str(intent.get("name") or "")


def _entities(tracker: Tracker) -> Dict[str, List[str]]:
    found: Dict[str, List[str]] = {}
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if entity.get("value") not in (None, ""):
            found.setdefault(str(entity.get("entity")), []).append(str(entity["value"]))
    return found


def is_digression(intent: str) -> bool:
    """Whether an intent leaves the flow's open question for something else."""
    return intent in DIGRESSION_INTENTS or intent.split("/")[0] in DIGRESSION_PREFIXES


def is_resuming(tracker: Tracker) -> bool:
    """True when the form runs again after other actions answered the shopper's latest message."""
    events: List[Dict[str, Any]] = list(tracker.events or [])
    last_user = max((index for index, event in enumerate(events) if event.get("event") == "user"), default=-1)
    return any(
        event.get("event") == "action" and event.get("name") not in _TURN_MACHINERY
        for event in events[last_user + 1:]
    )


def idempotency_key(sender_id: str, order_id: str, lines: Sequence[Tuple[int, int]], salt: str = "") -> str:
    """The key of one return request: the conversation, the order and its lines.

    A repeated 「确认」 or a retried request carries the same key, so the CRM creates one return.
    """
    parts = [sender_id, order_id] + [f"{line}x{quantity}" for line, quantity in sorted(lines)] + ([salt] if salt else [])
    return "chat-return-" + hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]


def slot_events(tracker: Tracker, state: flow.FlowState) -> List[EventType]:
    """SlotSet events for the flow slots that change, and always the invalid-answer count."""
    events: List[EventType] = []
    for slot, value in state.slot_values().items():
        if slot == flow.SLOT_INVALID or tracker.get_slot(slot) != value:
            events.append(SlotSet(slot, value))
    return events


def reset_events(tracker: Tracker) -> List[EventType]:
    """SlotSet events that forget every flow slot that is set."""
    events: List[EventType] = []
    for slot in flow.FLOW_SLOTS:
        blank = 0.0 if slot == flow.SLOT_INVALID else None
        if tracker.get_slot(slot) != blank:
            events.append(SlotSet(slot, blank))
    return events


async def _order_of(crm: CRMClient, order_id: str) -> Optional[Dict[str, Any]]:
    try:
        return await crm.get_order(order_id)
    except CRMNotFound:
        return None


async def customer_data(
    crm: CRMClient, customer_id: str, policy: ReturnPolicy, wanted: Sequence[Optional[str]] = ()
) -> flow.FlowData:
    """The verified customer's orders and returns (plus any wanted order of theirs not in the list)."""
    orders = await crm.list_orders(customer_id, limit=50)
    known = {order["order_id"] for order in orders}
    for order_id in wanted:
        if order_id and order_id not in known:
            order = await _order_of(crm, order_id)
            if order is not None and order.get("customer_id") == customer_id:
                orders.append(order)
                known.add(order_id)
    returns = await crm.list_customer_returns(customer_id, limit=50)
    return flow.FlowData(today=formatting.today_in_shop(), policy=policy, orders=tuple(orders), returns=tuple(returns))


async def order_data(crm: CRMClient, order_id: str, policy: ReturnPolicy) -> flow.FlowData:
    """The one order an anonymous shopper proved, with its returns."""
    order = await crm.get_order(order_id)
    returns = await crm.list_order_returns(order_id)
    return flow.FlowData(
        today=formatting.today_in_shop(), policy=policy, orders=(order,), returns=tuple(returns), anonymous=True
    )


class ValidateReturnForm(Action):
    """Runs every turn of ``return_form``: reads the answer, asks the next question, submits."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return f"validate_{flow.FORM_NAME}"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """One turn of the return form.

        Returns no events for a message that leaves the question (a FAQ, 「算了」, another
        request): the form is then rejected and rules answer it; the form asks again afterwards.
        """
        activation = tracker.active_loop_name != flow.FORM_NAME
        resuming = not activation and is_resuming(tracker)
        intent = _intent(tracker)
        if not activation and not resuming and is_digression(intent):
            return []
        policy = default_policy()
        state = flow.FlowState.from_slots(tracker.get_slot)
        if activation:
            state = flow.FlowState(kind=flow.KIND_EXCHANGE if intent == "exchange_request" else flow.KIND_RETURN)
        answer = flow.read_answer(intent, str((tracker.latest_message or {}).get("text") or ""), _entities(tracker), policy)
        shopper = shopper_from_tracker(tracker)
        prefix: List[EventType] = []
        if activation and tracker.get_slot(PENDING_FLOW_SLOT) is not None:
            prefix.append(SlotSet(PENDING_FLOW_SLOT, None))
        crm = get_crm_client()
        try:
            turn, verification_events = await self._turn(tracker, crm, shopper, state, answer, policy, activation, resuming)
        except CRMUnavailable:
            at_confirmation = not activation and state.next_slot() == flow.SLOT_CONFIRMED
            turn, verification_events = flow.crm_unavailable(state, at_confirmation), []
        dispatcher.utter_message(**turn.reply.as_message())
        events = prefix + verification_events + slot_events(tracker, turn.state)
        if turn.end:
            events.append(ActiveLoop(None))
        return events

    async def _turn(
        self,
        tracker: Tracker,
        crm: CRMClient,
        shopper: Shopper,
        state: flow.FlowState,
        answer: flow.Answer,
        policy: ReturnPolicy,
        activation: bool,
        resuming: bool,
    ) -> Tuple[flow.Turn, List[EventType]]:
        verification_events: List[EventType] = []
        if shopper.is_verified_customer:
            data = await customer_data(crm, shopper.customer_id or "", policy, [answer.order_id, state.order_id])
            if resuming:
                return flow.resume(state, data), []
        else:
            verified = shopper.verified_order_id
            if resuming:
                if verified is not None and state.order_id == verified:
                    data = await order_data(crm, verified, policy)
                else:
                    data = flow.FlowData(formatting.today_in_shop(), policy, anonymous=True)
                return flow.resume(state, data), []
            if verified is None or state.order_id != verified or answer.order_id not in (None, verified):
                step = await verify_anonymous_order(tracker, crm, flow.ask_anonymous_order(state.kind_word))
                if step.order_id is None:
                    gave = any(next(tracker.get_latest_entity_values(name), None) for name in ("order_id", "phone_last4"))
                    turn = flow.verifying(state, flow.Reply(step.text or "", list(step.buttons)), step.locked, activation, gave)
                    return turn, step.events
                verification_events = step.events
                verified = step.order_id
            data = await order_data(crm, verified, policy)
        turn = flow.advance(state, answer, data, activation=activation)
        if turn.submit:
            turn = await self._submit(tracker, crm, shopper, turn.state, data)
        return turn, verification_events

    @staticmethod
    async def _submit(
        tracker: Tracker, crm: CRMClient, shopper: Shopper, state: flow.FlowState, data: flow.FlowData
    ) -> flow.Turn:
        order = data.order(state.order_id)
        if order is None or not shopper.may_see(dict(order)) or state.lines is None or state.reason is None:
            return flow.crm_refused(state, "")
        quote = flow.quote_for(state, order, data)
        lines = [{"line_id": line, "quantity": quantity} for line, quantity in state.lines]
        key = idempotency_key(tracker.sender_id, str(order["order_id"]), state.lines)
        try:
            created = await crm.create_return(
                str(order["order_id"]), lines, state.reason, key, quote.total_fen,
                crm_shipping_payer(quote.payer), quote.refund_expected_by.isoformat(),
            )
            if created.get("status") in ("rejected", "cancelled"):
                # The key belongs to an earlier return of these lines that has since ended.
                key = idempotency_key(tracker.sender_id, str(order["order_id"]), state.lines, str(created["return_id"]))
                created = await crm.create_return(
                    str(order["order_id"]), lines, state.reason, key, quote.total_fen,
                    crm_shipping_payer(quote.payer), quote.refund_expected_by.isoformat(),
                )
        except CRMUnavailable:
            return flow.crm_unavailable(state, at_confirmation=True)
        except CRMRequestError as error:
            return flow.crm_refused(state, error.message)
        return flow.submitted(state, created, quote, data)


class ActionReturnFinish(Action):
    """Runs when the return form ends: forgets the flow's slots and asks what else is needed."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_return_finish"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Ask whether anything else is needed."""
        dispatcher.utter_message(response=ANYTHING_ELSE)
        return reset_events(tracker)


class ActionReturnStop(Action):
    """The shopper stopped the return (「算了」): nothing is submitted, the form closes."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_return_stop"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Confirm that nothing was submitted and ask what else is needed."""
        dispatcher.utter_message(response=STOPPED, kind=kind_word(tracker.get_slot(flow.SLOT_KIND)))
        return [ActiveLoop(None), SlotSet("requested_slot", None)] + reset_events(tracker)


class ActionRefundStatus(Action):
    """「退款到哪了」: the shopper's returns from the CRM, with amounts and dates."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_refund_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Answer for a verified customer or a proven order; verify an anonymous shopper first."""
        shopper = shopper_from_tracker(tracker)
        crm = get_crm_client()
        in_return_form = tracker.active_loop_name == flow.FORM_NAME
        entities = _entities(tracker)
        order_ids = entities.get("order_id") or []
        order_id: Optional[str] = order_ids[0] if order_ids else None
        events: List[EventType] = []
        try:
            if shopper.is_verified_customer:
                customer_id = shopper.customer_id or ""
                if order_id:
                    order = await _order_of(crm, order_id)
                    if order is None or order.get("customer_id") != customer_id:
                        dispatcher.utter_message(text=flow.not_your_order(order_id))
                        return [SlotSet(PENDING_FLOW_SLOT, None)]
                    returns = await crm.list_order_returns(order_id)
                else:
                    returns = await crm.list_customer_returns(customer_id, limit=20)
                scope = (render("utter_refund_status_scope_order", order_id=order_id) if order_id
                         else render("utter_refund_status_scope_account"))
            else:
                step = await verify_anonymous_order(tracker, crm, render("utter_refund_status_ask_verification"))
                if step.order_id is None:
                    dispatcher.utter_message(text=step.text or "", buttons=step.buttons)
                    flow_slot = None if step.locked else REFUND_STATUS_FLOW
                    return step.events + [SlotSet(PENDING_FLOW_SLOT, flow_slot)]
                events = step.events
                returns = await crm.list_order_returns(step.order_id)
                scope = render("utter_refund_status_scope_order", order_id=step.order_id)
        except CRMUnavailable:
            dispatcher.utter_message(text=CRM_UNAVAILABLE, buttons=human_buttons())
            return events + [SlotSet(PENDING_FLOW_SLOT, None)]
        products = entities.get("product") or []
        report = describe_returns(returns, scope, products, formatting.today_in_shop(), default_policy())
        text = report.text if in_return_form else f"{report.text}\n{render(ANYTHING_ELSE)}"
        dispatcher.utter_message(text=text, buttons=report.buttons)
        return events + [SlotSet(PENDING_FLOW_SLOT, None)]
