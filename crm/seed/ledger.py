"""Points ledgers: each customer's points history replayed in time order."""

from __future__ import annotations

import datetime as dt
import heapq
from typing import Any, Dict, List, Optional, Set, Tuple

from crm.clock import last_day_of_month, points_expiry, to_utc_naive
from crm.points import Lots
from crm.policy import load_service_policy
from crm.seed.base import GeneratorBase
from crm.seed.drafts import CustomerDraft, Stamp
from crm.texts import text

REGISTRATION_BONUS = 100
_POINTS = load_service_policy("points")
EARN_PER_YUAN = int(_POINTS["earn_per_yuan"])
POINTS_ARRIVAL = dt.timedelta(days=int(_POINTS["arrival_days_after_signing"]))
"""An order's points arrive this long after it is signed for (crm/policy/points.yml)."""


class PointsLedger(GeneratorBase):
    """Writes the points ledger lines and coupon redemptions."""

    def _simulate_points(self, customer: CustomerDraft) -> None:
        """Replay the customer's points history in time order and write the ledger lines."""
        queue: List[Tuple[Stamp, int, str, Any]] = []
        sequence = 0

        def push(stamp: Stamp, kind: str, payload: Any) -> None:
            nonlocal sequence
            sequence += 1
            heapq.heappush(queue, (stamp, sequence, kind, payload))

        push(customer.created_at, "earn", (REGISTRATION_BONUS, text("points_reasons.registration"), None))
        refunded_fen: Dict[str, int] = {}  # per order, refunds before its points arrived
        earned: Set[str] = set()
        for order in customer.orders:
            if order.payment_method == "points" and order.paid_at is not None:
                push(order.paid_at, "pay", order)
            elif order.signed_at is not None and order.signed_at + POINTS_ARRIVAL <= self.cutoff:
                push(order.signed_at + POINTS_ARRIVAL, "earn_order", order)
        for draft in customer.returns:
            if draft.refunded_at is not None:
                push(draft.refunded_at, "refund", draft)
        if customer.redeems:
            for _ in range(self.rng.randint(1, 4)):
                span = int((self.cutoff - customer.created_at).total_seconds())
                push(
                    customer.created_at + dt.timedelta(seconds=self.rng.randrange(max(1, span))),
                    "redeem",
                    self.rng.choice(self.coupons),
                )
        if customer.customer_id == "C000001" and self.today.month != 12:
            first = self.today.replace(day=1)
            stamp = self._at(first, 10) if self._at(first, 10) <= self.cutoff else self._at(self.today, 0, 5)
            push(stamp, "earn", (800, text("points_reasons.member_day"), last_day_of_month(self.today)))

        lots = Lots()
        scheduled: set = set()

        def line(
            stamp: Stamp, delta: int, reason: str, expires_on: Optional[dt.date] = None, order_id: Optional[str] = None
        ) -> None:
            self.ledger.append(
                {
                    "customer_id": customer.customer_id,
                    "delta": delta,
                    "reason": reason,
                    "created_at": to_utc_naive(stamp, self.tz),
                    "expires_on": expires_on,
                    "order_id": order_id,
                }
            )

        def earn(stamp: Stamp, points: int, reason: str, expires_on: Optional[dt.date], order_id: Optional[str] = None) -> None:
            expiry = expires_on or points_expiry(stamp.date())
            lots.earn(points, expiry)
            line(stamp, points, reason, expiry, order_id)
            boundary = self._at(expiry + dt.timedelta(days=1), 0)
            if boundary <= self.cutoff and expiry not in scheduled:
                scheduled.add(expiry)
                push(boundary, "expire", expiry)

        while queue:
            stamp, _seq, kind, payload = heapq.heappop(queue)
            if kind == "earn":
                points, reason, expiry = payload
                earn(stamp, points, reason, expiry)
            elif kind == "earn_order":
                points = max(0, payload.paid_fen - refunded_fen.get(payload.order_id, 0)) * EARN_PER_YUAN // 100
                earned.add(payload.order_id)
                if points > 0:
                    earn(stamp, points, text("points_reasons.purchase", order_id=payload.order_id), None, payload.order_id)
            elif kind == "pay":
                if lots.balance >= payload.paid_fen:
                    lots.consume(payload.paid_fen)
                    line(stamp, -payload.paid_fen, text("points_reasons.paid_with_points", order_id=payload.order_id), order_id=payload.order_id)
                    if payload.status == "cancelled" and payload.cancelled_at is not None:
                        reason = text("points_reasons.order_cancelled", order_id=payload.order_id)
                        push(payload.cancelled_at, "earn", (payload.paid_fen, reason, None))
                else:
                    payload.payment_method = "balance"
                    if payload.signed_at is not None and payload.signed_at + POINTS_ARRIVAL <= self.cutoff:
                        push(payload.signed_at + POINTS_ARRIVAL, "earn_order", payload)
            elif kind == "refund":
                order = payload.order
                if order.payment_method == "points":
                    earn(stamp, payload.refund_fen, text("points_reasons.refund_returned", return_id=payload.return_id), None, order.order_id)
                elif order.order_id not in earned:  # refunded before its points arrived: fewer will
                    refunded_fen[order.order_id] = refunded_fen.get(order.order_id, 0) + payload.refund_fen
                else:
                    points = min(payload.refund_fen * EARN_PER_YUAN // 100, lots.balance)
                    if points > 0:
                        lots.consume(points)
                        line(stamp, -points, text("points_reasons.refund_clawback", return_id=payload.return_id), order_id=order.order_id)
            elif kind == "redeem":
                coupon = payload
                if lots.balance >= coupon.points_cost:
                    lots.consume(coupon.points_cost)
                    line(stamp, -coupon.points_cost, text("points_reasons.redeemed", title=coupon.title))
                    redemption_id = self._unique(lambda: "PR" + self._digits(10))
                    self.redemptions.append(
                        {
                            "redemption_id": redemption_id,
                            "customer_id": customer.customer_id,
                            "coupon_id": coupon.coupon_id,
                            "points_spent": coupon.points_cost,
                            "balance_after": lots.balance,
                            "created_at": to_utc_naive(stamp, self.tz),
                            "valid_until": stamp.date() + dt.timedelta(days=coupon.valid_days),
                            "idempotency_key": f"seed-{redemption_id}",
                        }
                    )
            elif kind == "expire":
                expired = lots.expired_before(payload + dt.timedelta(days=1))
                if expired > 0:
                    lots.consume(expired)
                    line(stamp, -expired, text("points_reasons.expired", year=payload.year, month=payload.month, day=payload.day))
        customer.points_balance = lots.balance
