"""The generator's state and the random helpers every part uses (ids, names, phones, addresses, products)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from crm.policy import CouponSpec, load_coupons, load_tiers
from crm.seed.demo_customers import DEMO_CUSTOMERS
from crm.seed.drafts import CustomerDraft, Stamp
from crm.seed_data import (
    CATEGORY_WEIGHTS,
    CITIES,
    COMMUNITY_PREFIXES,
    GIVEN_NAME_CHARS,
    MOBILE_PREFIXES,
    PRODUCTS,
    RESIDENCES,
    SURNAMES,
)
from crm.vocab import TRACKING_DIGITS

SEED = 20240618
DEFAULT_CUSTOMERS = 400
CUTOFF_TIME = dt.time(8, 0)


class GeneratorBase:
    """State of one generation run: the single seeded ``random.Random``, the cut-off and what was made so far."""

    def __init__(self, today: dt.date, customers: int = DEFAULT_CUSTOMERS, tz: Optional[dt.tzinfo] = None) -> None:
        self.rng = random.Random(SEED)
        self.today = today
        self.cutoff: Stamp = dt.datetime.combine(today, CUTOFF_TIME)
        self.customer_total = max(customers, len(DEMO_CUSTOMERS))
        self.tz = tz or dt.timezone(dt.timedelta(hours=8))
        self.tiers = load_tiers()
        self.coupons: Tuple[CouponSpec, ...] = load_coupons()
        self.products = list(PRODUCTS)
        self.by_sku = {product[0]: product for product in self.products}
        self.by_category: Dict[str, List[Tuple[str, str, str, str, int]]] = {}
        for product in self.products:
            self.by_category.setdefault(product[3], []).append(product)
        self.used_ids: set = set()
        self.phones = {demo.phone for demo in DEMO_CUSTOMERS}
        self.customers: List[CustomerDraft] = []
        self.ledger: List[Dict[str, Any]] = []
        self.redemptions: List[Dict[str, Any]] = []

    # ----------------------------------------------------------------- helpers
    def _unique(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def _digits(self, count: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(count))

    def _order_id(self) -> str:
        return self._unique(lambda: str(self.rng.randrange(10**11, 8 * 10**11)))

    def _tracking(self, carrier: str) -> str:
        return self._unique(lambda: carrier + self._digits(TRACKING_DIGITS[carrier]))

    def _at(self, day: dt.date, hour: int, minute: int = 0, second: int = 0) -> Stamp:
        return dt.datetime.combine(day, dt.time(hour, minute, second))

    def _days_ago(self, days: int, hour: int, minute: int = 0) -> Stamp:
        return self._at(self.today - dt.timedelta(days=days), hour, minute)

    def _jitter(self, stamp: Stamp, minutes: int = 20) -> Stamp:
        return stamp + dt.timedelta(seconds=self.rng.randrange(minutes * 60))

    def _name(self) -> str:
        given = "".join(self.rng.choice(GIVEN_NAME_CHARS) for _ in range(self.rng.choice((1, 2, 2))))
        return self.rng.choice(SURNAMES) + given

    def _phone(self) -> str:
        def make() -> str:
            return self.rng.choice(MOBILE_PREFIXES) + self._digits(8)

        while True:
            phone = make()
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def _address(self) -> Tuple[str, int, str]:
        city = self.rng.choice(sorted(CITIES))
        province, _region, districts, _hub = CITIES[city]
        index = self.rng.randrange(len(districts))
        district, streets, _site = districts[index]
        community = self.rng.choice(COMMUNITY_PREFIXES) + self.rng.choice(RESIDENCES)
        text = (
            f"{province}{city}{district}{self.rng.choice(streets)}{self.rng.randint(1, 999)}号"
            f"{community}{self.rng.randint(1, 30)}栋{self.rng.randint(1, 4)}单元"
            f"{self.rng.randint(1, 33)}{self.rng.randint(1, 4):02d}室"
        )
        return city, index, text

    def _pick_product(self, rich: bool, exclude: Sequence[str] = ()) -> Tuple[str, str, str, str, int]:
        categories = sorted(CATEGORY_WEIGHTS)
        weights = [CATEGORY_WEIGHTS[c] * (4 if rich and c == "electronics" else 1) for c in categories]
        while True:
            category = self.rng.choices(categories, weights)[0]
            product = self.rng.choice(self.by_category[category])
            if product[0] not in exclude:
                return product

    def _growth(self, customer: CustomerDraft) -> int:
        """Yuan paid for orders signed in the last 365 days, minus refunds on them."""
        since = self.cutoff - dt.timedelta(days=365)
        growth = 0
        for order in customer.orders:
            if order.signed_at is not None and since < order.signed_at <= self.cutoff:
                growth += order.paid_fen // 100
        for draft in customer.returns:
            signed = draft.order.signed_at
            if draft.status == "refunded" and signed is not None and since < signed:
                growth -= draft.refund_fen // 100
        return max(0, growth)
