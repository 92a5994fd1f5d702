"""The shop's working days: the one calendar that refund dates are counted in.

A return's refund, a cancelled order's refund (the bot's promise and the CRM's expected date) and
the demo data all count working days here, in the ``calendar`` section of the return policy file
(``actions/policy/returns.yml``): the weekdays that are not worked, the public holidays, and the
weekend days worked instead (调休). A holiday added there moves every refund date at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, FrozenSet, Mapping, Optional

import yaml

from bot.settings import PROJECT_ROOT

CALENDAR_FILE = PROJECT_ROOT / "actions" / "policy" / "returns.yml"
"""The policy file whose ``calendar`` section is the shop's calendar."""


@dataclass(frozen=True)
class ShopCalendar:
    """Which days the shop works (refunds are processed on working days only).

    Attributes:
        weekend: weekday numbers (Monday 0) that are not working days.
        holidays: dates that are not working days.
        working_weekend_days: weekend dates that are working days (调休).
    """

    weekend: FrozenSet[int] = frozenset({5, 6})
    holidays: FrozenSet[date] = frozenset()
    working_weekend_days: FrozenSet[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        """Whether the shop works on ``day``."""
        if day in self.working_weekend_days:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays


def _dates(values: Any, name: str) -> FrozenSet[date]:
    if not isinstance(values, list | tuple):
        raise ValueError(f"shop calendar: {name} must be a list of YYYY-MM-DD dates")
    try:
        return frozenset(value if isinstance(value, date) else date.fromisoformat(str(value)) for value in values)
    except ValueError as error:
        raise ValueError(f"shop calendar: {name}: {error}") from error


def calendar_from_dict(raw: Optional[Mapping[str, Any]]) -> ShopCalendar:
    """The calendar of a policy file's ``calendar`` section (missing keys: Saturday and Sunday off, no holidays).

    Raises:
        ValueError: a weekday is not 0–6 or a date is not ``YYYY-MM-DD``.
    """
    raw = raw or {}
    weekend = raw.get("weekend", [5, 6])
    if not isinstance(weekend, list | tuple) or not all(isinstance(day, int) and 0 <= day <= 6 for day in weekend):
        raise ValueError("shop calendar: weekend must list weekday numbers 0 (Monday) to 6 (Sunday)")
    return ShopCalendar(
        weekend=frozenset(weekend),
        holidays=_dates(raw.get("holidays") or [], "holidays"),
        working_weekend_days=_dates(raw.get("working_weekend_days") or [], "working_weekend_days"),
    )


def load_calendar(path: Path = CALENDAR_FILE) -> ShopCalendar:
    """Read the ``calendar`` section of a policy file."""
    return calendar_from_dict((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("calendar"))


@lru_cache(maxsize=1)
def shop_calendar() -> ShopCalendar:
    """The shipped calendar, read once per process."""
    return load_calendar()


def add_working_days(start: date, days: int, calendar: Optional[ShopCalendar] = None) -> date:
    """The date ``days`` working days after ``start`` (``start`` itself when ``days`` is 0).

    Args:
        start: the day counting starts from (not counted itself).
        days: working days to add.
        calendar: the calendar to count in; the shop's (:func:`shop_calendar`) when omitted.
    """
    calendar = calendar or shop_calendar()
    current, remaining = start, days
    while remaining > 0:
        current += timedelta(days=1)
        if calendar.is_working_day(current):
            remaining -= 1
    return current
