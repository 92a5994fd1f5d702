"""The late-delivery policy as tables: urge answer times within opening hours, compensation by days and tier."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from actions.delivery_policy import (
    Compensation,
    compensation_for,
    compensation_key,
    days_late,
    default_policy,
    policy_from_dict,
    urge_answer_due,
)
from bot.settings import PROJECT_ROOT
from handoff.policy import DayHours, ServicePolicy, load_policy

TZ = ZoneInfo("Asia/Shanghai")
POLICY = default_policy()
DESK = load_policy(PROJECT_ROOT / "handoff" / "service.yml")
# 08:00–23:00 every day, closed on Sunday 2026-11-29.
HOURS = ServicePolicy(hours=(DayHours(8 * 60, 23 * 60),) * 7, closed_dates=frozenset({date(2026, 11, 29)}))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


def test_shipped_policy_values():
    assert POLICY.answer_within_minutes == 120
    assert POLICY.count_within_opening_hours and POLICY.round_up_minutes == 10
    assert [(step.min_days_late, step.points) for step in POLICY.steps] == [(1, 500), (3, 1000), (7, 2000)]
    assert dict(POLICY.tier_multiplier) == {"L4": 2, "L5": 2}


@pytest.mark.parametrize(
    ("now", "due"),
    [
        ("2026-11-23 14:23:05", "2026-11-23 16:30"),  # 2 hours later, rounded up to 10 minutes
        ("2026-11-23 14:30:00", "2026-11-23 16:30"),  # already on a round time
        ("2026-11-23 20:50:00", "2026-11-23 22:50"),  # ends just before closing
        ("2026-11-23 22:30:00", "2026-11-24 09:30"),  # 30 minutes tonight, 90 tomorrow morning
        ("2026-11-23 23:30:00", "2026-11-24 10:00"),  # filed after closing: the clock starts at 08:00
        ("2026-11-24 03:10:00", "2026-11-24 10:00"),  # filed at night
        ("2026-11-28 22:00:00", "2026-11-30 09:00"),  # Sunday closed: Saturday 60 min + Monday 60 min
    ],
)
def test_urge_answer_counts_only_opening_hours(now, due):
    assert urge_answer_due(POLICY, at(now), HOURS) == at(due)


def test_urge_answer_with_the_desk_policy_file():
    assert urge_answer_due(POLICY, at("2026-11-23 22:30:00"), DESK) == at("2026-11-24 09:30")


@pytest.mark.parametrize(
    ("hours", "now", "due"),
    [
        (None, "2026-11-23 22:30:00", "2026-11-24 00:30"),  # no opening hours known: clock minutes
        (ServicePolicy(hours=(None,) * 7), "2026-11-23 22:31:00", "2026-11-24 00:40"),  # never open: clock minutes
    ],
)
def test_urge_answer_falls_back_to_clock_minutes(hours, now, due):
    assert urge_answer_due(POLICY, at(now), hours) == at(due)


def test_clock_minutes_when_the_policy_says_so():
    clock_policy = policy_from_dict(
        {"urge": {"answer_within_minutes": 90, "count_within_opening_hours": False, "round_up_minutes": 15},
         "compensation": {"by_days_late": [{"min_days_late": 1, "points": 100}]}}
    )
    assert urge_answer_due(clock_policy, at("2026-11-23 22:31:00"), HOURS) == at("2026-11-24 00:15")


def test_urge_answer_needs_an_aware_time():
    with pytest.raises(ValueError):
        urge_answer_due(POLICY, datetime(2026, 11, 23, 14, 0), HOURS)


@pytest.mark.parametrize(
    ("promised", "today", "late"),
    [("2026-11-20", "2026-11-22", 2), ("2026-11-22", "2026-11-22", 0), ("2026-11-25", "2026-11-22", 0), ("2026-11-21", "2026-11-22", 1)],
)
def test_days_late(promised, today, late):
    assert days_late(date.fromisoformat(promised), date.fromisoformat(today)) == late


@pytest.mark.parametrize(
    ("late", "tier", "points"),
    [
        (0, "L1", None),
        (1, "L1", 500),
        (2, "L3", 500),
        (2, "L4", 1000),
        (3, "L2", 1000),
        (6, "L5", 2000),
        (7, "L1", 2000),
        (30, "L4", 4000),
        (1, None, 500),
        (1, "L9", 500),
    ],
)
def test_compensation_by_days_late_and_tier(late, tier, points):
    found = compensation_for(POLICY, late, tier)
    assert (found.points if found else None) == points


def test_compensation_names_its_parts():
    assert compensation_for(POLICY, 2, "L4") == Compensation(days_late=2, base_points=500, multiplier=2)


def test_one_key_per_order():
    assert compensation_key("880000010001") == compensation_key("880000010001") != compensation_key("880000010002")


@pytest.mark.parametrize(
    "broken",
    [
        {"by_days_late": []},
        {"by_days_late": [{"min_days_late": 1, "points": 500}, {"min_days_late": 1, "points": 800}]},
        {"by_days_late": [{"min_days_late": 0, "points": 500}]},
        {"by_days_late": [{"min_days_late": 1, "points": -5}]},
        {"by_days_late": [{"min_days_late": 1, "points": 500}], "tier_multiplier": {"L4": True}},
    ],
)
def test_malformed_compensation_tables_are_refused(broken):
    with pytest.raises(ValueError):
        policy_from_dict({"urge": {"answer_within_minutes": 120}, "compensation": broken})
