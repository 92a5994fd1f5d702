"""The return and exchange conversation as plain functions: what the shopper's answer changes and
which question comes next.

The flow runs as the Rasa form ``return_form`` whose slots are :data:`REQUIRED_SLOTS`: which order
→ which items → the reason → (for personal care and underwear on a no-reason return) whether the
item is still sealed → the shopper's confirmation of a summary. :func:`advance` takes the flow's
state, the shopper's latest answer and the CRM data the shopper may see, and returns the new state
and the reply; it never talks to the CRM. :mod:`actions.returns` does the talking.

The parts: :mod:`actions.return_state` (the slots and the CRM data), :mod:`actions.return_answers`
(what a message means), :mod:`actions.return_replies` (each question and outcome, worded in
``data/responses/returns.yml``) and :mod:`actions.return_policy` (the rules). The names callers
use are importable from here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from actions import return_policy as policy_rules
from actions.replies import human_buttons
from actions.return_answers import Answer, parse_ordinal, parse_quantity, read_answer, reason_code
from actions.return_policy import Decision, RefundQuote
from actions.return_replies import (
    STOP_BUTTON,
    Reply,
    Turn,
    anonymous_other_order,
    ask_anonymous_order,
    ask_lines,
    ask_order,
    ask_package,
    ask_reason,
    crm_refused,
    crm_unavailable,
    exchange_reply,
    no_candidates,
    not_your_order,
    offer_human,
    only_excluded_order,
    order_button,
    order_label,
    order_problem,
    product_name,
    refusal,
    start_text,
    submitted,
    summary,
)
from actions.return_state import (
    FLOW_SLOTS,
    FORM_NAME,
    KIND_EXCHANGE,
    KIND_RETURN,
    MAX_INVALID_ANSWERS,
    PACKAGE_NOT_REQUIRED,
    PACKAGE_OPENED,
    PACKAGE_SEALED,
    SLOT_CONFIRMED,
    SLOT_INVALID,
    SLOT_KIND,
    SLOT_LINES,
    SLOT_ORDER,
    SLOT_PACKAGE,
    SLOT_REASON,
    SLOT_RETURN_ID,
    FlowData,
    FlowState,
    Lines,
    Order,
    Return,
    candidate_orders,
    remaining_items,
)
from bot.nlu.catalogue import match_items
from bot.nlu.dates import DateRange, resolve_date
from bot.texts import render

__all__ = [
    "FLOW_SLOTS",
    "FORM_NAME",
    "KIND_EXCHANGE",
    "KIND_RETURN",
    "MAX_INVALID_ANSWERS",
    "PACKAGE_NOT_REQUIRED",
    "PACKAGE_OPENED",
    "PACKAGE_SEALED",
    "SLOT_CONFIRMED",
    "SLOT_INVALID",
    "SLOT_KIND",
    "SLOT_LINES",
    "SLOT_ORDER",
    "SLOT_PACKAGE",
    "SLOT_REASON",
    "SLOT_RETURN_ID",
    "Answer",
    "FlowData",
    "FlowState",
    "Reply",
    "Turn",
    "advance",
    "ask_anonymous_order",
    "crm_refused",
    "crm_unavailable",
    "not_your_order",
    "offer_human",
    "parse_ordinal",
    "parse_quantity",
    "quote_for",
    "read_answer",
    "reason_code",
    "resume",
    "start_text",
    "submitted",
    "submitted_already",
    "verifying",
]


def _find_lines(order: Order, mentions: Sequence[str]) -> Tuple[List[Mapping[str, Any]], List[Mapping[str, Any]]]:
    """Lines of ``order`` the mentions name: (with units left, fully returned already)."""
    items = list(order.get("items") or [])
    found: List[Mapping[str, Any]] = []
    for mention in mentions:
        if "全部" in mention:
            found += items
            continue
        exact = [item for item in items if _compact(str(item.get("product_name", ""))) == _compact(mention)]
        found += exact or list(match_items(items, mention))
    unique = {int(item["line_id"]): item for item in found}
    ordered = [unique[key] for key in sorted(unique)]
    return ([item for item in ordered if policy_rules.remaining_quantity(item) > 0],
            [item for item in ordered if policy_rules.remaining_quantity(item) <= 0])


def _compact(name: str) -> str:
    """A product name without spaces (the NLU drops spaces between Chinese characters)."""
    return re.sub(r"\s+", "", name).lower()


def _all_lines(items: Sequence[Mapping[str, Any]]) -> Lines:
    return tuple((int(item["line_id"]), policy_rules.remaining_quantity(item)) for item in items)


def _names(items: Sequence[Mapping[str, Any]]) -> str:
    return "、".join(product_name(item) for item in items)


@dataclass
class _Work:
    """Scratch state of one turn.

    Attributes:
        state: the state being built.
        activation: True on the message that started the flow.
        notes: lines said before the question.
        used: True when the message contributed something to the flow.
        exclude: an order the shopper said is not the one.
        problem: why the order the shopper named cannot be used (said before the question).
        prompt: a question that replaces the usual one.
        end: True to close the form.
        submit: True to create the return now.
        order_told: True when the shopper was just told which order this is.
    """

    state: FlowState
    activation: bool = False
    notes: List[str] = field(default_factory=list)
    used: bool = False
    exclude: Optional[str] = None
    problem: Optional[Reply] = None
    prompt: Optional[Reply] = None
    end: bool = False
    submit: bool = False
    order_told: bool = False


_EXCHANGE_WORDS = re.compile(r"换货|换(个|一个|成|到)?(尺码|码|大|小|颜色|色|款|新的|新)")
_RETURN_WORDS = re.compile(r"退货|退款|退了|退掉|还是退|改为退")


def _apply_kind(work: _Work, answer: Answer) -> None:
    """Switch between return and exchange only when the shopper clearly asks for the other one."""
    if answer.other_order:
        return
    wanted = None
    if answer.intent == "exchange_request" and (answer.text.startswith("/") or _EXCHANGE_WORDS.search(answer.text)):
        wanted = KIND_EXCHANGE
    elif answer.intent == "return_request" and (answer.text.startswith("/") or _RETURN_WORDS.search(answer.text)):
        wanted = KIND_RETURN
    if wanted and wanted != work.state.kind:
        work.used = True
        work.state = replace(work.state, kind=wanted, confirmed=None)


def _apply_order(work: _Work, answer: Answer, data: FlowData, step: Optional[str]) -> None:
    state = work.state
    if answer.order_id and answer.order_id != state.order_id:
        order = data.order(answer.order_id)
        if order is None:
            work.notes.append(not_your_order(answer.order_id))
            return
        work.used = True
        problem = order_problem(order, state, data)
        if problem is not None:
            work.state = state.with_order(None)
            work.exclude = answer.order_id
            work.problem = problem
            return
        if state.order_id:
            work.notes.append(render("utter_return_switched_order", order_id=answer.order_id))
        work.state = state.with_order(answer.order_id)
        return
    if answer.other_order or (answer.intent == "deny" and step in (SLOT_ORDER, SLOT_LINES)):
        work.used = True
        work.exclude = state.order_id
        work.state = state.with_order(None)
        if data.anonymous:
            work.prompt = Reply(anonymous_other_order(state.kind_word))
        return
    if step == SLOT_ORDER and not data.anonymous:
        candidates = candidate_orders(data)
        chosen: Optional[Order] = None
        if answer.ordinal is not None and -len(candidates) <= answer.ordinal < len(candidates):
            chosen = candidates[answer.ordinal]
        elif answer.sign_day is not None:
            named = resolve_date(answer.sign_day, data.today)
            same_day = [order for order in candidates if named and _signed_within(order, named)]
            chosen = same_day[0] if len(same_day) == 1 else None
        if chosen is not None:
            work.used = True
            work.state = state.with_order(str(chosen["order_id"]))


def _signed_within(order: Order, days: DateRange) -> bool:
    signed = policy_rules.signed_date(order)
    return signed is not None and days.start <= signed <= days.end


def _apply_products(work: _Work, answer: Answer, data: FlowData) -> None:
    if not answer.products and not answer.all_items:
        return
    state = work.state
    order = data.order(state.order_id)
    if order is not None:
        found, gone = (remaining_items(order), []) if answer.all_items else _find_lines(order, answer.products)
        if found:
            work.used = True
            lines = _all_lines(found)
            if lines != state.lines:
                work.state = state.with_lines(lines)
            return
        if gone:
            work.used = True
            work.notes.append(render("utter_return_already_returned", products=_names(gone)))
            return
    if not answer.products:
        return
    matches = []
    for candidate in candidate_orders(data, exclude=state.order_id):
        found, _ = _find_lines(candidate, answer.products)
        if found:
            matches.append((candidate, found))
    if len(matches) == 1:
        candidate, found = matches[0]
        work.used = True
        if order is not None:
            work.notes.append(render("utter_return_moved_to_order", products=_names(found), order_id=candidate["order_id"]))
        work.state = replace(state.with_order(str(candidate["order_id"])).with_lines(_all_lines(found)), reason=state.reason)
    elif len(matches) > 1:
        work.used = True
        work.state = state.with_order(None)
        work.prompt = Reply(
            render("utter_return_which_order_has_product", count=len(matches), product=answer.products[0]),
            [order_button(candidate) for candidate, _ in matches],
        )
    elif order is not None:
        work.notes.append(render("utter_return_product_not_in_order", order_id=order["order_id"], product=answer.products[0]))


def _apply_line_choice(work: _Work, answer: Answer, data: FlowData, step: Optional[str]) -> None:
    state = work.state
    order = data.order(state.order_id)
    if order is None:
        return
    items = remaining_items(order)
    if step == SLOT_LINES and answer.ordinal is not None and state.lines is None and -len(items) <= answer.ordinal < len(items):
        work.used = True
        work.state = state = state.with_lines(_all_lines([items[answer.ordinal]]))
    if answer.quantity is None or not state.lines or len(state.lines) != 1:
        return
    line_id, current = state.lines[0]
    item = next(item for item in order.get("items") or [] if int(item["line_id"]) == line_id)
    left = policy_rules.remaining_quantity(item)
    work.used = True
    if answer.quantity < 1 or answer.quantity > left:
        work.notes.append(render("utter_return_too_many_units", product=product_name(item), left=left))
    elif answer.quantity != current:
        work.state = replace(state, lines=((line_id, answer.quantity),), confirmed=None)


def _apply_reason_and_package(work: _Work, answer: Answer, step: Optional[str]) -> None:
    state = work.state
    reason = answer.reason
    if reason is None and (step == SLOT_REASON or work.activation or "原因" in answer.text):
        reason = answer.text_reason
    if reason:
        work.used = True
        if reason != state.reason:
            work.state = state.with_reason(reason)
        return
    if step == SLOT_PACKAGE:
        package = answer.package or {"affirm": PACKAGE_SEALED, "deny": PACKAGE_OPENED}.get(answer.intent)
        if package:
            work.used = True
            work.state = replace(state, package=package)


def _autofill(work: _Work, data: FlowData) -> None:
    state = work.state
    if state.order_id is None and work.problem is None and work.prompt is None and work.exclude is None:
        if data.anonymous and work.activation and data.orders:
            only = data.orders[0]
            problem = order_problem(only, state, data)
            if problem is not None:
                work.prompt = Reply(problem.text + "\n" + anonymous_other_order(state.kind_word), problem.buttons)
            else:
                work.state = state = state.with_order(str(only["order_id"]))
        elif not data.anonymous:
            candidates = candidate_orders(data)
            if len(candidates) == 1:
                only = candidates[0]
                work.notes.append(render("utter_return_only_candidate", kind=state.kind_word, order=order_label(only, data.today)))
                work.order_told = True
                work.state = state = state.with_order(str(only["order_id"]))
    order = data.order(state.order_id)
    if order is not None and state.lines is None:
        items = remaining_items(order)
        if len(items) == 1:
            work.state = state.with_lines(_all_lines(items))


def _decisions(state: FlowState, order: Order, data: FlowData) -> List[Decision]:
    assert state.lines is not None and state.reason is not None
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    opened = {PACKAGE_OPENED: True, PACKAGE_SEALED: False}.get(state.package or "")
    return [policy_rules.decide(order, items[line], state.reason, data.today, data.policy, opened)
            for line, _ in state.lines if line in items]


def quote_for(state: FlowState, order: Order, data: FlowData) -> RefundQuote:
    """The refund quote for the state's lines and reason."""
    assert state.lines is not None and state.reason is not None
    return policy_rules.quote_refund(order, state.lines, state.reason, data.today, data.policy,
                                     data.order_returns(str(order["order_id"])))


