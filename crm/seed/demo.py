"""The demo customers' orders and returns, each set up for the cases the assistant must handle."""

from __future__ import annotations

import datetime as dt
from typing import Any, Sequence, Tuple

from bot.shop_calendar import add_working_days
from crm.seed.demo_customers import DEMO_TIER_TARGETS, DemoCustomer
from crm.seed.drafts import CustomerDraft, OrderDraft, Stamp, Timeline
from crm.seed.returns import REFUND_WORKING_DAYS, ReturnMaker
from crm.seed_data import RETURN_NOTES
from crm.vocab import TRACKING_DIGITS


class DemoMaker(ReturnMaker):
    """Builds the fixed demo customers."""

    def _demo_order(
        self,
        customer: CustomerDraft,
        serial: int,
        placed_at: Stamp,
        skus: Sequence[Tuple[str, int]],
        plan: Timeline,
        carrier: str = "JD",
        **options: Any,
    ) -> OrderDraft:
        order_id = f"88{int(customer.customer_id[1:]):06d}{serial:04d}"
        self.used_ids.add(order_id)
        lines = [(self.by_sku[sku], quantity) for sku, quantity in skus]
        order = self._draft(customer, placed_at, lines, order_id=order_id, coupon_fen=options.pop("coupon_fen", 0), **options)
        tracking = carrier + order_id.rjust(TRACKING_DIGITS[carrier], "0")
        self.used_ids.add(tracking)
        self._settle(order, plan, carrier=carrier, tracking=tracking)
        customer.orders.append(order)
        return order

    def _demo_customer(self, demo: DemoCustomer) -> CustomerDraft:
        customer = CustomerDraft(
            demo.customer_id,
            demo.name,
            demo.phone,
            demo.birthday,
            self._at(dt.date(2019, 3, 1) + dt.timedelta(days=int(demo.customer_id[1:]) * 97), 10, 30),
            demo.city,
            demo.district,
            demo.address,
        )
        t, d = self.today, dt.timedelta
        if demo.customer_id == "C000001":
            previous_year = self._at(dt.date(t.year - 1, 3, 12), 20, 15)
            self._demo_order(
                customer,
                40,
                previous_year,
                [("BK001", 2), ("HM002", 1)],
                Timeline(sign_at=previous_year + d(days=2, hours=16)),
                payment_method="wallet",
            )
            placed = self._days_ago(5, 10, 12)
            self._demo_order(
                customer,
                1,
                placed,
                [("EL006", 1), ("PC006", 1)],
                Timeline(ship_at=self._days_ago(4, 9, 5), sign_at=self._at(t + d(days=2), 15), delayed=True, warehouse=4),
                carrier="SF",
                promised_date=t - d(days=2),
                payment_method="wallet",
            )
            placed = self._days_ago(6, 21, 40)
            self._demo_order(
                customer,
                2,
                placed,
                [("SH001", 1), ("AP007", 1)],
                Timeline(ship_at=self._days_ago(5, 11, 20), sign_at=self._days_ago(3, 14, 32)),
                carrier="JD",
                promised_date=t - d(days=3),
                payment_method="wallet",
                coupon_fen=2000,
            )
        elif demo.customer_id == "C000002":
            self._demo_order(
                customer,
                1,
                self._days_ago(2, 20, 30),
                [("AP002", 1)],
                Timeline(ship_at=self._days_ago(1, 10, 0), sign_at=self._at(t + d(days=1), 14), warehouse=2),
                carrier="JD",
                promised_date=t + d(days=1),
                payment_method="bank_card",
            )
            self._demo_order(
                customer,
                2,
                self._days_ago(1, 21, 5),
                [("BK004", 1), ("HM007", 1)],
                Timeline(ship_at=self._at(t, 14)),
                promised_date=t + d(days=2),
                payment_method="wallet",
            )
        elif demo.customer_id == "C000003":
            self._demo_order(
                customer,
                1,
                self._days_ago(43, 9, 50),
                [("EL007", 1)],
                Timeline(ship_at=self._days_ago(42, 16), sign_at=self._days_ago(40, 11, 8)),
                carrier="SF",
                promised_date=t - d(days=40),
                payment_method="bank_card",
            )
        elif demo.customer_id == "C000004":
            self._demo_order(
                customer,
                1,
                self._days_ago(3, 19, 25),
                [("FF001", 1), ("AP001", 1)],
                Timeline(ship_at=self._days_ago(2, 8, 30), sign_at=self._days_ago(1, 17, 45)),
                carrier="SF",
                promised_date=t - d(days=1),
                payment_method="wallet",
                insurance=True,
            )
        elif demo.customer_id == "C000005":
            order = self._demo_order(
                customer,
                1,
                self._days_ago(7, 12, 0),
                [("SH002", 1)],
                Timeline(ship_at=self._days_ago(6, 15), sign_at=self._days_ago(4, 10, 20)),
                carrier="YT",
                promised_date=t - d(days=4),
                payment_method="wallet",
                insurance=True,
            )
            created = self._days_ago(2, 10, 0)
            customer.returns.append(
                self._return_draft(
                    order,
                    [(1, 1)],
                    "wrong_size",
                    "approved",
                    created,
                    self._days_ago(1, 9, 30),
                    note=RETURN_NOTES["pickup"].format(month=t.month, day=t.day),
                    expected=add_working_days(t + d(days=2), REFUND_WORKING_DAYS["wallet"]),
                    return_id="R8800000501",
                )
            )
        elif demo.customer_id == "C000006":
            order = self._demo_order(
                customer,
                1,
                self._days_ago(15, 9, 0),
                [("HM002", 1), ("BK001", 1)],
                Timeline(ship_at=self._days_ago(14, 13), sign_at=self._days_ago(12, 16, 40), confirm_after=d(days=1)),
                carrier="JD",
                promised_date=t - d(days=12),
                payment_method="bank_card",
            )
            customer.returns.append(
                self._return_draft(
                    order,
                    [(1, 1)],
                    "quality_issue",
                    "refunded",
                    self._days_ago(10, 9, 15),
                    self._days_ago(3, 11, 2),
                    refunded_at=self._days_ago(3, 11, 2),
                    note=RETURN_NOTES["quality_refund"],
                    expected=add_working_days(t - d(days=6), REFUND_WORKING_DAYS["bank_card"]),
                    return_id="R8800000601",
                )
            )
        elif demo.customer_id == "C000007":
            self._demo_order(
                customer,
                1,
                self._days_ago(2, 11, 0),
                [("EL009", 1)],
                Timeline(ship_at=self._days_ago(2, 18, 0), sign_at=self._at(t, 8, 40), warehouse=0),
                carrier="YT",
                promised_date=t,
                payment_method="bank_card",
                insurance=True,
            )
        elif demo.customer_id == "C000008":
            self._demo_order(
                customer,
                1,
                self._days_ago(0, 7, 15),
                [("BK002", 1), ("BK009", 2)],
                Timeline(pay_after=None, cancel_at=self._at(t, 7, 15) + d(hours=24)),
                promised_date=t + d(days=3),
                payment_method="wallet",
            )
        self._fill_to_tier(customer, demo.tier)
        customer.orders.sort(key=lambda order: order.placed_at)
        return customer

    def _fill_to_tier(self, customer: CustomerDraft, tier: str) -> None:
        """Add completed past orders until the growth value reaches the demo tier."""
        target = DEMO_TIER_TARGETS[tier]
        serial = 50
        pool = [p for p in self.products if p[3] in ("electronics", "home", "shoes", "apparel", "gift_card")]
        while self._growth(customer) < target:
            gap = target - self._growth(customer)
            fitting = [p for p in pool if p[4] <= max(gap, 150)] or [min(pool, key=lambda p: p[4])]
            product = self.rng.choice(fitting)
            quantity = max(1, min(3, gap // product[4]))
            placed = self._days_ago(self.rng.randint(60, 330), self.rng.randint(9, 22), self.rng.randint(0, 59))
            self._demo_order(
                customer,
                serial,
                placed,
                [(product[0], quantity)],
                Timeline(
                    ship_at=placed + dt.timedelta(hours=5),
                    sign_at=self._at(placed.date() + dt.timedelta(days=2), self.rng.randint(10, 19), self.rng.randint(0, 59)),
                ),
                carrier=self.rng.choice(("SF", "JD", "YT")),
                payment_method="wallet",
            )
            serial += 1
