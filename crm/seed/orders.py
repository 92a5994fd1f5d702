"""Orders: lines, coupon shares and shipping, the warehouse route, shipment scans and the status at the cut-off."""

from __future__ import annotations

import datetime as dt
from typing import List, Optional, Tuple

from crm.policy import load_service_policy, load_tiers
from crm.seed.base import GeneratorBase
from crm.seed.drafts import CustomerDraft, Item, OrderDraft, Stamp, Timeline
from crm.seed_data import CITIES, COURIER_SURNAMES, MOBILE_PREFIXES, SCANS, SIGNERS, WAREHOUSES
from crm.vocab import CARRIER_NAMES

ORDER_COUPONS: Tuple[Tuple[int, int], ...] = (
    (9900, 1000),
    (19900, 2000),
    (29900, 3000),
    (50000, 5000),
    (100000, 10000),
    (300000, 20000),
)
# Seeded orders pay shipping as a registered member's would (crm/policy/tiers.yml, shipping.yml).
FREE_SHIPPING_FEN = load_tiers()[0].free_shipping_threshold_fen
STANDARD_SHIPPING_FEN = int(load_service_policy("shipping")["shipping"]["standard_fee_fen"])
FAR_REGIONS = {
    frozenset({"north", "south"}),
    frozenset({"north", "west"}),
    frozenset({"east", "west"}),
    frozenset({"south", "west"}),
}