def _ask_for_order(work: _Work, data: FlowData) -> Reply:
    state = work.state
    if work.prompt is not None:
        return work.prompt
    if data.anonymous:
        ask = Reply(anonymous_other_order(state.kind_word)) if work.problem else ask_order(state, data)
        return _with_problem(work, ask)
    candidates = candidate_orders(data, work.exclude)
    if candidates:
        return _with_problem(work, ask_order(state, data, work.exclude))
    work.end = True
    if work.problem is not None:
        return work.problem
    if work.exclude is not None:
        return only_excluded_order(state, data, work.exclude)
    return no_candidates(state, data)


def _with_problem(work: _Work, ask: Reply) -> Reply:
    if work.problem is None:
        return ask
    return Reply(work.problem.text + "\n" + ask.text, list(work.problem.buttons) + list(ask.buttons))


def _question(work: _Work, data: FlowData, confirm_answer: Optional[str]) -> Reply:
    """Fill what follows from the state, judge eligibility, and ask the next question."""
    state = work.state
    order = data.order(state.order_id)
    if order is None:
        return _ask_for_order(work, data)
    if state.lines is None:
        return ask_lines(state, order, data, named=not work.order_told)
    if state.reason is None:
        return ask_reason(state, order, data)
    decisions = _decisions(state, order, data)
    unknown = [decision for decision in decisions if decision.rule == policy_rules.RULE_PACKAGE_UNKNOWN]
    if unknown and state.package is None:
        return ask_package(state, unknown[0], data)
    if state.package is None:
        work.state = state = replace(state, package=PACKAGE_NOT_REQUIRED)
    refused = [decision for decision in decisions if not decision.eligible]
    allowed = [decision for decision in decisions if decision.eligible]
    if refused and not allowed:
        work.state = replace(state, reason=None, package=None, confirmed=None)
        return refusal(state, order, refused, data)
    if refused:
        kind = state.kind_word
        explanations = "".join(policy_rules.explain(decision, data.policy, data.today, kind) for decision in refused)
        work.notes.append(render("utter_return_partly_refused", explanations=explanations, kind=kind))
        kept_ids = {decision.line_id for decision in allowed}
        work.state = state = replace(state, lines=tuple(line for line in state.lines or () if line[0] in kept_ids))
    quote = quote_for(state, order, data)
    if state.kind == KIND_EXCHANGE:
        work.end = True
        return exchange_reply(state, order, quote, allowed, data)
    if confirm_answer == "affirm":
        work.submit = True
        return Reply("")
    if confirm_answer == "deny":
        return Reply(render("utter_return_not_submitted_yet"), [STOP_BUTTON])
    return summary(state, order, quote, allowed, data)


