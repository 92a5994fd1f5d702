"""The return flow's replies: each question, the summary, the refusals and the outcome, with buttons.

Each function picks the response (``data/responses/returns.yml``) and computes the values it quotes
(items, amounts, dates, the rule that decided); the words are in the responses file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, Dict, List, Mapping, Optional, Sequence

from actions import formatting
from actions import return_policy as policy_rules
from actions.order_tracking import STATUS_LABELS, items_summary
from actions.replies import human_buttons
from actions.return_policy import Decision, RefundQuote, ReturnPolicy
from actions.return_state import (
    KIND_EXCHANGE,
    Button,
    FlowData,
    FlowState,
    Lines,
    Order,
    Return,
    candidate_orders,
    kind_word,
    remaining_items,
    signed_at,
)
from bot.texts import render

UNDECIDED = "policy_undecided"
"""Handoff reason of a case the policy does not settle for the shopper (a contested refusal)."""
ALL_ITEMS = "全部商品"
"""The product value of the 「全部商品」 button (the flow reads 全部 in a product as every item)."""
IN_FLIGHT_STATUSES = ("awaiting_shipment", "shipped", "in_transit", "out_for_delivery")


def payload(intent: str, entities: Mapping[str, Any]) -> str:
    """A button payload: the intent with its entities."""
    return f"/{intent}" + json.dumps(dict(entities), ensure_ascii=False, separators=(",", ":"))


ALL_ITEMS_BUTTON: Button = {"title": render("utter_return_button_all_items"), "payload": payload("inform", {"product": ALL_ITEMS})}
STOP_BUTTON: Button = {"title": render("utter_return_button_stop"), "payload": "/stop"}
REPAIR_BUTTON: Button = {"title": render("utter_return_button_repair"), "payload": "/human_agent"}


@dataclass(frozen=True)
class Reply:
    """One message: text and buttons."""

    text: str
    buttons: List[Button] = field(default_factory=list)

    def as_message(self) -> Dict[str, Any]:
        """The message as the dispatcher takes it."""
        return {"text": self.text, "buttons": list(self.buttons)}


@dataclass(frozen=True)
class Turn:
    """The outcome of one turn of the flow.

    Attributes:
        state: the new state.
        reply: what to say.
        end: True to close the form now (nothing more can be done in it).
        submit: True to create the return in the CRM now (the shopper confirmed).
    """

    state: FlowState
    reply: Reply
    end: bool = False
    submit: bool = False


# ------------------------------------------------------------------------- short messages
def start_text(kind: str) -> str:
    """「好的，我来帮您办理退货。」 (``kind`` as the shopper reads it)."""
    return render("utter_return_start", kind=kind)


def offer_human() -> str:
    """Said after answers in a row the flow could not use: buttons or a human."""
    return render("utter_return_offer_human")


def not_your_order(order_id: str) -> str:
    """The order number is not in the shopper's account."""
    return render("utter_return_not_your_order", order_id=order_id)


def ask_anonymous_order(kind: str) -> str:
    """An anonymous shopper is asked for an order number and the phone tail."""
    return render("utter_return_ask_anonymous_order", kind=kind)


def anonymous_other_order(kind: str) -> str:
    """An anonymous shopper is asked for the number and phone tail of another order."""
    return render("utter_return_anonymous_other_order", kind=kind)


# ---------------------------------------------------------------------- labels and buttons
def product_name(item: Mapping[str, Any]) -> str:
    """A line's product name (商品 when the CRM has none)."""
    return str(item.get("product_name") or render("utter_return_unnamed_product"))


def lines_text(order: Order, lines: Lines) -> str:
    """「耐克 Air Zoom 跑鞋 ×1、安踏 T恤 ×2」."""
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    return "、".join(f"{product_name(items[line])} ×{quantity}" for line, quantity in lines if line in items)


def order_label(order: Order, today: date) -> str:
    """The order number with its sign-for day."""
    signed = policy_rules.signed_date(order)
    return render("utter_return_order_label", order_id=order["order_id"], day=formatting.day(signed, today)) if signed else str(order["order_id"])


def order_heading(order: Order, today: date) -> str:
    """「订单 880000010002（11月20日（周五）签收）」."""
    return render("utter_return_order_heading", label=order_label(order, today))


