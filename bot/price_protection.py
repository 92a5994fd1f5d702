"""Price protection (价保): whether an order's lines get the difference back, and how much, by when.

One pure rule over an order as the CRM serves it (``GET /api/orders/{id}``: ``paid_at``,
``payment_method`` and per item ``paid_fen``, ``quantity``, ``returned_quantity``,
``current_price_fen`` and ``current_price_kind``) and the shop's price-protection policy
(``crm/policy/price_protection.yml``). The assistant applies it before it files a claim and the
CRM applies it again when it writes one, so both refuse for the same reason.

A line is protected when the order was paid no longer than ``window_days`` ago, the same item's
current price is below what was paid per unit (coupon share included), the current price is not
of a kind the policy excludes (秒杀价, 拼团价, ...), the line was not claimed before and some of it
was not returned. The difference goes back to the payment method of the order, within the
working days the policy gives that method.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple

from bot.shop_calendar import ShopCalendar, add_working_days

NOT_PAID = "not_paid"
WINDOW_PASSED = "window_passed"
ALREADY_CLAIMED = "already_claimed"
EXCLUDED_PRICE_KIND = "excluded_price_kind"
NO_PRICE_DROP = "no_price_drop"
RETURNED = "returned"
LINE_REASONS = (ALREADY_CLAIMED, EXCLUDED_PRICE_KIND, NO_PRICE_DROP, RETURNED)
"""Why a line is not protected, in the order an order without any protected line is refused for."""
REASONS = (NOT_PAID, WINDOW_PASSED, *LINE_REASONS)
UNPAID_STATUSES = frozenset({"pending_payment", "cancelled"})


@dataclass(frozen=True)
class LineCheck:
    """One order line under the rule.

    Attributes:
        line_id: the order line.
        sku: the item.
        product_name: its name on the order.
        quantity: units that count (ordered minus returned).
        paid_unit_fen: what one unit cost (its share of the coupon taken off).
        current_price_fen: the item's price now.
        price_kind: the kind of the current price (None: the everyday price).
        refund_fen: the difference refunded (0 when not protected).
        reason: why the line is not protected (one of :data:`LINE_REASONS`), None when it is.
    """

    line_id: int
    sku: str
    product_name: str
    quantity: int
    paid_unit_fen: int
    current_price_fen: int
    price_kind: Optional[str]
    refund_fen: int
    reason: Optional[str]


@dataclass(frozen=True)
class Assessment:
    """The rule's answer for one order.

    Attributes:
        order_id: the order.
        window_ends_at: when the price-protection window of the order ends (None when unpaid).
        lines: every line asked about, protected or not.
        reason: why nothing is protected (one of :data:`REASONS`), None when some line is.
    """

    order_id: str
    window_ends_at: Optional[dt.datetime]
    lines: Tuple[LineCheck, ...]
    reason: Optional[str]

    @property
    def protected(self) -> Tuple[LineCheck, ...]:
        """The lines that get the difference back."""
        return tuple(line for line in self.lines if line.reason is None) if self.reason is None else ()

    @property
    def refund_fen(self) -> int:
        """The whole difference refunded."""
        return sum(line.refund_fen for line in self.protected)

    def refused(self, reason: str) -> Tuple[LineCheck, ...]:
        """The lines not protected for ``reason``."""
        return tuple(line for line in self.lines if line.reason == reason)


@dataclass(frozen=True)
class RefundTiming:
    """Where the difference goes and by when.

    Attributes:
        method: the order's payment method code (the difference goes back to it).
        timing: the policy's name of the timing row (``微信、支付宝等在线钱包``).
        working_days: the row's [earliest, latest] working days.
        earliest: the first day the money may arrive.
        latest: the day it has arrived by.
    """

    method: str
    timing: str
    working_days: Tuple[int, int]
    earliest: dt.date
    latest: dt.date

    @property
    def immediate(self) -> bool:
        """Whether the money arrives at once (balance and points)."""
        return self.working_days[1] == 0


def parse_time(value: Optional[str]) -> Optional[dt.datetime]:
    """An ISO 8601 timestamp with offset as the CRM writes one (None for None or a naive one)."""
    if not value:
        return None
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else None


def _line(item: Mapping[str, Any], excluded: Iterable[str], claimed: Iterable[int]) -> LineCheck:
    quantity = int(item.get("quantity") or 0)
    kept = max(0, quantity - int(item.get("returned_quantity") or 0))
    unit = int(item.get("paid_fen") or 0) // quantity if quantity else 0
    current = item.get("current_price_fen")
    current_fen = unit if current is None else int(current)
    kind = item.get("current_price_kind") or None
    line_id = int(item["line_id"])
    if line_id in set(claimed):
        reason: Optional[str] = ALREADY_CLAIMED
    elif current_fen >= unit:
        reason = NO_PRICE_DROP
    elif kind is not None and kind in set(excluded):
        reason = EXCLUDED_PRICE_KIND
    elif kept == 0:
        reason = RETURNED
    else:
        reason = None
    refund = (unit - current_fen) * kept if reason is None else 0
    return LineCheck(line_id, str(item.get("sku") or ""), str(item.get("product_name") or ""), kept, unit, current_fen, kind, refund, reason)


def assess(
    order: Mapping[str, Any],
    policy: Mapping[str, Any],
    now: dt.datetime,
    claimed_lines: Iterable[int] = (),
    line_ids: Optional[Sequence[int]] = None,
) -> Assessment:
    """Which lines of ``order`` the policy protects at ``now`` (timezone-aware).

    Args:
        order: the order as the CRM serves it.
        policy: the price-protection policy (``window_days``, ``excluded``).
        now: the moment of the claim.
        claimed_lines: lines already protected by an earlier claim.
        line_ids: only these lines (all lines when None).
    """
    paid_at = parse_time(order.get("paid_at"))
    items = [item for item in order.get("items") or [] if line_ids is None or int(item["line_id"]) in set(line_ids)]
    claimed = {int(line) for line in claimed_lines}
    lines = tuple(_line(item, policy.get("excluded") or (), claimed) for item in items)
    order_id = str(order.get("order_id") or "")
    if paid_at is None or order.get("status") in UNPAID_STATUSES:
        return Assessment(order_id, None, lines, NOT_PAID)
    ends = paid_at + dt.timedelta(days=int(policy["window_days"]))
    if now > ends:
        return Assessment(order_id, ends, lines, WINDOW_PASSED)
    if any(line.reason is None for line in lines):
        return Assessment(order_id, ends, lines, None)
    reasons = {line.reason for line in lines}
    return Assessment(order_id, ends, lines, next((reason for reason in LINE_REASONS if reason in reasons), NO_PRICE_DROP))


def refund_timing(
    policy: Mapping[str, Any], payment_method: str, today: dt.date, calendar: Optional[ShopCalendar] = None
) -> RefundTiming:
    """When the difference of a claim made ``today`` arrives, by the order's payment method.

    A method the policy does not map takes the longest timing the policy has.
    """
    rows = {str(name): (int(span[0]), int(span[1])) for name, span in (policy.get("refund_working_days") or {}).items()}
    name = str((policy.get("refund_timing_by_payment_method") or {}).get(payment_method) or "")
    if name not in rows:
        name = max(rows, key=lambda row: rows[row][1])
    low, high = rows[name]
    return RefundTiming(payment_method, name, (low, high), add_working_days(today, low, calendar), add_working_days(today, high, calendar))