def advance(state: FlowState, answer: Answer, data: FlowData, *, activation: bool = False) -> Turn:
    """One turn of the flow: apply the shopper's answer, then ask the next question.

    Args:
        state: the form's slots before this message (ignored on activation: a new flow starts).
        answer: the shopper's message.
        data: the CRM data the shopper may see.
        activation: True when the message started the flow.

    Returns:
        The new state, the reply, and whether to end the form or submit the return.
    """
    if activation:
        state = FlowState(kind=KIND_EXCHANGE if answer.intent == "exchange_request" else KIND_RETURN)
    step = state.next_slot()
    work = _Work(state, activation=activation)
    if not activation:
        _apply_kind(work, answer)
    _apply_order(work, answer, data, step)
    _apply_products(work, answer, data)
    _apply_line_choice(work, answer, data, step)
    _apply_reason_and_package(work, answer, step)
    confirm_answer = None
    if step == SLOT_CONFIRMED and work.state == state and answer.intent in ("affirm", "deny"):
        confirm_answer = answer.intent
        work.used = True
    _autofill(work, data)
    if confirm_answer == "affirm":
        existing = submitted_already(work.state, data)
        if existing is not None:
            return submitted(work.state, existing, None, data)
    reply = _question(work, data, confirm_answer)
    if work.submit:
        return Turn(state=replace(work.state, invalid=0), reply=reply, submit=True)
    invalid = 0 if (work.used or activation) else state.invalid + 1
    texts = ([render("utter_return_not_understood")] if invalid else []) + work.notes + [reply.text]
    buttons = list(reply.buttons)
    if invalid >= MAX_INVALID_ANSWERS:
        texts.append(offer_human())
        buttons += [button for button in human_buttons() if button not in buttons]
    if activation and not work.end:
        texts.insert(0, start_text(work.state.kind_word))
    return Turn(state=replace(work.state, invalid=invalid), reply=Reply("\n".join(t for t in texts if t), buttons), end=work.end)


