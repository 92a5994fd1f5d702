"""Random customers with their order histories and returns."""

from __future__ import annotations

import datetime as dt

from crm.seed.drafts import CustomerDraft
from crm.seed.returns import ReturnMaker


class CustomerMaker(ReturnMaker):
    """Builds the random (non-demo) customers."""

    def _random_customer(self, number: int) -> CustomerDraft:
        city, district, address = self._address()
        created = self._at(
            self.today - dt.timedelta(days=self.rng.randint(20, 2400)), self.rng.randint(7, 23), self.rng.randint(0, 59)
        )
        birthday = dt.date(self.rng.randint(1962, 2005), self.rng.randint(1, 12), self.rng.randint(1, 28))
        customer = CustomerDraft(f"C{number:06d}", self._name(), self._phone(), birthday, created, city, district, address)
        rich = self.rng.random() < 0.12
        count = min(40, int(self.rng.lognormvariate(1.75, 0.75)) + (6 if rich else 0))
        start = max(created, self.cutoff - dt.timedelta(days=730))
        span_s = max(1, int((self.cutoff - start).total_seconds()))
        recent_s = 10 * 24 * 3600
        stamps = []
        for _ in range(count):
            if self.rng.random() < 0.15 and span_s > recent_s:
                stamps.append(self.cutoff - dt.timedelta(seconds=self.rng.randrange(recent_s)))
            else:
                stamps.append(start + dt.timedelta(seconds=self.rng.randrange(span_s)))
        for stamp in sorted(stamps):
            if stamp.hour < 7 and self.rng.random() < 0.8:
                stamp += dt.timedelta(hours=8)
            if stamp > self.cutoff:
                stamp = self.cutoff - dt.timedelta(minutes=self.rng.randint(5, 300))
            order = self._random_order(customer, stamp.replace(microsecond=0), rich)
            customer.orders.append(order)
            if order.signed_at is not None:
                recent = (self.cutoff - order.signed_at) < dt.timedelta(days=12)
                if self.rng.random() < (0.25 if recent else 0.08):
                    draft = self._random_return(customer, order)
                    if draft is not None:
                        customer.returns.append(draft)
        customer.redeems = self.rng.random() < 0.35
        return customer
