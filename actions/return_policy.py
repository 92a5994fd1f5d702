"""The shop's return policy as pure functions over ``actions/policy/returns.yml``.

Every decision names the rule that made it (:class:`Decision`), so the assistant can tell the
shopper *why*: 7天无理由 from the sign-for date for eligible categories, 15 days for quality
problems, categories that are never returnable without a quality problem, personal care and
underwear only while unopened. Money is in fen (integers) throughout; the refund of a line is the
price paid for it with the order's coupon shared pro rata, so partial returns add up to exactly
what was paid. Dates are calendar dates in the shop's timezone; refund dates count working days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

import yaml

from actions import formatting
from bot import shop_calendar
from bot.shop_calendar import ShopCalendar, calendar_from_dict
from bot.texts import render

POLICY_FILE = Path(__file__).with_name("policy") / "returns.yml"

RETURNABLE_ORDER_STATUSES = frozenset({"delivered", "completed"})

# Rules a decision can name.
RULE_NO_REASON = "no_reason"
RULE_QUALITY = "quality"
RULE_NOT_SIGNED = "not_signed"
RULE_NOTHING_LEFT = "nothing_left"
RULE_NO_REASON_EXPIRED = "no_reason_expired"
RULE_QUALITY_EXPIRED = "quality_expired"
RULE_EXCLUDED_CATEGORY = "excluded_category"
RULE_OPENED = "opened"
RULE_PACKAGE_UNKNOWN = "package_unknown"

# Alternatives offered when a return is refused.
ALT_QUALITY_REASON = "quality_reason"
ALT_REPAIR = "repair"
ALT_HUMAN = "human"

PAYER_SHOP = "shop"
PAYER_SHOPPER = "shopper"
PAYER_INSURANCE = "insurance"

Order = Mapping[str, Any]
Item = Mapping[str, Any]


@dataclass(frozen=True)
class ReturnPolicy:
    """The return policy, as read from the policy file.

    Attributes:
        no_reason_days: last day of a no-reason return, counted from the sign-for date.
        quality_days: last day of a return for a quality problem, from the sign-for date.
        shop_at_fault_reasons: reason codes where the shop is at fault.
        reason_labels: Chinese label of each reason code, in the order buttons show them.
        never_without_quality: categories never returnable without a quality problem → label.
        sealed_only: categories returnable without a quality problem only while unopened → label.
        payer_shop_at_fault: who pays return shipping when the shop is at fault.
        payer_with_insurance: who pays it when the order has 运费险.
        payer_otherwise: who pays it otherwise.
        pickup_days: days from the request to the courier's pickup.
        pickup_window: the pickup time window, e.g. ``09:00–18:00``.
        handling_days: calendar days from the request to the refund being issued.
        refund_working_days: payment method → (earliest, latest) working days to arrive.
        default_refund_working_days: the same for payment methods not listed.
        payment_method_labels: payment method → Chinese label.
        calendar: the shop's working days, which refund dates count (:mod:`bot.shop_calendar`).
    """

    no_reason_days: int
    quality_days: int
    shop_at_fault_reasons: FrozenSet[str]
    reason_labels: Mapping[str, str]
    never_without_quality: Mapping[str, str]
    sealed_only: Mapping[str, str]
    payer_shop_at_fault: str
    payer_with_insurance: str
    payer_otherwise: str
    pickup_days: int
    pickup_window: str
    handling_days: int
    refund_working_days: Mapping[str, Tuple[int, int]]
    default_refund_working_days: Tuple[int, int]
    payment_method_labels: Mapping[str, str]
    calendar: ShopCalendar = field(default_factory=ShopCalendar)

    @property
    def reason_codes(self) -> Tuple[str, ...]:
        """Every reason code, in display order."""
        return tuple(self.reason_labels)

    def reason_label(self, reason: str) -> str:
        """Chinese label of a reason code."""
        return self.reason_labels.get(reason, reason)

    def payment_label(self, method: str) -> str:
        """Chinese label of a payment method."""
        return self.payment_method_labels.get(method, method)


def _span(value: Sequence[Any]) -> Tuple[int, int]:
    earliest, latest = (int(part) for part in value)
    return earliest, latest


def policy_from_dict(raw: Mapping[str, Any]) -> ReturnPolicy:
    """Build the policy from the parsed policy file."""
    windows, reasons, categories = raw["windows"], raw["reasons"], raw["categories"]
    shipping, pickup, refund = raw["return_shipping"], raw["pickup"], raw["refund"]
    labels = {str(code): str(label) for code, label in reasons["labels"].items()}
    missing = (set(reasons["shop_at_fault"]) | set(reasons["no_reason"])) ^ set(labels)
    if missing:
        raise ValueError(f"return policy: reason codes without a class or a label: {sorted(missing)}")
    return ReturnPolicy(
        no_reason_days=int(windows["no_reason_days"]),
        quality_days=int(windows["quality_days"]),
        shop_at_fault_reasons=frozenset(str(code) for code in reasons["shop_at_fault"]),
        reason_labels=labels,
        never_without_quality={str(k): str(v) for k, v in (categories.get("never_without_quality_problem") or {}).items()},
        sealed_only={str(k): str(v) for k, v in (categories.get("sealed_only") or {}).items()},
        payer_shop_at_fault=str(shipping["shop_at_fault"]),
        payer_with_insurance=str(shipping["with_insurance"]),
        payer_otherwise=str(shipping["otherwise"]),
        pickup_days=int(pickup["days_after_request"]),
        pickup_window=str(pickup["window"]),
        handling_days=int(refund["handling_days"]),
        refund_working_days={str(k): _span(v) for k, v in refund["working_days_by_payment_method"].items()},
        default_refund_working_days=_span(refund["default_working_days"]),
        payment_method_labels={str(k): str(v) for k, v in (refund.get("payment_method_labels") or {}).items()},
        calendar=calendar_from_dict(raw.get("calendar")),
    )


def load_policy(path: Path = POLICY_FILE) -> ReturnPolicy:
    """Read the policy file."""
    return policy_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_policy() -> ReturnPolicy:
    """The shipped policy, read once."""
    return load_policy()


# ------------------------------------------------------------------------------- calendar
def is_working_day(day: date, policy: ReturnPolicy) -> bool:
    """Whether refunds are processed on ``day`` (the policy's shop calendar)."""
    return policy.calendar.is_working_day(day)


def add_working_days(start: date, days: int, policy: ReturnPolicy) -> date:
    """The date ``days`` working days after ``start`` in the policy's shop calendar (:func:`bot.shop_calendar.add_working_days`)."""
    return shop_calendar.add_working_days(start, days, policy.calendar)


# --------------------------------------------------------------------------- eligibility
def is_shop_at_fault(reason: str, policy: ReturnPolicy) -> bool:
    """Whether a return for ``reason`` is the shop's (or its courier's) fault."""
    return reason in policy.shop_at_fault_reasons


def signed_date(order: Order) -> Optional[date]:
    """The date the shopper signed for the order, in the shop's timezone (None before that)."""
    signed = order.get("signed_at")
    if not signed or order.get("status") not in RETURNABLE_ORDER_STATUSES:
        return None
    return formatting.parse_datetime(str(signed)).date()


def remaining_quantity(item: Item) -> int:
    """How many units of an order line are not in an active return yet."""
    return max(0, int(item.get("quantity", 0)) - int(item.get("returned_quantity", 0) or 0))


def needs_package_check(item: Item, reason: Optional[str], policy: ReturnPolicy) -> bool:
    """Whether eligibility depends on the item being unopened (no-reason return of a sealed-only category)."""
    return item.get("category") in policy.sealed_only and (reason is None or not is_shop_at_fault(reason, policy))


@dataclass(frozen=True)
class Decision:
    """Whether one order line may be returned, and the rule that decided it.

    Attributes:
        eligible: True when the return is allowed.
        rule: the deciding rule (``RULE_*``).
        line_id: the order line.
        product_name: its product name.
        category_label: the label of the category rule that applied, if any.
        signed_on: the sign-for date, if signed.
        deadline: the last day the deciding window allows, if a window applied.
        day_number: days since the sign-for date (0 on the day itself).
        quality_deadline: the last day of the quality window, if signed.
        alternatives: what to offer instead when refused (``ALT_*``).
        note: the CRM's own wording for a product that is not returnable, if any.
    """

    eligible: bool
    rule: str
    line_id: int
    product_name: str
    category_label: Optional[str] = None
    signed_on: Optional[date] = None
    deadline: Optional[date] = None
    day_number: Optional[int] = None
    quality_deadline: Optional[date] = None
    alternatives: Tuple[str, ...] = ()
    note: Optional[str] = None


def decide(
    order: Order,
    item: Item,
    reason: str,
    today: date,
    policy: ReturnPolicy,
    opened: Optional[bool] = None,
) -> Decision:
    """Decide whether ``item`` of ``order`` may be returned for ``reason`` today.

    Args:
        order: the order as the CRM returns it.
        item: one of its lines.
        reason: a reason code.
        today: today's date in the shop's timezone.
        policy: the return policy.
        opened: whether the item was opened; needed for sealed-only categories on a no-reason return.

    Returns:
        The decision and the rule that made it. Checked in this order: signed for, quantity
        left, then for a quality problem the quality window; for a no-reason return the
        category, the unopened condition, the product's own flag, then the 7-day window.
    """
    name = str(item.get("product_name") or render("utter_return_unnamed_product"))
    base: Dict[str, Any] = {"line_id": int(item.get("line_id", 0)), "product_name": name}
    signed = signed_date(order)
    if signed is None:
        return Decision(False, RULE_NOT_SIGNED, alternatives=(ALT_HUMAN,), **base)
    if remaining_quantity(item) <= 0:
        return Decision(False, RULE_NOTHING_LEFT, signed_on=signed, alternatives=(ALT_HUMAN,), **base)
    day_number = (today - signed).days
    quality_deadline = signed + timedelta(days=policy.quality_days)
    dated = {**base, "signed_on": signed, "day_number": day_number, "quality_deadline": quality_deadline}
    quality_alternative = (ALT_QUALITY_REASON,) if today <= quality_deadline else (ALT_REPAIR,)

    if is_shop_at_fault(reason, policy):
        if today <= quality_deadline:
            return Decision(True, RULE_QUALITY, deadline=quality_deadline, **dated)
        return Decision(False, RULE_QUALITY_EXPIRED, deadline=quality_deadline, alternatives=(ALT_REPAIR, ALT_HUMAN), **dated)

    category = str(item.get("category", ""))
    if category in policy.never_without_quality:
        return Decision(
            False, RULE_EXCLUDED_CATEGORY, category_label=policy.never_without_quality[category],
            alternatives=quality_alternative + (ALT_HUMAN,), **dated,
        )
    if category in policy.sealed_only:
        label = policy.sealed_only[category]
        if opened is None:
            return Decision(False, RULE_PACKAGE_UNKNOWN, category_label=label, **dated)
        if opened:
            return Decision(False, RULE_OPENED, category_label=label, alternatives=quality_alternative + (ALT_HUMAN,), **dated)
    elif item.get("no_reason_returnable") is False:
        return Decision(
            False, RULE_EXCLUDED_CATEGORY, category_label=str(item.get("category_name") or render("utter_return_rule_this_product")),
            alternatives=quality_alternative + (ALT_HUMAN,), note=item.get("not_returnable_reason"), **dated,
        )
    no_reason_deadline = signed + timedelta(days=policy.no_reason_days)
    if today <= no_reason_deadline:
        return Decision(True, RULE_NO_REASON, deadline=no_reason_deadline, **dated)
    return Decision(False, RULE_NO_REASON_EXPIRED, deadline=no_reason_deadline, alternatives=quality_alternative + (ALT_HUMAN,), **dated)


def order_window_closed(order: Order, today: date, policy: ReturnPolicy) -> bool:
    """True when even a quality problem can no longer be returned (past the quality window)."""
    signed = signed_date(order)
    return signed is not None and today > signed + timedelta(days=policy.quality_days)


def _day_phrase(day_number: int) -> str:
    if day_number == 0:
        return render("utter_return_rule_signed_today")
    return render("utter_return_rule_signed_days_ago", day_number=day_number)


_RULE_RESPONSES = {
    RULE_NO_REASON: "utter_return_rule_no_reason",
    RULE_QUALITY: "utter_return_rule_quality",
    RULE_NOT_SIGNED: "utter_return_rule_not_signed",
    RULE_NOTHING_LEFT: "utter_return_rule_nothing_left",
    RULE_QUALITY_EXPIRED: "utter_return_rule_quality_expired",
    RULE_NO_REASON_EXPIRED: "utter_return_rule_no_reason_expired",
    RULE_EXCLUDED_CATEGORY: "utter_return_rule_excluded_category",
    RULE_OPENED: "utter_return_rule_opened",
    RULE_PACKAGE_UNKNOWN: "utter_return_rule_package_unknown",
}
"""The response (data/responses/returns.yml) that tells each rule."""


def explain(decision: Decision, policy: ReturnPolicy, today: Optional[date] = None, kind: Optional[str] = None) -> str:
    """The rule behind a decision, as one sentence with its dates.

    Args:
        decision: the decision.
        policy: the return policy (for the window lengths).
        today: today's date, so 今天/明天 are written where they apply.
        kind: 退货 or 换货 as the shopper reads it (退货 when not given).
    """
    default_category = ("utter_return_rule_this_product" if decision.rule == RULE_EXCLUDED_CATEGORY
                        else "utter_return_rule_this_kind_of_product")
    return render(
        _RULE_RESPONSES.get(decision.rule, "utter_return_rule_other"),
        product=decision.product_name,
        kind=kind or render("utter_return_kind_return"),
        signed=formatting.day(decision.signed_on, today) if decision.signed_on else "",
        deadline=formatting.day(decision.deadline, today) if decision.deadline else "",
        days=_day_phrase(decision.day_number) if decision.day_number is not None else "",
        category=decision.category_label or render(default_category),
        no_reason_days=policy.no_reason_days,
        quality_days=policy.quality_days,
    )


def explain_alternatives(decision: Decision, policy: ReturnPolicy, today: Optional[date] = None) -> str:
    """What the shopper can do instead of a refused return, with the dates that apply."""
    parts: List[str] = []
    if ALT_QUALITY_REASON in decision.alternatives and decision.quality_deadline:
        parts.append(render("utter_return_alternative_quality", day=formatting.day(decision.quality_deadline, today)))
    if ALT_REPAIR in decision.alternatives:
        parts.append(render("utter_return_alternative_repair"))
    if ALT_HUMAN in decision.alternatives:
        parts.append(render("utter_return_alternative_human"))
    return "".join(parts)


# ------------------------------------------------------------------------------- money
def share_coupon(line_totals: Sequence[int], coupon_fen: int) -> List[int]:
    """Share an order-level discount over its lines pro rata, summing exactly to ``coupon_fen``.

    Each line first gets the floor of its exact share; the fen left over go one each to the lines
    with the largest remainders (earlier lines first on ties). No line gets more than its total.

    Args:
        line_totals: list price of each line (unit price × quantity), in fen.
        coupon_fen: the discount to share, in fen.
    """
    subtotal = sum(line_totals)
    if subtotal <= 0 or coupon_fen <= 0:
        return [0 for _ in line_totals]
    coupon_fen = min(coupon_fen, subtotal)
    shares = [coupon_fen * total // subtotal for total in line_totals]
    remainders = sorted(range(len(line_totals)), key=lambda index: (-(coupon_fen * line_totals[index] % subtotal), index))
    for index in remainders[: coupon_fen - sum(shares)]:
        shares[index] += 1
    return shares


def line_paid_amounts(order: Order) -> Dict[int, int]:
    """What was paid for each order line (list price minus its share of the coupon), in fen.

    The CRM's own per-line ``paid_fen`` is used when every line has one and they add up to the
    subtotal minus the coupon; otherwise the coupon is shared with :func:`share_coupon`.
    """
    items = list(order.get("items") or [])
    totals = [int(item.get("unit_price_fen", 0)) * int(item.get("quantity", 0)) for item in items]
    coupon = int(order.get("coupon_discount_fen", 0) or 0)
    given = [item.get("paid_fen") for item in items]
    if items and all(isinstance(value, int) for value in given) and sum(given) == sum(totals) - min(coupon, sum(totals)):  # type: ignore[arg-type]
        return {int(item["line_id"]): int(value) for item, value in zip(items, given, strict=True)}  # type: ignore[arg-type]
    shares = share_coupon(totals, coupon)
    return {int(item["line_id"]): total - share for item, total, share in zip(items, totals, shares, strict=True)}


def refund_for_quantity(line_paid_fen: int, line_quantity: int, already_returned: int, quantity: int) -> int:
    """The refund for ``quantity`` more units of a line, so that all partial returns sum exactly.

    The first n units of a line are worth ``floor(paid × n / quantity)``; the last unit takes what
    is left. A return of units ``already_returned+1 … already_returned+quantity`` is the difference.

    Raises:
        ValueError: more units than the line has left.
    """
    if quantity < 0 or already_returned < 0 or already_returned + quantity > line_quantity:
        raise ValueError(f"cannot return {quantity} of {line_quantity} with {already_returned} already returned")

    def worth(units: int) -> int:
        return line_paid_fen if units >= line_quantity else line_paid_fen * units // line_quantity

    return worth(already_returned + quantity) - worth(already_returned)


def shipping_payer(order: Order, reason: str, policy: ReturnPolicy) -> str:
    """Who pays the return shipping: ``shop`` (shop at fault), ``insurance`` (运费险) or ``shopper``."""
    if is_shop_at_fault(reason, policy):
        return policy.payer_shop_at_fault
    if order.get("has_shipping_insurance"):
        return policy.payer_with_insurance
    return policy.payer_otherwise


def crm_shipping_payer(payer: str) -> str:
    """The CRM's ``return_shipping_paid_by``: the shopper, or the shop's side (shop or insurance)."""
    return PAYER_SHOPPER if payer == PAYER_SHOPPER else PAYER_SHOP


def refund_dates(today: date, payment_method: str, policy: ReturnPolicy) -> Tuple[date, date]:
    """When the refund is issued and the latest date it arrives for ``payment_method``."""
    issued = today + timedelta(days=policy.handling_days)
    _, latest = policy.refund_working_days.get(payment_method, policy.default_refund_working_days)
    return issued, add_working_days(issued, latest, policy)


def refunds_instantly(payment_method: str, policy: ReturnPolicy) -> bool:
    """True when a refund to ``payment_method`` arrives as soon as it is issued (balance, points)."""
    _, latest = policy.refund_working_days.get(payment_method, policy.default_refund_working_days)
    return latest == 0


def refund_speed(payment_method: str, policy: ReturnPolicy) -> str:
    """立即到账 or 1–3 个工作日到账."""
    earliest, latest = policy.refund_working_days.get(payment_method, policy.default_refund_working_days)
    if latest == 0:
        return render("utter_return_refund_instant")
    if earliest == latest:
        return render("utter_return_refund_within", latest=latest)
    return render("utter_return_refund_between", earliest=earliest, latest=latest)


@dataclass(frozen=True)
class RefundLine:
    """One returned line in a refund quote.

    Attributes:
        line_id: the order line.
        product_name: its product name.
        quantity: units returned.
        list_fen: unit price × quantity.
        refund_fen: what is refunded for these units.
    """

    line_id: int
    product_name: str
    quantity: int
    list_fen: int
    refund_fen: int

    @property
    def coupon_fen(self) -> int:
        """The part of the coupon these units carried (not refunded)."""
        return self.list_fen - self.refund_fen


@dataclass(frozen=True)
class RefundQuote:
    """What a return would refund, who pays the return shipping, and when the money arrives.

    Attributes:
        lines: the returned lines.
        shipping_fen: the original shipping fee refunded (shop at fault only).
        total_fen: the refund.
        payer: who pays the return shipping (``shop``, ``insurance`` or ``shopper``).
        payment_method: where the refund goes (the order's payment method).
        pickup_date: the courier's pickup date.
        pickup_window: the pickup time window.
        refund_issued_by: the date the refund is issued by.
        refund_expected_by: the latest date the money arrives.
    """

    lines: Tuple[RefundLine, ...]
    shipping_fen: int
    total_fen: int
    payer: str
    payment_method: str
    pickup_date: date
    pickup_window: str
    refund_issued_by: date
    refund_expected_by: date
    capped: bool = field(default=False)

    @property
    def items_fen(self) -> int:
        """The refund for the items alone."""
        return sum(line.refund_fen for line in self.lines)

    @property
    def coupon_fen(self) -> int:
        """The coupon share of the returned items (deducted from their list price)."""
        return sum(line.coupon_fen for line in self.lines)


def _is_active(ret: Mapping[str, Any]) -> bool:
    return ret.get("status") not in ("rejected", "cancelled")


def quote_refund(
    order: Order,
    lines: Sequence[Tuple[int, int]],
    reason: str,
    today: date,
    policy: ReturnPolicy,
    previous_returns: Sequence[Mapping[str, Any]] = (),
) -> RefundQuote:
    """The refund for returning ``lines`` of ``order`` for ``reason`` today.

    Args:
        order: the order as the CRM returns it (``returned_quantity`` per line counts units in
            active returns already).
        lines: (line id, quantity) pairs.
        reason: a reason code.
        today: today's date in the shop's timezone.
        policy: the return policy.
        previous_returns: the order's earlier returns, to refund the shipping fee only once and
            never more than the order has left to refund.

    Raises:
        ValueError: a line that is not in the order, or more units than it has left.
    """
    items = {int(item["line_id"]): item for item in order.get("items") or []}
    paid = line_paid_amounts(order)
    quoted: List[RefundLine] = []
    for line_id, quantity in lines:
        item = items.get(int(line_id))
        if item is None:
            raise ValueError(f"order {order.get('order_id')} has no line {line_id}")
        already = int(item.get("returned_quantity", 0) or 0)
        refund = refund_for_quantity(paid[int(line_id)], int(item["quantity"]), already, int(quantity))
        quoted.append(
            RefundLine(int(line_id), str(item.get("product_name", "")), int(quantity),
                       int(item.get("unit_price_fen", 0)) * int(quantity), refund)
        )
    active = [ret for ret in previous_returns if _is_active(ret)]
    shipping = 0
    if is_shop_at_fault(reason, policy) and not any(is_shop_at_fault(str(ret.get("reason")), policy) for ret in active):
        shipping = int(order.get("shipping_fee_fen", 0) or 0)
    total = sum(line.refund_fen for line in quoted) + shipping
    left = int(order.get("paid_fen", total)) - sum(int(ret.get("refund_fen", 0)) for ret in active)
    capped = total > left
    method = str(order.get("payment_method", ""))
    issued, expected = refund_dates(today, method, policy)
    return RefundQuote(
        lines=tuple(quoted),
        shipping_fen=shipping,
        total_fen=max(0, min(total, left)),
        payer=shipping_payer(order, reason, policy),
        payment_method=method,
        pickup_date=today + timedelta(days=policy.pickup_days),
        pickup_window=policy.pickup_window,
        refund_issued_by=issued,
        refund_expected_by=expected,
        capped=capped,
    )


def payer_text(payer: str) -> str:
    """Who pays the return shipping, for the shopper."""
    if payer == PAYER_SHOP:
        return render("utter_return_payer_shop")
    if payer == PAYER_INSURANCE:
        return render("utter_return_payer_insurance")
    return render("utter_return_payer_shopper")
