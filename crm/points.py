"""Points lots: which earnings are still unspent and when they expire.

Spending (and any deduction) consumes the earliest-expiring unspent earnings first, so the
remaining lots follow from replaying the ledger in time order. The replay is a pure function used
both by the seed generator and by the API.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, List, Optional, Tuple

NEVER = dt.date.max


@dataclass
class Lot:
    """Points earned in one ledger line, with what is left of them."""

    expires_on: dt.date
    remaining: int


@dataclass
class Lots:
    """The unspent earnings of one customer."""

    lots: List[Lot] = field(default_factory=list)

    @property
    def balance(self) -> int:
        """Sum of the remaining points."""
        return sum(lot.remaining for lot in self.lots)

    def earn(self, points: int, expires_on: dt.date) -> None:
        """Add an earning."""
        if points > 0:
            self.lots.append(Lot(expires_on, points))

    def consume(self, points: int) -> int:
        """Consume up to ``points``, earliest expiry first; return how many were consumed."""
        left = points
        for lot in sorted(self.lots, key=lambda item: item.expires_on):
            if left <= 0:
                break
            taken = min(lot.remaining, left)
            lot.remaining -= taken
            left -= taken
        self.lots = [lot for lot in self.lots if lot.remaining > 0]
        return points - left

    def expired_before(self, day: dt.date) -> int:
        """Points left in lots whose expiry date is before ``day``."""
        return sum(lot.remaining for lot in self.lots if lot.expires_on < day)

    def expiring(self, today: dt.date) -> List[Tuple[dt.date, int]]:
        """Unexpired remaining points grouped by expiry date, ascending."""
        grouped: OrderedDict[dt.date, int] = OrderedDict()
        for lot in sorted(self.lots, key=lambda item: item.expires_on):
            if today <= lot.expires_on < NEVER and lot.remaining > 0:
                grouped[lot.expires_on] = grouped.get(lot.expires_on, 0) + lot.remaining
        return list(grouped.items())


def replay(entries: Iterable[Tuple[int, Optional[dt.date]]]) -> Lots:
    """Rebuild the lots from ledger lines given in time order.

    Args:
        entries: ``(delta, expires_on)`` pairs; positive deltas with an expiry date are earnings,
            negative deltas consume.
    """
    lots = Lots()
    for delta, expires_on in entries:
        if delta > 0:
            lots.earn(delta, expires_on or NEVER)
        elif delta < 0:
            lots.consume(-delta)
    return lots
