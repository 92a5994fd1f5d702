"""Points and membership actions: balance, expiry, tier, and redeeming points for a coupon.

Only a verified customer (the shop-signed identity of the channel) sees or spends points: an order
proven with its phone tail opens that one order, never the account.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.conversation import (
    ANSWER_INTENTS,
    PENDING_FLOW_SLOT,
    RESUME_PREFIX,
    SILENT_END_INTENTS,
    STOP_INTENTS,
    current_step,
    end_flow_events,
    flow_events,
    idempotency_key,
    invalid_answer_reply,
    invalid_answers,
    last_bot_action,
    latest_entity,
    latest_intent,
    latest_text,
    turn_id,
    with_closing,
)
from actions.crm import CRMRequestError, CRMUnavailable, get_crm_client
from actions.loyalty_rules import (
    MAX_COUPON_BUTTONS,
    confirm_redemption_text,
    coupon_button,
    describe_balance,
    describe_catalogue,
    describe_expiry,
    describe_tier,
    match_coupon,
    not_enough_points_text,
    redemption_done_text,
    redemption_eligibility,
    split_catalogue,
)
from actions.replies import human_buttons
from actions.shopper import shopper_from_tracker
from bot.texts import render

REDEEM_FLOW = "redeem_points"
CHOOSE = "choose"
CONFIRM = "confirm"
CONFIRM_RETRY = "confirm_retry"
REDEEM_COUPON_SLOT = "redeem_coupon_id"
REDEEM_KEY_SLOT = "redeem_key"
REDEEM_SLOTS = (REDEEM_COUPON_SLOT, REDEEM_KEY_SLOT)
# Flows whose rules bring the shopper back after a points or membership question.
RESUMED_AFTER_LOYALTY_ANSWER = frozenset({REDEEM_FLOW})
LEDGER_WORDS = ("明细", "记录", "流水", "变动", "账单")
LEDGER_LINES = 10

# The wording lives in data/responses/loyalty.yml.
LOGIN_REQUIRED = render("utter_loyalty_login_required")
LOYALTY_UNAVAILABLE = render("utter_loyalty_unavailable")
REDEEM_UNCONFIRMED = render("utter_redeem_unconfirmed")
REDEEM_FAILED = render("utter_redeem_failed")
REDEEM_STOPPED = render("utter_redeem_stopped")
REDEEM_STOPPED_UNCONFIRMED = render("utter_redeem_stopped_unconfirmed")
CHOOSE_AMONG = render("utter_redeem_choose_among")
COUPON_GONE = render("utter_redeem_coupon_gone")
CONFIRM_BUTTONS = [{"title": render("utter_redeem_button_confirm"), "payload": "/affirm"},
                   {"title": render("utter_redeem_button_cancel"), "payload": "/deny"}]
REDEEM_BUTTON = {"title": render("utter_loyalty_button_redeem"), "payload": "/points_redeem"}
TIER_BUTTON = {"title": render("utter_loyalty_button_tier"), "payload": "/membership_tier"}
POINTS_BUTTON = {"title": render("utter_loyalty_button_points"), "payload": "/points_balance"}

Json = Dict[str, Any]


def _refusal(error: CRMRequestError) -> str:
    """The CRM's reason for refusing a redemption, as a sentence."""
    return render("utter_redeem_refused", reason=error.message)


def _closing_unless_resuming(tracker: Tracker, text: str) -> str:
    """The closing question, unless a rule brings the shopper back to an open flow right after."""
    if tracker.get_slot(PENDING_FLOW_SLOT) in RESUMED_AFTER_LOYALTY_ANSWER:
        return text
    return with_closing(text)


def _login_required(dispatcher: CollectingDispatcher) -> List[EventType]:
    dispatcher.utter_message(text=with_closing(LOGIN_REQUIRED))
    return []


def _unavailable(dispatcher: CollectingDispatcher) -> List[EventType]:
    dispatcher.utter_message(text=LOYALTY_UNAVAILABLE, buttons=human_buttons())
    return []