def resume(state: FlowState, data: FlowData) -> Turn:
    """Ask the open question again after the shopper asked something else in between."""
    work = _Work(state)
    reply = _question(work, data, None)
    prefix = render("utter_return_resume", kind=state.kind_word)
    return Turn(state=work.state, reply=Reply(prefix + reply.text, reply.buttons), end=work.end)


def verifying(state: FlowState, ask: Reply, locked: bool, activation: bool, gave_something: bool) -> Turn:
    """A turn of an anonymous shopper not yet verified: the verification's question (``ask``).

    Args:
        state: the flow's state.
        ask: what the verification says (a question, or why it is locked).
        locked: True when verification is locked for now (too many attempts): the form ends.
        activation: True when the message started the flow.
        gave_something: True when the message carried an order number or phone tail.
    """
    invalid = 0 if (activation or gave_something) else state.invalid + 1
    texts = [ask.text]
    buttons = list(ask.buttons)
    if activation:
        texts.insert(0, start_text(state.kind_word))
    if invalid >= MAX_INVALID_ANSWERS and not locked:
        texts.append(offer_human())
        buttons += human_buttons()
    return Turn(state=replace(state, invalid=invalid), reply=Reply("\n".join(texts), buttons), end=locked)


def submitted_already(state: FlowState, data: FlowData) -> Optional[Return]:
    """An active return of exactly these lines for this reason (a repeated 「确认」), if any."""
    if state.order_id is None or state.lines is None or state.reason is None:
        return None
    for ret in data.order_returns(state.order_id):
        lines = tuple(sorted((int(item["line_id"]), int(item["quantity"])) for item in ret.get("items") or []))
        if ret.get("status") not in ("rejected", "cancelled") and lines == tuple(sorted(state.lines)) and ret.get("reason") == state.reason:
            return ret
    return None