def order_button(order: Order) -> Button:
    """A button choosing one order: sign-for date, first item, amount."""
    signed = policy_rules.signed_date(order)
    items, amount = items_summary(dict(order)), formatting.money(int(order.get("paid_fen", 0)))
    if signed:
        title = render("utter_return_button_order_signed", month=signed.month, day=signed.day, items=items, amount=amount)
    else:
        placed = formatting.parse_datetime(str(order["placed_at"]))
        title = render("utter_return_button_order_placed", month=f"{placed.month:02d}", day=f"{placed.day:02d}", items=items, amount=amount)
    return {"title": title, "payload": payload("inform", {"order_id": order["order_id"]})}


def item_button(item: Mapping[str, Any], prefix: str = "") -> Button:
    """A button choosing one order line by its product name."""
    left = policy_rules.remaining_quantity(item)
    title = f"{prefix}{product_name(item)}" + (f" ×{left}" if left > 1 else "")
    return {"title": title, "payload": payload("inform", {"product": str(item.get("product_name", ""))})}


def reason_buttons(policy: ReturnPolicy) -> List[Button]:
    """One button per reason code, labelled in Chinese."""
    return [{"title": label, "payload": payload("inform", {"return_reason": code})} for code, label in policy.reason_labels.items()]


# ------------------------------------------------------------------------------ questions
def ask_order(state: FlowState, data: FlowData, exclude: Optional[str] = None) -> Reply:
    """Which order: buttons for the candidates."""
    if data.anonymous:
        return Reply(ask_anonymous_order(state.kind_word))
    text = render("utter_return_ask_order", kind=state.kind_word, quality_days=data.policy.quality_days)
    return Reply(text, [order_button(order) for order in candidate_orders(data, exclude)])


def ask_lines(state: FlowState, order: Order, data: FlowData, named: bool = True) -> Reply:
    """Which items of the order (``named``: say which order, unless the shopper was just told)."""
    items = remaining_items(order)
    buttons = [item_button(item) for item in items] + ([ALL_ITEMS_BUTTON] if len(items) > 1 else [])
    heading = order_heading(order, data.today) if named else render("utter_return_this_order")
    return Reply(render("utter_return_ask_lines", heading=heading, kind=state.kind_word), buttons)


def ask_reason(state: FlowState, order: Order, data: FlowData) -> Reply:
    """The reason, with what each kind of reason means."""
    policy = data.policy
    text = render("utter_return_ask_reason", order_id=order["order_id"], kind=state.kind_word, items=lines_text(order, state.lines or ()),
                  quality_days=policy.quality_days, no_reason_days=policy.no_reason_days)
    return Reply(text, reason_buttons(policy))


def ask_package(state: FlowState, decision: Decision, data: FlowData) -> Reply:
    """Whether a sealed-only item is still sealed."""
    text = render("utter_return_ask_package", explanation=policy_rules.explain(decision, data.policy, data.today, state.kind_word))
    buttons = [{"title": render("utter_return_button_sealed"), "payload": "/affirm"},
               {"title": render("utter_return_button_opened"), "payload": "/deny"}]
    return Reply(text, buttons)


def summary(state: FlowState, order: Order, quote: RefundQuote, decisions: Sequence[Decision], data: FlowData) -> Reply:
    """The confirmation summary: items, refund amount, return shipping, pickup window, refund date."""
    policy, today = data.policy, data.today
    assert state.lines is not None and state.reason is not None
    lines = [render(
        "utter_return_summary",
        kind=state.kind_word,
        order=order_label(order, today),
        items=lines_text(order, state.lines),
        reason=policy.reason_label(state.reason),
        verdict="".join(policy_rules.explain(decision, policy, today) for decision in decisions),
        total=formatting.money(quote.total_fen),
        items_amount=formatting.money(quote.items_fen),
        coupon=render("utter_return_summary_coupon", amount=formatting.money(quote.coupon_fen)) if quote.coupon_fen else "",
        shipping=render("utter_return_summary_shipping", amount=formatting.money(quote.shipping_fen)) if quote.shipping_fen else "",
        capped=render("utter_return_summary_capped") if quote.capped else "",
        payer=policy_rules.payer_text(quote.payer),
        pickup_day=formatting.day(quote.pickup_date, today),
        pickup_window=quote.pickup_window,
        method=policy.payment_label(quote.payment_method),
        issued_by=formatting.day(quote.refund_issued_by, today),
        speed=policy_rules.refund_speed(quote.payment_method, policy),
        expected_by=formatting.day(quote.refund_expected_by, today),
    )]
    if any(quantity > 1 for _, quantity in state.lines):
        lines.append(render("utter_return_summary_partial"))
    lines.append(render("utter_return_confirm_question"))
    buttons = [{"title": render("utter_return_button_confirm"), "payload": "/affirm"},
               {"title": render("utter_return_button_change"), "payload": "/deny"}, STOP_BUTTON]
    return Reply("\n".join(lines), buttons)