class LoyaltyAnswer(Action, ABC):
    """One answer about a verified customer's account, read from the CRM in the same turn.

    Anyone else is asked to log in; when the CRM cannot answer, the shopper is told so and offered
    a human. Subclasses say what to read and how to put it.
    """

    @abstractmethod
    async def answer(self, tracker: Tracker, customer_id: str) -> Tuple[str, List[Dict[str, str]]]:
        """The answer's text and buttons.

        Raises:
            actions.crm.CRMUnavailable: the CRM could not answer.
        """

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Answer a verified customer, or ask the shopper to log in."""
        shopper = shopper_from_tracker(tracker)
        if not shopper.is_verified_customer:
            return _login_required(dispatcher)
        try:
            text, buttons = await self.answer(tracker, shopper.customer_id or "")
        except CRMUnavailable:
            return _unavailable(dispatcher)
        dispatcher.utter_message(text=_closing_unless_resuming(tracker, text), buttons=buttons)
        return []


class ActionPointsBalance(LoyaltyAnswer):
    """Tells a verified customer their points, the next expiry and the recent ledger lines."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_points_balance"

    async def answer(self, tracker: Tracker, customer_id: str) -> Tuple[str, List[Dict[str, str]]]:
        """The CRM's points summary (and the ledger when the shopper asks for details)."""
        crm = get_crm_client()
        summary = await crm.get_points(customer_id)
        ledger: Optional[List[Json]] = None
        if any(word in latest_text(tracker) for word in LEDGER_WORDS):
            ledger = await crm.get_points_ledger(customer_id, limit=LEDGER_LINES)
        return describe_balance(summary, formatting.today_in_shop(), ledger), [dict(REDEEM_BUTTON), dict(TIER_BUTTON)]


class ActionPointsExpiry(LoyaltyAnswer):
    """Tells a verified customer which points expire and exactly when, with the rule behind it."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_points_expiry"

    async def answer(self, tracker: Tracker, customer_id: str) -> Tuple[str, List[Dict[str, str]]]:
        """The CRM's points summary."""
        summary = await get_crm_client().get_points(customer_id)
        buttons = [dict(REDEEM_BUTTON)] if int(summary.get("balance", 0)) > 0 else []
        return describe_expiry(summary, formatting.today_in_shop()), buttons


class ActionMembershipTier(LoyaltyAnswer):
    """Tells a verified customer their tier, growth value, the gap to the next tier and the benefits."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_membership_tier"

    async def answer(self, tracker: Tracker, customer_id: str) -> Tuple[str, List[Dict[str, str]]]:
        """The CRM's customer profile and tier table."""
        crm = get_crm_client()
        customer = await crm.get_customer(customer_id)
        tiers = await crm.get_tiers()
        return describe_tier(customer, tiers), [dict(POINTS_BUTTON)]


