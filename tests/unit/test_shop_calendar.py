"""One shop calendar for every refund date: a cancelled order's refund (the bot's promise), a return's
refund (the bot's quote and the CRM's expected date) count working days in bot.shop_calendar."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import FrozenSet

import pytest

from actions import formatting
from actions import order_change_rules as rules
from actions import return_policy as rp
from bot.shop_calendar import CALENDAR_FILE, ShopCalendar, add_working_days, calendar_from_dict, load_calendar, shop_calendar
from crm.service import expected_refund_date

TODAY = date(2026, 11, 23)  # a Monday
ORDER = {"order_id": "880000020002", "status": "awaiting_shipment", "paid_at": "2026-11-22T21:06:00+08:00", "paid_fen": 23700}
NONE: FrozenSet[date] = frozenset()


@pytest.mark.parametrize(
    ("method", "holidays", "worked_weekend_days", "cancel_by", "return_by"),
    [
        # Cancelled: the refund takes the method's working days from today. Returned: handled within
        # 3 calendar days (to Thursday 26th), then the same working days.
        ("bank_card", NONE, NONE, date(2026, 12, 2), date(2026, 12, 7)),
        ("bank_card", frozenset({date(2026, 12, 1)}), NONE, date(2026, 12, 3), date(2026, 12, 8)),  # a holiday moves both
        ("bank_card", NONE, frozenset({date(2026, 11, 28)}), date(2026, 12, 1), date(2026, 12, 4)),  # a worked Saturday too
        ("wallet", NONE, NONE, date(2026, 11, 26), date(2026, 12, 1)),
        ("wallet", frozenset({date(2026, 11, 25)}), NONE, date(2026, 11, 27), date(2026, 12, 1)),
        ("wallet", frozenset({date(2026, 11, 30)}), NONE, date(2026, 11, 26), date(2026, 12, 2)),
    ],
)
def test_a_holiday_in_the_shop_calendar_moves_cancellation_and_return_refund_dates(
    method: str, holidays: FrozenSet[date], worked_weekend_days: FrozenSet[date], cancel_by: date, return_by: date
) -> None:
    calendar = ShopCalendar(holidays=holidays, working_weekend_days=worked_weekend_days)
    policy = replace(rp.default_policy(), calendar=calendar)
    promise = rules.refund_promise({**ORDER, "payment_method": method}, TODAY, policy)
    assert f"最晚 {formatting.day(cancel_by, TODAY)}。" in promise
    assert rp.refund_dates(TODAY, method, policy)[1] == return_by
    assert expected_refund_date(TODAY, method, calendar) == return_by


def test_every_refund_date_counts_the_shipped_calendar_by_default() -> None:
    shipped = load_calendar(CALENDAR_FILE)
    assert shop_calendar() == shipped == rp.default_policy().calendar
    assert add_working_days(TODAY, 7) == add_working_days(TODAY, 7, shipped)
    promise = rules.refund_promise({**ORDER, "payment_method": "bank_card"}, TODAY)
    assert f"最晚 {formatting.day(add_working_days(TODAY, 7, shipped), TODAY)}。" in promise
    assert expected_refund_date(TODAY, "bank_card") == rp.refund_dates(TODAY, "bank_card", rp.default_policy())[1]


def test_the_calendar_section_is_read_with_its_holidays_and_worked_weekend_days(tmp_path: Path) -> None:
    policy_file = tmp_path / "returns.yml"
    policy_file.write_text("calendar:\n  weekend: [5, 6]\n  holidays: [2026-10-01, '2026-10-02']\n  working_weekend_days: ['2026-10-10']\n",
                           encoding="utf-8")
    calendar = load_calendar(policy_file)
    assert calendar == ShopCalendar(holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2)}), working_weekend_days=frozenset({date(2026, 10, 10)}))
    assert add_working_days(date(2026, 9, 30), 1, calendar) == date(2026, 10, 5)  # the holidays, then the weekend
    assert add_working_days(date(2026, 10, 8), 2, calendar) == date(2026, 10, 10)  # Friday, then the worked Saturday


@pytest.mark.parametrize(
    ("section", "message"),
    [({"weekend": [7]}, "weekend"), ({"weekend": "sat"}, "weekend"), ({"holidays": ["10/01"]}, "holidays"),
     ({"working_weekend_days": "2026-09-27"}, "working_weekend_days")],
)
def test_a_bad_calendar_is_refused_with_the_field_named(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calendar_from_dict(section)