def exchange_reply(state: FlowState, order: Order, quote: RefundQuote, decisions: Sequence[Decision], data: FlowData) -> Reply:
    """An exchange the policy allows: it is arranged by after-sales staff; a return is offered too."""
    assert state.lines is not None and state.reason is not None
    exchange = kind_word(KIND_EXCHANGE)
    explanation = "".join(policy_rules.explain(decision, data.policy, data.today, exchange) for decision in decisions)
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    products = [str(items[line].get("product_name", "")) for line, _ in state.lines if line in items]
    text = render("utter_return_exchange", explanation=explanation, amount=formatting.money(quote.total_fen),
                  expected_by=formatting.day(quote.refund_expected_by, data.today), method=data.policy.payment_label(quote.payment_method))
    to_return = payload("return_request", {"order_id": order["order_id"], "product": products, "return_reason": state.reason})
    return Reply(text, [*human_buttons(), {"title": render("utter_return_button_to_return"), "payload": to_return}])


def refusal(state: FlowState, order: Order, refused: Sequence[Decision], data: FlowData) -> Reply:
    """Why the items cannot be returned, with the alternatives as buttons."""
    policy, today = data.policy, data.today
    texts = [policy_rules.explain(decision, policy, today, state.kind_word) for decision in refused]
    texts.append(policy_rules.explain_alternatives(refused[0], policy, today))
    alternatives = set(alt for decision in refused for alt in decision.alternatives)
    buttons: List[Button] = []
    if policy_rules.ALT_QUALITY_REASON in alternatives:
        buttons.append({"title": render("utter_return_button_quality"), "payload": payload("inform", {"return_reason": "quality_issue"})})
    refused_lines = {decision.line_id for decision in refused}
    others = [item for item in remaining_items(order) if int(item["line_id"]) not in refused_lines]
    prefix = render("utter_return_switch_prefix_exchange" if state.kind == KIND_EXCHANGE else "utter_return_switch_prefix_return")
    buttons += [item_button(item, prefix=prefix) for item in others]
    if policy_rules.ALT_REPAIR in alternatives:
        buttons.append(REPAIR_BUTTON)
    elif policy_rules.ALT_HUMAN in alternatives:
        buttons += human_buttons(UNDECIDED)  # the shopper contests the verdict: an agent decides
    buttons.append(STOP_BUTTON)
    return Reply("\n".join(text for text in texts if text), buttons)


# ---------------------------------------------------------------- orders a return cannot use
def order_problem(order: Order, state: FlowState, data: FlowData) -> Optional[Reply]:
    """Why a whole order cannot be the subject of a return, if it cannot."""
    today, policy = data.today, data.policy
    signed = policy_rules.signed_date(order)
    kind = state.kind_word
    if signed is None:
        label = STATUS_LABELS.get(str(order.get("status")), str(order.get("status_label", "")))
        return Reply(render("utter_return_order_not_signed", order_id=order["order_id"], status=label, kind=kind))
    if policy_rules.order_window_closed(order, today, policy):
        first = dict((order.get("items") or [{}])[0], returned_quantity=0, quantity=1)
        decision = policy_rules.decide(order, first, "quality_issue", today, policy)
        text = render("utter_return_order_window_closed", order_id=order["order_id"],
                      explanation=policy_rules.explain(decision, policy, today, kind),
                      alternatives=policy_rules.explain_alternatives(decision, policy, today))
        return Reply(text, [REPAIR_BUTTON])
    if not remaining_items(order):
        numbers = "、".join(str(ret["return_id"]) for ret in data.order_returns(str(order["order_id"]))
                           if ret.get("status") not in ("rejected", "cancelled"))
        suffix = render("utter_return_return_numbers", numbers=numbers) if numbers else ""
        return Reply(render("utter_return_order_all_returned", order_id=order["order_id"], numbers=suffix))
    return None


