"""Current prices of the demo catalogue: the SKUs whose price changed recently, for price protection (价保).

Fixed, relative to the seed day and drawn from no random numbers, so the rest of the data set does
not move. Recent orders of these SKUs have a line whose price dropped; the demo orders each
show one case (``DEMO_CUSTOMERS.md``): ``EL006`` dropped to an everyday price (``880000010001``
may claim the difference), ``SH001`` sells at a flash-sale price, which is not protected
(``880000010002``), and ``EL007`` dropped after the window of ``880000030001`` had passed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Tuple

from crm.clock import to_utc_naive

# (sku, price now in yuan, kind of price (None: everyday price), days before the seed day, hour)
PRICE_CHANGES: Tuple[Tuple[str, int, Optional[str], int, int], ...] = (
    ("EL006", 1299, None, 2, 10),
    ("SH001", 799, "秒杀价", 1, 20),
    ("EL007", 2199, None, 10, 10),
    ("EL002", 4299, None, 3, 10),
    ("AP005", 299, None, 1, 10),
    ("PC003", 449, None, 4, 10),
    ("SH003", 599, "拼团价", 2, 12),
    ("EL014", 219, None, 3, 10),
)
"""EL014's price rose: its orders have no drop."""


def price_rows(today: dt.date, tz: dt.tzinfo) -> List[Dict[str, Any]]:
    """The ``product_prices`` rows for the seed day ``today``."""
    return [
        {
            "sku": sku,
            "price_fen": yuan * 100,
            "kind": kind,
            "changed_at": to_utc_naive(dt.datetime.combine(today - dt.timedelta(days=days), dt.time(hour)), tz),
        }
        for sku, yuan, kind, days, hour in PRICE_CHANGES
    ]
