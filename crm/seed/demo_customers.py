"""The fixed demo customers (``C000001`` .. ``C000009``, from ``crm/seed/data.yml``) and the tier each must reach;
see ``DEMO_CUSTOMERS.md``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Tuple

from crm.seed_data import DATA


@dataclass(frozen=True)
class DemoCustomer:
    """A fixed customer of the demo data set."""

    customer_id: str
    name: str
    phone: str
    tier: str
    birthday: dt.date
    city: str
    district: int
    address: str
    cases: str


DEMO_CUSTOMERS: Tuple[DemoCustomer, ...] = tuple(DemoCustomer(**entry) for entry in DATA["demo_customers"])
DEMO_TIER_TARGETS = {"L1": 0, "L2": 3500, "L3": 16000, "L4": 38000, "L5": 125000}