def unsigned_note(state: FlowState, data: FlowData, exclude: Optional[str] = None) -> str:
    """Orders still on their way, which can be returned once signed for."""
    unsigned = [order for order in data.orders if order.get("status") in IN_FLIGHT_STATUSES and order.get("order_id") != exclude]
    if not unsigned:
        return ""
    listed = "、".join(render("utter_return_order_with_status", order_id=order["order_id"], status=STATUS_LABELS.get(str(order["status"]), ""))
                      for order in unsigned[:3])
    return render("utter_return_unsigned_note", orders=listed, kind=state.kind_word)


def no_candidates(state: FlowState, data: FlowData) -> Reply:
    """The shopper has no order a return could be about."""
    policy, kind = data.policy, state.kind_word
    note = unsigned_note(state, data)
    if note:
        return Reply(render("utter_return_no_candidates_unsigned", note=note, kind=kind,
                            no_reason_days=policy.no_reason_days, quality_days=policy.quality_days))
    signed = [order for order in data.orders if policy_rules.signed_date(order) is not None]
    if signed:
        latest = max(signed, key=signed_at)
        problem = order_problem(latest, state, data)
        if problem is not None:
            text = render("utter_return_no_recent_orders", quality_days=policy.quality_days, kind=kind, problem=problem.text)
            return Reply(text, problem.buttons)
    return Reply(render("utter_return_no_signed_orders", kind=kind, no_reason_days=policy.no_reason_days, quality_days=policy.quality_days))


def only_excluded_order(state: FlowState, data: FlowData, exclude: str) -> Reply:
    """The shopper said the one recent order is not the one: the older ones are past the window."""
    excluded = data.order(exclude)
    heading = order_heading(excluded, data.today) if excluded else render("utter_return_order_heading", label=exclude)
    text = render("utter_return_only_excluded_order", quality_days=data.policy.quality_days, kind=state.kind_word, heading=heading,
                  unsigned=unsigned_note(state, data, exclude))
    return Reply(text, [REPAIR_BUTTON])


# -------------------------------------------------------------------------------- outcome
def submitted(state: FlowState, created: Return, quote: Optional[RefundQuote], data: FlowData) -> Turn:
    """The return was created: its number, the pickup, the refund amount and the date it arrives by.

    Args:
        state: the flow's state.
        created: the return as the CRM stored it (the facts told come from it).
        quote: the quote it was created from; None when the return was found already created.
        data: the CRM data of the turn.
    """
    today, policy = data.today, data.policy
    order = data.order(str(created.get("order_id")))
    created_on = formatting.parse_datetime(str(created["created_at"])).date() if created.get("created_at") else today
    pickup = quote.pickup_date if quote else created_on + timedelta(days=policy.pickup_days)
    payer = quote.payer if quote else (policy_rules.shipping_payer(order, str(created.get("reason")), policy) if order else
                                       ("shopper" if created.get("return_shipping_paid_by") == "shopper" else "shop"))
    expected = formatting.parse_date(str(created["refund_expected_by"])) if created.get("refund_expected_by") else (
        quote.refund_expected_by if quote else None)
    method = str(created.get("refund_method") or (quote.payment_method if quote else ""))
    refund = int(created.get("refund_fen", quote.total_fen if quote else 0))
    text = render(
        "utter_return_submitted",
        return_id=created["return_id"],
        pickup_day=formatting.day(pickup, today),
        pickup_window=policy.pickup_window,
        payer=policy_rules.payer_text(payer),
        amount=formatting.money(refund),
        method=policy.payment_label(method),
        arrival=render("utter_return_submitted_arrival", day=formatting.day(expected, today)) if expected else "",
    )
    return Turn(state=replace(state, confirmed=True, return_id=str(created["return_id"]), invalid=0), reply=Reply(text))


def crm_refused(state: FlowState, message: str) -> Turn:
    """The CRM refused the return (the order changed meanwhile): say so and offer a human."""
    text = render("utter_return_crm_refused", message=message) if message else render("utter_return_crm_refused_plain")
    return Turn(state=state, reply=Reply(text, human_buttons()), end=True)


def crm_unavailable(state: FlowState, at_confirmation: bool) -> Turn:
    """The CRM did not answer: an honest message, what happens next, and a human."""
    if at_confirmation:
        text = render("utter_return_crm_unavailable_at_confirmation")
        return Turn(state=replace(state, confirmed=None), reply=Reply(text, human_buttons()))
    return Turn(state=state, reply=Reply(render("utter_return_crm_unavailable"), human_buttons()), end=True)
