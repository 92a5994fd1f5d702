"""How facts are written for shoppers: money, dates and times in the shop's timezone (masking: :mod:`bot.pii`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional
from zoneinfo import ZoneInfo

from bot.settings import get_settings

WEEKDAYS = "一二三四五六日"


def shop_timezone() -> ZoneInfo:
    """The timezone shoppers read dates in (SHOP_TIMEZONE, Asia/Shanghai by default)."""
    return ZoneInfo(get_settings().shop_timezone)


def today_in_shop() -> date:
    """Today's date where the shop is."""
    return datetime.now(shop_timezone()).date()


def money(fen: int) -> str:
    """¥ amount with two decimals: 56900 → ¥569.00."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


def parse_date(value: str) -> date:
    """A YYYY-MM-DD date (or the date part of an ISO timestamp)."""
    return date.fromisoformat(value[:10])


def parse_datetime(value: str) -> datetime:
    """An ISO 8601 timestamp converted to the shop's timezone."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=shop_timezone())
    return moment.astimezone(shop_timezone())


def day(value: date, today: Optional[date] = None) -> str:
    """11月23日（周一）, with 今天/明天/昨天 where it applies."""
    text = f"{value.month}月{value.day}日（周{WEEKDAYS[value.weekday()]}）"
    if value.year != (today or value).year:
        text = f"{value.year}年{text}"
    if today is not None:
        relative = {0: "今天", 1: "明天", -1: "昨天"}.get((value - today).days)
        if relative:
            text = f"{relative} {text}"
    return text


def moment(value: datetime) -> str:
    """11月21日 14:32."""
    return f"{value.month}月{value.day}日 {value:%H:%M}"


def when(value: datetime, now: datetime) -> str:
    """A time relative to ``now``, in the shop's timezone: 今天 16:30, 明天 09:30, 昨天 14:23, 11月25日 09:30."""
    local, current = value.astimezone(shop_timezone()), now.astimezone(shop_timezone())
    relative = {0: "今天", 1: "明天", -1: "昨天"}.get((local.date() - current.date()).days)
    return f"{relative} {local:%H:%M}" if relative else moment(local)
