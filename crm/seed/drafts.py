"""The drafts the demo data generator builds before they become table rows (shop-local times)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

Stamp = dt.datetime  # naive, shop-local time inside the generator


@dataclass
class Item:
    """An order line being generated."""

    line_id: int
    product: Tuple[str, str, str, str, int]
    quantity: int
    paid_fen: int = 0

    @property
    def total_fen(self) -> int:
        return self.product[4] * 100 * self.quantity


@dataclass
class OrderDraft:
    """An order being generated, in shop-local time."""

    order_id: str
    customer_id: str
    placed_at: Stamp
    items: List[Item]
    payment_method: str
    insurance: bool
    coupon_fen: int
    shipping_fen: int
    receiver: Tuple[str, str, str]
    city: str
    district: int
    promised_date: dt.date
    status: str = "pending_payment"
    paid_at: Optional[Stamp] = None
    signed_at: Optional[Stamp] = None
    completed_at: Optional[Stamp] = None
    cancelled_at: Optional[Stamp] = None
    carrier: Optional[str] = None
    tracking: Optional[str] = None
    shipped_at: Optional[Stamp] = None
    events: List[Tuple[Stamp, str, str]] = field(default_factory=list)

    @property
    def subtotal_fen(self) -> int:
        return sum(item.total_fen for item in self.items)

    @property
    def paid_fen(self) -> int:
        return self.subtotal_fen - self.coupon_fen + self.shipping_fen


@dataclass
class ReturnDraft:
    """A return being generated."""

    return_id: str
    order: OrderDraft
    lines: List[Tuple[int, int]]
    reason: str
    status: str
    refund_fen: int
    shipping_paid_by: str
    refund_expected_by: dt.date
    created_at: Stamp
    updated_at: Stamp
    refunded_at: Optional[Stamp] = None
    note: Optional[str] = None


@dataclass
class Timeline:
    """Planned moments of an order; what has happened by the cut-off decides its status."""

    pay_after: Optional[dt.timedelta] = dt.timedelta(minutes=3)
    cancel_at: Optional[Stamp] = None
    ship_at: Optional[Stamp] = None
    sign_at: Optional[Stamp] = None
    confirm_after: dt.timedelta = dt.timedelta(days=10)
    delayed: bool = False
    warehouse: Optional[int] = None


@dataclass
class CustomerDraft:
    """A customer being generated."""

    customer_id: str
    name: str
    phone: str
    birthday: dt.date
    created_at: Stamp
    city: str
    district: int
    address: str
    orders: List[OrderDraft] = field(default_factory=list)
    returns: List[ReturnDraft] = field(default_factory=list)
    tier: str = "L1"
    growth_value: int = 0
    points_balance: int = 0
    redeems: bool = False