class OrderMaker(GeneratorBase):
    """Builds orders and settles their timelines against the cut-off."""

    def _draft(
        self,
        customer: CustomerDraft,
        placed_at: Stamp,
        lines: List[Tuple[Tuple[str, str, str, str, int], int]],
        *,
        order_id: Optional[str] = None,
        payment_method: str = "wallet",
        insurance: bool = False,
        coupon_fen: Optional[int] = None,
        promised_date: Optional[dt.date] = None,
        receiver: Optional[Tuple[str, str, str]] = None,
        city: Optional[str] = None,
        district: Optional[int] = None,
    ) -> OrderDraft:
        items = [Item(index + 1, product, quantity) for index, (product, quantity) in enumerate(lines)]
        subtotal = sum(item.total_fen for item in items)
        if coupon_fen is None:
            coupon_fen = 0
            if self.rng.random() < 0.35:
                eligible = [value for threshold, value in ORDER_COUPONS if threshold <= subtotal]
                if eligible:
                    coupon_fen = eligible[-1] if self.rng.random() < 0.7 else self.rng.choice(eligible)
        digital = all(item.product[3] == "digital_goods" for item in items)
        shipping = 0 if digital or subtotal - coupon_fen >= FREE_SHIPPING_FEN else STANDARD_SHIPPING_FEN
        # The coupon is shared by the lines pro rata; the last line takes the rounding remainder.
        remaining = coupon_fen
        for index, item in enumerate(items):
            share = remaining if index == len(items) - 1 else round(coupon_fen * item.total_fen / subtotal)
            share = min(share, remaining)
            remaining -= share
            item.paid_fen = item.total_fen - share
        return OrderDraft(
            order_id=order_id or self._order_id(),
            customer_id=customer.customer_id,
            placed_at=placed_at,
            items=items,
            payment_method=payment_method,
            insurance=insurance and not digital,
            coupon_fen=coupon_fen,
            shipping_fen=shipping,
            receiver=receiver or (customer.name, customer.phone, customer.address),
            city=city or customer.city,
            district=customer.district if district is None else district,
            promised_date=promised_date or placed_at.date() + dt.timedelta(days=3),
        )

    def _route(self, order: OrderDraft) -> Tuple[Tuple[str, str, str], int]:
        region = CITIES[order.city][1]
        local = [w for w in WAREHOUSES if w[2] == region]
        warehouse = local[0] if local and self.rng.random() < 0.75 else self.rng.choice(WAREHOUSES)
        if warehouse[0] == order.city:
            days = 1
        elif warehouse[2] == region:
            days = 1 if self.rng.random() < 0.6 else 2
        elif frozenset({warehouse[2], region}) in FAR_REGIONS:
            days = 3
        else:
            days = 2
        return warehouse, days

    def _events(
        self, order: OrderDraft, warehouse: Tuple[str, str, str], ship_at: Stamp, sign_at: Stamp, delayed: bool
    ) -> List[Tuple[Stamp, str, str, str]]:
        carrier_name = CARRIER_NAMES[order.carrier or "JD"]
        origin_hub = CITIES[warehouse[0]][3]
        dest_hub = CITIES[order.city][3]
        site = CITIES[order.city][2][order.district][2]
        span = sign_at - ship_at

        def before(hours: float, fraction: float) -> Stamp:
            return sign_at - min(dt.timedelta(hours=hours), span * fraction)

        def after(hours: float, fraction: float) -> Stamp:
            return ship_at + min(dt.timedelta(hours=hours), span * fraction)

        events = [(ship_at, warehouse[1], SCANS["shipped"].format(carrier=carrier_name), "shipped")]
        if origin_hub != dest_hub:
            events.append((after(3, 0.1), origin_hub, SCANS["arrived"].format(hub=origin_hub), "in_transit"))
            events.append((after(5, 0.2), origin_hub, SCANS["departed"].format(hub=origin_hub, next=dest_hub), "in_transit"))
        if delayed:
            events.append(
                (
                    ship_at + span * 0.4,
                    origin_hub if origin_hub != dest_hub else dest_hub,
                    SCANS["delayed"],
                    "in_transit",
                )
            )
        events.append((before(14, 0.45), dest_hub, SCANS["arrived"].format(hub=dest_hub), "in_transit"))
        events.append((before(8, 0.3), dest_hub, SCANS["departed"].format(hub=dest_hub, next=site), "in_transit"))
        arrived = before(5, 0.15)
        events.append((arrived, site, SCANS["at_site"].format(site=site), "in_transit"))
        courier = SCANS["courier"].format(surname=self.rng.choice(COURIER_SURNAMES))
        courier_phone = f"{self.rng.choice(MOBILE_PREFIXES)}****{self._digits(4)}"
        dispatch = before(self.rng.uniform(1.0, 4.0), 0.08)
        dispatch = max(dispatch, min(self._at(sign_at.date(), 7, 30), sign_at - dt.timedelta(minutes=10)))
        dispatch = max(dispatch, arrived + dt.timedelta(minutes=1))
        events.append(
            (dispatch, site, SCANS["out_for_delivery"].format(courier=courier, phone=courier_phone), "out_for_delivery")
        )
        signer = self.rng.choice(SIGNERS)
        events.append((sign_at, site, SCANS["delivered"].format(signer=signer, carrier=carrier_name), "delivered"))
        return [(stamp.replace(microsecond=0), location, text, stage) for stamp, location, text, stage in events]

    def _settle(
        self, order: OrderDraft, plan: Timeline, carrier: Optional[str] = None, tracking: Optional[str] = None
    ) -> OrderDraft:
        """Apply the plan up to the cut-off and set status, timestamps and shipment scans."""
        cutoff = self.cutoff
        paid_at = order.placed_at + plan.pay_after if plan.pay_after is not None else None
        if paid_at is None or paid_at > cutoff:
            if plan.cancel_at is not None and plan.cancel_at <= cutoff:
                order.status, order.cancelled_at = "cancelled", plan.cancel_at
            else:
                order.status = "pending_payment"
            return order
        order.paid_at = paid_at
        if plan.cancel_at is not None and plan.cancel_at <= cutoff and (plan.ship_at is None or plan.cancel_at < plan.ship_at):
            order.status, order.cancelled_at = "cancelled", plan.cancel_at
            return order
        if all(item.product[3] == "digital_goods" for item in order.items):
            order.signed_at = paid_at + dt.timedelta(minutes=1)
            order.status = "delivered"
        else:
            warehouse, days = self._route(order)
            if plan.warehouse is not None:
                warehouse = WAREHOUSES[plan.warehouse]
            ship_at = plan.ship_at or paid_at + dt.timedelta(hours=self.rng.randint(3, 30))
            if plan.sign_at is not None:
                sign_at = plan.sign_at
            else:
                extra = self.rng.randint(1, 4) if plan.delayed else 0
                sign_day = ship_at.date() + dt.timedelta(days=days + extra)
                sign_at = self._at(sign_day, self.rng.randint(9, 19), self.rng.randint(0, 59))
                if sign_at - ship_at < dt.timedelta(hours=14):
                    sign_at += dt.timedelta(days=1)
            if ship_at > cutoff:
                order.status = "awaiting_shipment"
                return order
            order.carrier = carrier or self.rng.choices(("SF", "JD", "YT"), (40, 45, 15))[0]
            order.tracking = tracking or self._tracking(order.carrier)
            order.shipped_at = ship_at
            planned = self._events(order, warehouse, ship_at, sign_at, plan.delayed)
            happened = [event for event in planned if event[0] <= cutoff]
            order.events = [(stamp, location, text) for stamp, location, text, _stage in happened]
            order.status = happened[-1][3]
            if order.status != "delivered":
                return order
            order.signed_at = sign_at
        assert order.signed_at is not None
        completed_at = order.signed_at + plan.confirm_after
        if completed_at <= cutoff:
            order.status, order.completed_at = "completed", completed_at
        return order

    def _random_plan(self, placed_at: Stamp) -> Timeline:
        plan = Timeline(pay_after=dt.timedelta(seconds=self.rng.randint(30, 40 * 60)))
        roll = self.rng.random()
        if roll < 0.06:
            plan.pay_after = None
            plan.cancel_at = placed_at + dt.timedelta(hours=24)
        elif roll < 0.10:
            assert plan.pay_after is not None
            plan.cancel_at = placed_at + plan.pay_after + dt.timedelta(minutes=self.rng.randint(10, 300))
            plan.ship_at = plan.cancel_at + dt.timedelta(hours=self.rng.randint(2, 20))
        plan.delayed = self.rng.random() < 0.12
        if self.rng.random() < 0.4:
            plan.confirm_after = dt.timedelta(hours=self.rng.randint(20, 120))
        return plan

    def _random_order(self, customer: CustomerDraft, placed_at: Stamp, rich: bool) -> OrderDraft:
        first = self._pick_product(rich)
        if first[3] == "digital_goods":
            lines = [(first, 1)]
        else:
            lines = [(first, 1)]
            count = self.rng.choices((1, 2, 3), (60, 28, 12))[0]
            while len(lines) < count:
                product = self._pick_product(rich, exclude=[line[0][0] for line in lines])
                if product[3] != "digital_goods":
                    lines.append((product, 1))
            bulk = ("books", "fresh_food", "personal_care", "underwear")
            lines = [(product, self.rng.choice((1, 1, 2, 3)) if product[3] in bulk else 1) for product, _ in lines]
        method = self.rng.choices(("wallet", "bank_card", "balance", "points"), (60, 25, 12, 3))[0]
        if self.rng.random() < 0.85:
            receiver = (customer.name, customer.phone, customer.address)
            city, district = customer.city, customer.district
        else:
            city, district, address = self._address()
            receiver = (self._name(), self._phone() if self.rng.random() < 0.6 else customer.phone, address)
        order = self._draft(
            customer,
            placed_at,
            lines,
            payment_method=method,
            insurance=self.rng.random() < 0.3,
            receiver=receiver,
            city=city,
            district=district,
        )
        _warehouse, days = self._route(order)
        order.promised_date = placed_at.date() + dt.timedelta(days=days + (1 if placed_at.hour >= 16 else 0) + 1)
        if method == "points" and order.paid_fen > 20000:
            order.payment_method = "wallet"
        return self._settle(order, self._random_plan(placed_at))
