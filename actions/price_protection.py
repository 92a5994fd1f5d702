"""「这个降价了能补差价吗 880000010001」「申请价保」: price protection (价保) for one order.

The action finds the order the shopper may act on (a shop-signed customer's own order, or the one
an anonymous shopper proved with its phone tail, :func:`actions.verification.verify_anonymous_order`),
reads the shop's price-protection policy and the order's earlier claims from the CRM, and applies
the rule of :mod:`bot.price_protection`. A protected order gets its claim filed
(``POST /api/orders/{id}/price-protection``) and the shopper is told the amount, where it goes and
between which dates it arrives; an order that is not protected gets the concrete reason (the day
the window ended, the kind of price, the prices compared) and the offer of a human. The words are
in ``data/responses/price_protection.yml``; the reply functions are pure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.crm import CRMClient, CRMNotFound, CRMRequestError, CRMUnavailable, get_crm_client
from actions.order_change_rules import order_choice_button
from actions.orders import NOT_YOUR_ORDER
from actions.replies import CRM_UNAVAILABLE, human_buttons
from actions.shopper import shopper_from_tracker
from actions.verification import verify_anonymous_order
from bot import price_protection as rule
from bot.price_protection import Assessment, RefundTiming, refund_timing
from bot.texts import render

FLOW = "price_protection"
PENDING_FLOW_SLOT = "pending_flow"
INTENT = "price_protection_request"
MAX_ORDER_BUTTONS = 5
UNDECIDED = "policy_undecided"
"""The handoff reason of a refusal the shopper may contest: the agent decides."""
FAILED = "flow_failed"
"""The handoff reason when the CRM did not file the claim."""

Order = Mapping[str, Any]


@dataclass(frozen=True)
class Reply:
    """What the action says."""

    text: str
    buttons: List[Dict[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- wording (pure)
def _day(value: dt.date, today: dt.date) -> str:
    return formatting.day(value, today)


def _moment(value: dt.datetime, today: dt.date) -> str:
    local = value.astimezone(formatting.shop_timezone())
    return f"{_day(local.date(), today)} {local:%H:%M}"


def _working_days(span: Sequence[int]) -> str:
    low, high = int(span[0]), int(span[1])
    if low == high:
        return render("utter_price_protection_working_days", days=high)
    return render("utter_price_protection_working_days_range", low=low, high=high)


def arrival(timing: RefundTiming, today: dt.date) -> str:
    """「预计 12月7日（周一） 至 12月9日（周三） 到账（1–3 个工作日）」, or 「立即到账」."""
    if timing.immediate:
        return render("utter_price_protection_arrival_now")
    days = _working_days(timing.working_days)
    if timing.earliest == timing.latest:
        return render("utter_price_protection_arrival_one_day", latest=_day(timing.latest, today), working_days=days)
    return render("utter_price_protection_arrival_range", earliest=_day(timing.earliest, today), latest=_day(timing.latest, today),
                  working_days=days)


def _method(order: Order) -> str:
    return str(order.get("payment_method_label") or order.get("payment_method") or "")


def filed_reply(claim: Mapping[str, Any], assessment: Assessment, order: Order, policy: Mapping[str, Any], today: dt.date) -> Reply:
    """The claim the CRM filed: each line's difference, the total, where it goes and when."""
    lines = [render("utter_price_protection_line", product=line["product_name"], paid=formatting.money(line["paid_unit_fen"]),
                    current=formatting.money(line["current_price_fen"]), quantity=line["quantity"],
                    refund=formatting.money(line["refund_fen"]))
             for line in claim.get("lines") or []]
    lines += [render("utter_price_protection_line_excluded", product=line.product_name, kind=line.price_kind)
              for line in assessment.refused(rule.EXCLUDED_PRICE_KIND)]
    timing = _claim_timing(claim, policy)
    text = render("utter_price_protection_filed", order_id=claim["order_id"], amount=formatting.money(int(claim["refund_fen"])),
                  lines="\n".join(lines), method=_method(order), arrival=arrival(timing, today))
    return Reply(text)


