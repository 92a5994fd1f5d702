"""Deterministic demo data: ~400 customers, ~3000 orders in every state, returns, points ledgers.

The generator uses one ``random.Random`` with a fixed seed and derives every date from ``today``,
so the same ``today`` always yields the same database. Timelines are simulated against a cut-off
of ``today 08:00`` (shop time): each order's status, shipment scans and returns are whatever had
happened by then. Fixed demo customers (``C000001`` .. ``C000009``, see ``DEMO_CUSTOMERS.md``) cover
the cases the assistant must handle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.engine import Engine

from crm.db import create_schema, drop_schema
from crm.models import (
    Base,
    Coupon,
    Customer,
    Order,
    OrderItem,
    PointsEntry,
    Product,
    Redemption,
    Return,
    ReturnItem,
    Shipment,
    ShipmentEvent,
)
from crm.policy import tier_by_code, tier_for_growth
from crm.seed.base import CUTOFF_TIME, DEFAULT_CUSTOMERS, SEED
from crm.seed.customers import CustomerMaker
from crm.seed.demo import DemoMaker
from crm.seed.demo_customers import DEMO_CUSTOMERS, DemoCustomer
from crm.seed.ledger import PointsLedger
from crm.seed.rows import rows_by_table


class Generator(DemoMaker, CustomerMaker, PointsLedger):
    """Builds all rows of the demo database for one ``today``.

    Every part draws from the one ``self.rng``; ``build`` calls them in a fixed order (demo customers,
    random customers, then the points of each customer), so that order decides the data.
    """

    def build(self) -> Dict[str, List[Dict[str, Any]]]:
        """Generate every row; returns rows per table name."""
        for demo in DEMO_CUSTOMERS:
            self.customers.append(self._demo_customer(demo))
        for number in range(len(DEMO_CUSTOMERS) + 1, self.customer_total + 1):
            self.customers.append(self._random_customer(number))
        for customer in self.customers:
            self._simulate_points(customer)
            customer.growth_value = self._growth(customer)
            customer.tier = tier_for_growth(self.tiers, customer.growth_value).code
        return rows_by_table(self)


def seed_database(
    engine: Engine, today: dt.date, customers: int = DEFAULT_CUSTOMERS, tz: Optional[dt.tzinfo] = None
) -> Dict[str, int]:
    """Drop all CRM tables, recreate them and fill them with the demo data set.

    Args:
        engine: target database.
        today: the date the data set is built around (shop-local).
        customers: total number of customers, demo customers included.
        tz: the shop's timezone (UTC+8 when omitted).

    Returns:
        Row counts per table.
    """
    generator = Generator(today, customers, tz or dt.timezone(dt.timedelta(hours=8)))
    rows = generator.build()
    drop_schema(engine)
    create_schema(engine)
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            table_rows = rows.get(table.name, [])
            for start in range(0, len(table_rows), 5000):
                connection.execute(table.insert(), table_rows[start : start + 5000])
    return {name: len(table_rows) for name, table_rows in rows.items()}


def dump_database(engine: Engine) -> Dict[str, List[Tuple[Any, ...]]]:
    """Every row of every CRM table, ordered by primary key (to compare two databases)."""
    result: Dict[str, List[Tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            statement = select(table).order_by(*table.primary_key.columns)
            result[table.name] = [tuple(row) for row in connection.execute(statement)]
    return result


__all__ = [
    "CUTOFF_TIME",
    "DEFAULT_CUSTOMERS",
    "DEMO_CUSTOMERS",
    "SEED",
    "Coupon",
    "Customer",
    "DemoCustomer",
    "Generator",
    "Order",
    "OrderItem",
    "PointsEntry",
    "Product",
    "Redemption",
    "Return",
    "ReturnItem",
    "Shipment",
    "ShipmentEvent",
    "dump_database",
    "seed_database",
    "tier_by_code",
]
