"""Time handling: the database stores naive UTC datetimes; the API speaks the shop's timezone."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

OFFSET_FILE_ENV = "CRM_CLOCK_OFFSET_FILE"
"""Environment variable naming the file of seconds a test moves the CRM's clock on by (:class:`Clock`)."""


def offset_file_from_env() -> Optional[Path]:
    """The clock offset file named by :data:`OFFSET_FILE_ENV`, None when unset."""
    value = os.environ.get(OFFSET_FILE_ENV, "").strip()
    return Path(value) if value else None


def to_utc_naive(local: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Convert a naive datetime read in ``tz`` (or an aware one) to naive UTC."""
    aware = local if local.tzinfo is not None else local.replace(tzinfo=tz)
    return aware.astimezone(dt.timezone.utc).replace(tzinfo=None)


def iso_datetime(value: Optional[dt.datetime], tz: dt.tzinfo) -> Optional[str]:
    """Format a stored naive UTC datetime as ISO 8601 with the shop's offset, e.g. ``+08:00``."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).astimezone(tz).isoformat(timespec="seconds")


def iso_date(value: Optional[dt.date]) -> Optional[str]:
    """Format a date as ``YYYY-MM-DD``."""
    return value.isoformat() if value is not None else None


def local_date(value: dt.datetime, tz: dt.tzinfo) -> dt.date:
    """Calendar date in ``tz`` of a stored naive UTC datetime."""
    return value.replace(tzinfo=dt.timezone.utc).astimezone(tz).date()


def last_day_of_month(day: dt.date) -> dt.date:
    """Last calendar day of the month containing ``day``."""
    first_next = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return first_next - dt.timedelta(days=1)


def points_expiry(earned_on: dt.date) -> dt.date:
    """Points earned on ``earned_on`` expire at the end of the following year."""
    return dt.date(earned_on.year + 1, 12, 31)


@dataclass(frozen=True)
class Clock:
    """Current time of the shop.

    Attributes:
        tz: the shop's timezone.
        offset_file: a file holding seconds to add to the real time (``CRM_CLOCK_OFFSET_FILE``, for
            tests that move the CRM's time on: an urge's answer time, a due time passing); read on
            every reading of the clock, absent or empty meaning 0. Refused where strangers can
            reach the CRM (:func:`crm.__main__.main`).
    """

    tz: dt.tzinfo
    offset_file: Optional[Path] = None

    @classmethod
    def for_timezone(cls, name: str, offset_file: Optional[Path] = None) -> Clock:
        """Build a clock for an IANA timezone name such as ``Asia/Shanghai``."""
        return cls(ZoneInfo(name), offset_file)

    def _now(self) -> dt.datetime:
        now = dt.datetime.now(dt.timezone.utc)
        if self.offset_file is None:
            return now
        try:
            text = self.offset_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return now
        return now + dt.timedelta(seconds=float(text or 0))

    def now_utc(self) -> dt.datetime:
        """Current time as naive UTC, the form stored in the database."""
        return self._now().replace(tzinfo=None)

    def today(self) -> dt.date:
        """Current calendar date in the shop's timezone."""
        return self._now().astimezone(self.tz).date()