def _claim_timing(claim: Mapping[str, Any], policy: Mapping[str, Any]) -> RefundTiming:
    """The arrival dates the CRM wrote on a claim, with the policy's working days of its method."""
    method = str(claim.get("refund_method") or "")
    timing = refund_timing(policy, method, formatting.today_in_shop())
    earliest, latest = (formatting.parse_date(str(claim[name])) for name in ("refund_expected_from", "refund_expected_by"))
    return RefundTiming(method, timing.timing, timing.working_days, earliest, latest)


def already_claimed_reply(order: Order, claims: Sequence[Mapping[str, Any]], policy: Mapping[str, Any], today: dt.date) -> Reply:
    """The claims filed earlier, with their amounts and arrival dates."""
    summaries = [
        render("utter_price_protection_claim_summary",
               day=_day(formatting.parse_datetime(str(claim["created_at"])).date(), today),
               amount=formatting.money(int(claim["refund_fen"])), method=_method(order),
               arrival=arrival(_claim_timing(claim, policy), today))
        for claim in claims
    ]
    return Reply(render("utter_price_protection_already_claimed", order_id=order["order_id"], claims="；".join(summaries)),
                 human_buttons(UNDECIDED))


def _products(lines: Sequence[rule.LineCheck]) -> str:
    return "、".join(dict.fromkeys(line.product_name for line in lines))


def refusal_reply(assessment: Assessment, order: Order, today: dt.date) -> Reply:
    """Why nothing of the order is protected, with its facts, and the offer of a human."""
    order_id = str(order["order_id"])
    reason = assessment.reason
    ends = _moment(assessment.window_ends_at, today) if assessment.window_ends_at is not None else ""
    if reason == rule.WINDOW_PASSED:
        paid = formatting.parse_datetime(str(order["paid_at"]))
        text = render("utter_price_protection_window_passed", order_id=order_id, paid=_moment(paid, today), ends=ends)
    elif reason == rule.EXCLUDED_PRICE_KIND:
        excluded = assessment.refused(rule.EXCLUDED_PRICE_KIND)
        kinds = "、".join(dict.fromkeys(str(line.price_kind) for line in excluded))
        text = render("utter_price_protection_excluded", order_id=order_id, products=_products(excluded), kinds=kinds)
    elif reason == rule.RETURNED:
        text = render("utter_price_protection_returned", order_id=order_id, products=_products(assessment.refused(rule.RETURNED)))
    elif reason == rule.NOT_PAID:
        text = render("utter_price_protection_not_paid", order_id=order_id)
    else:
        compared = [render("utter_price_protection_no_drop_line", product=line.product_name, paid=formatting.money(line.paid_unit_fen),
                           current=formatting.money(line.current_price_fen)) for line in assessment.lines]
        text = render("utter_price_protection_no_drop", order_id=order_id, lines="；".join(compared), ends=ends)
    return Reply(text, human_buttons(UNDECIDED))


def idempotency_key(sender_id: str, order_id: str, line_ids: Sequence[int]) -> str:
    """The key of one claim: the conversation, the order and its lines (a retry files nothing twice)."""
    parts = [sender_id, order_id, *(str(line) for line in sorted(line_ids))]
    return "chat-price-" + hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]


def in_window(order: Order, policy: Mapping[str, Any], now: dt.datetime) -> bool:
    """Whether an order was paid within the policy's window (whatever its prices)."""
    return rule.assess(order, policy, now).reason not in (rule.NOT_PAID, rule.WINDOW_PASSED)