class ActionRedeemPoints(Action):
    """Redeems points for a coupon: catalogue → choice → confirmation → CRM transaction.

    Every turn sets ``pending_flow`` explicitly (the rules tell a continuing flow from an ended one
    by it), except when the CRM cannot answer in the middle of the flow, which keeps it open.

    The idempotency key is derived from the conversation and the turn in which the confirmation
    was asked, and kept until the flow ends: a repeated 「确认」 or a retried request produces the
    same key, so the CRM redeems at most once.
    """

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_redeem_points"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[EventType]:
        """Advance the redemption by one turn."""
        shopper = shopper_from_tracker(tracker)
        step = current_step(tracker, REDEEM_FLOW)
        if not shopper.is_verified_customer:
            _login_required(dispatcher)
            return end_flow_events(REDEEM_SLOTS)
        intent = latest_intent(tracker)
        if intent in SILENT_END_INTENTS:
            return end_flow_events(REDEEM_SLOTS)
        if step is not None and (intent in STOP_INTENTS or intent == "deny"):
            text = REDEEM_STOPPED_UNCONFIRMED if step == CONFIRM_RETRY else REDEEM_STOPPED
            buttons = human_buttons() if step == CONFIRM_RETRY else []
            dispatcher.utter_message(text=with_closing(text), buttons=buttons)
            return end_flow_events(REDEEM_SLOTS)
        customer_id = shopper.customer_id or ""
        if step in (CONFIRM, CONFIRM_RETRY) and intent == "affirm" and last_bot_action(tracker) == self.name():
            return await self._redeem(dispatcher, tracker, customer_id, step)
        try:
            return await self._advance(dispatcher, tracker, customer_id, step, intent)
        except CRMUnavailable:
            _unavailable(dispatcher)
            return [] if step else end_flow_events(REDEEM_SLOTS)

    async def _advance(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str, step: Optional[str], intent: str
    ) -> List[EventType]:
        crm = get_crm_client()
        coupons = await crm.list_coupons()
        summary = await crm.get_points(customer_id)
        balance = int(summary.get("balance", 0))
        today = formatting.today_in_shop()

        chosen: List[Json] = []
        coupon_id = latest_entity(tracker, "coupon_id")
        if coupon_id:
            chosen = [coupon for coupon in coupons if coupon["coupon_id"] == coupon_id]
            if not chosen:
                dispatcher.utter_message(text=COUPON_GONE)
        elif intent in ("points_redeem", "inform", "nlu_fallback", "rate_service"):
            chosen = match_coupon(latest_text(tracker), coupons)
        if len(chosen) == 1:
            return self._ask_confirmation(dispatcher, tracker, chosen[0], coupons, summary, step)
        if len(chosen) > 1:
            dispatcher.utter_message(text=CHOOSE_AMONG, buttons=[coupon_button(coupon) for coupon in chosen])
            return flow_events(REDEEM_FLOW, CHOOSE)

        digression = intent not in ANSWER_INTENTS and intent != "points_redeem"
        prefix = RESUME_PREFIX + "\n" if step is not None and digression else ""
        if step in (CONFIRM, CONFIRM_RETRY):
            current = next((coupon for coupon in coupons if coupon["coupon_id"] == tracker.get_slot(REDEEM_COUPON_SLOT)), None)
            if current is not None:
                if prefix or intent == "affirm":
                    dispatcher.utter_message(text=prefix + confirm_redemption_text(current, balance, summary, today), buttons=CONFIRM_BUTTONS)
                    return flow_events(REDEEM_FLOW, step, invalid_answers(tracker))
                count = invalid_answers(tracker) + 1
                reply = invalid_answer_reply(
                    render("utter_redeem_confirm_again") + "\n" + confirm_redemption_text(current, balance, summary, today),
                    CONFIRM_BUTTONS,
                    count,
                )
                dispatcher.utter_message(**reply)
                return flow_events(REDEEM_FLOW, step, count)

        catalogue_text = describe_catalogue(coupons, balance)
        affordable = split_catalogue(coupons, balance).affordable
        if not affordable:
            dispatcher.utter_message(text=with_closing(prefix + catalogue_text), buttons=[dict(POINTS_BUTTON)])
            return end_flow_events(REDEEM_SLOTS)
        buttons = [coupon_button(coupon) for coupon in affordable[:MAX_COUPON_BUTTONS]]
        if step == CHOOSE and not prefix and intent != "points_redeem":
            count = invalid_answers(tracker) + 1
            dispatcher.utter_message(**invalid_answer_reply(render("utter_redeem_not_understood") + "\n" + catalogue_text, buttons, count))
            return flow_events(REDEEM_FLOW, CHOOSE, count) + [SlotSet(REDEEM_COUPON_SLOT, None), SlotSet(REDEEM_KEY_SLOT, None)]
        dispatcher.utter_message(text=prefix + catalogue_text, buttons=buttons)
        return flow_events(REDEEM_FLOW, CHOOSE) + [SlotSet(REDEEM_COUPON_SLOT, None), SlotSet(REDEEM_KEY_SLOT, None)]

    def _ask_confirmation(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        coupon: Json,
        coupons: List[Json],
        summary: Json,
        step: Optional[str],
    ) -> List[EventType]:
        balance = int(summary.get("balance", 0))
        today = formatting.today_in_shop()
        eligibility = redemption_eligibility(balance, coupon)
        if not eligibility.allowed:
            affordable = split_catalogue(coupons, balance).affordable
            text = not_enough_points_text(coupon, balance)
            others = [c for c in affordable if c["coupon_id"] != coupon["coupon_id"]]
            if others:
                dispatcher.utter_message(text=text + "\n" + render("utter_redeem_affordable_instead"), buttons=[coupon_button(c) for c in others])
                return flow_events(REDEEM_FLOW, CHOOSE)
            dispatcher.utter_message(text=with_closing(text), buttons=[dict(POINTS_BUTTON)])
            return end_flow_events(REDEEM_SLOTS)
        same = step in (CONFIRM, CONFIRM_RETRY) and tracker.get_slot(REDEEM_COUPON_SLOT) == coupon["coupon_id"]
        key = tracker.get_slot(REDEEM_KEY_SLOT) if same and tracker.get_slot(REDEEM_KEY_SLOT) else None
        if key is None:
            key = idempotency_key(tracker.sender_id, turn_id(tracker), coupon["coupon_id"])
        dispatcher.utter_message(text=confirm_redemption_text(coupon, balance, summary, today), buttons=CONFIRM_BUTTONS)
        return flow_events(REDEEM_FLOW, step if same and step else CONFIRM) + [
            SlotSet(REDEEM_COUPON_SLOT, coupon["coupon_id"]),
            SlotSet(REDEEM_KEY_SLOT, key),
        ]

    async def _redeem(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, customer_id: str, step: str
    ) -> List[EventType]:
        coupon_id = str(tracker.get_slot(REDEEM_COUPON_SLOT) or "")
        key = str(tracker.get_slot(REDEEM_KEY_SLOT) or "")
        crm = get_crm_client()
        try:
            redemption = await crm.redeem_points(customer_id, coupon_id, key)
        except CRMUnavailable:
            dispatcher.utter_message(text=REDEEM_UNCONFIRMED, buttons=CONFIRM_BUTTONS[:1] + human_buttons())
            return flow_events(REDEEM_FLOW, CONFIRM_RETRY)
        except CRMRequestError as error:
            return await self._refused(dispatcher, customer_id, coupon_id, error)
        dispatcher.utter_message(text=with_closing(redemption_done_text(redemption, formatting.today_in_shop())))
        return end_flow_events(REDEEM_SLOTS)

    async def _refused(
        self, dispatcher: CollectingDispatcher, customer_id: str, coupon_id: str, error: CRMRequestError
    ) -> List[EventType]:
        crm = get_crm_client()
        if error.code == "not_allowed":
            try:
                coupons = await crm.list_coupons()
                balance = int((await crm.get_points(customer_id)).get("balance", 0))
            except CRMUnavailable:
                dispatcher.utter_message(text=with_closing(_refusal(error)), buttons=human_buttons())
                return end_flow_events(REDEEM_SLOTS)
            coupon = next((c for c in coupons if c["coupon_id"] == coupon_id), None)
            text = not_enough_points_text(coupon, balance) if coupon else _refusal(error)
            affordable = split_catalogue(coupons, balance).affordable
            if affordable:
                dispatcher.utter_message(text=text + "\n" + render("utter_redeem_affordable_instead"), buttons=[coupon_button(c) for c in affordable])
                return flow_events(REDEEM_FLOW, CHOOSE) + [SlotSet(REDEEM_COUPON_SLOT, None), SlotSet(REDEEM_KEY_SLOT, None)]
            dispatcher.utter_message(text=with_closing(text))
            return end_flow_events(REDEEM_SLOTS)
        if error.status == 404:
            dispatcher.utter_message(text=with_closing(COUPON_GONE + render("utter_redeem_points_unchanged")), buttons=[dict(REDEEM_BUTTON)])
            return end_flow_events(REDEEM_SLOTS)
        dispatcher.utter_message(text=REDEEM_FAILED, buttons=human_buttons())
        return end_flow_events(REDEEM_SLOTS)