# --------------------------------------------------------------------------- the action
async def settle(crm: CRMClient, sender_id: str, order: Order, now: dt.datetime) -> Reply:
    """Apply the rule to the order and file the claim it allows.

    Raises:
        CRMUnavailable: the CRM could not be read (before anything was filed).
    """
    order_id = str(order["order_id"])
    policy = await crm.get_policy("price_protection")
    claims = await crm.list_price_protection(order_id)
    claimed = [int(line["line_id"]) for claim in claims for line in claim.get("lines") or []]
    assessment = rule.assess(order, policy, now, claimed)
    today = now.astimezone(formatting.shop_timezone()).date()
    if not assessment.protected:
        if assessment.reason == rule.ALREADY_CLAIMED:
            return already_claimed_reply(order, claims, policy, today)
        return refusal_reply(assessment, order, today)
    line_ids = [line.line_id for line in assessment.protected]
    try:
        written = await crm.claim_price_protection(order_id, idempotency_key(sender_id, order_id, line_ids), line_ids)
    except CRMUnavailable:
        return Reply(render("utter_price_protection_unconfirmed", order_id=order_id), human_buttons(FAILED))
    except CRMRequestError as error:
        return Reply(render("utter_price_protection_refused_by_crm", message=error.message or error.code), human_buttons(FAILED))
    return filed_reply(written.record, assessment, order, policy, today)


async def choose_order(crm: CRMClient, customer_id: str, now: dt.datetime) -> Reply:
    """The signed customer's orders paid within the window, as buttons."""
    policy = await crm.get_policy("price_protection")
    orders = [order for order in await crm.list_orders(customer_id, limit=20) if in_window(order, policy, now)]
    if not orders:
        return Reply(render("utter_price_protection_no_recent_order"))
    buttons = [order_choice_button(dict(order), INTENT) for order in orders[:MAX_ORDER_BUTTONS]]
    return Reply(render("utter_price_protection_choose_order"), buttons)


def _order_entity(tracker: Tracker) -> Optional[str]:
    value = next(tracker.get_latest_entity_values("order_id"), None)
    return str(value) if value else None


class ActionPriceProtection(Action):
    """Price protection for one order: the claim filed with its amount and dates, or the reason it is not."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_price_protection"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """Answer for a signed customer's own order or an anonymous shopper's proven order."""
        shopper = shopper_from_tracker(tracker)
        crm = get_crm_client()
        order_id = _order_entity(tracker)
        now = dt.datetime.now(formatting.shop_timezone())
        events: List[EventType] = []
        try:
            if shopper.is_verified_customer:
                if not order_id:
                    reply = await choose_order(crm, shopper.customer_id or "", now)
                    dispatcher.utter_message(text=reply.text, buttons=reply.buttons)
                    return [SlotSet(PENDING_FLOW_SLOT, FLOW)]
                order = await _order_of(crm, order_id)
                if order is None or order.get("customer_id") != shopper.customer_id:
                    dispatcher.utter_message(text=NOT_YOUR_ORDER.format(order_id=order_id))
                    return [SlotSet(PENDING_FLOW_SLOT, None)]
            else:
                step = await verify_anonymous_order(tracker, crm, render("utter_price_protection_ask_verification"))
                if step.order_id is None:
                    dispatcher.utter_message(text=step.text or "", buttons=step.buttons)
                    return step.events + [SlotSet(PENDING_FLOW_SLOT, None if step.locked else FLOW)]
                events = step.events
                order = await crm.get_order(step.order_id)
            reply = await settle(crm, tracker.sender_id, order, now)
        except CRMUnavailable:
            dispatcher.utter_message(text=CRM_UNAVAILABLE, buttons=human_buttons())
            return events + [SlotSet(PENDING_FLOW_SLOT, None)]
        dispatcher.utter_message(text=reply.text, buttons=reply.buttons)
        return events + [SlotSet(PENDING_FLOW_SLOT, None)]


async def _order_of(crm: CRMClient, order_id: str) -> Optional[Dict[str, Any]]:
    try:
        return await crm.get_order(order_id)
    except CRMNotFound:
        return None
