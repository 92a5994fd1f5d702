"""The service policy file and the pure functions that apply it, table by table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from handoff.policy import (
    PolicyError,
    callback_window,
    capacity_for,
    closing_time,
    estimate_wait_s,
    is_after_sales,
    is_open,
    is_priority_tier,
    load_policy,
    mean_handle_s,
    next_opening,
    opening_hours_text,
    parse_policy,
    priority_score,
    should_notify_position,
    sla_due,
)
from tests.support.desk import POLICY_FILE

TZ = ZoneInfo("Asia/Shanghai")
POLICY = load_policy(POLICY_FILE)


def at(text: str) -> datetime:
    """A shop-time moment: "2026-11-23 07:59" (a Monday)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)


def test_shipped_policy_has_the_documented_targets():
    assert POLICY.first_response_s == 120
    assert POLICY.after_sales_resolution_s == 100 * 60
    assert opening_hours_text(POLICY) == "08:00–23:00"
    assert POLICY.priority_tiers == {"L4", "L5"}
    assert set(POLICY.resolution_codes) >= {"resolved", "refund_arranged", "escalated"}
    assert POLICY.canned_replies and all(c.title and c.text for c in POLICY.canned_replies)


@pytest.mark.parametrize(
    "moment, expected",
    [
        ("2026-11-23 07:59", False),
        ("2026-11-23 08:00", True),
        ("2026-11-23 12:30", True),
        ("2026-11-23 22:59", True),
        ("2026-11-23 23:00", False),
        ("2026-11-23 23:59", False),
        ("2026-11-24 00:00", False),
    ],
)
def test_opening_hours(moment: str, expected: bool):
    assert is_open(POLICY, at(moment), TZ) is expected


def test_opening_hours_accept_any_timezone():
    utc = datetime(2026, 11, 23, 1, 0, tzinfo=ZoneInfo("UTC"))  # 09:00 in Shanghai
    assert is_open(POLICY, utc, TZ)
    with pytest.raises(ValueError):
        is_open(POLICY, datetime(2026, 11, 23, 9, 0), TZ)


@pytest.mark.parametrize(
    "moment, expected",
    [
        ("2026-11-23 03:00", "2026-11-23 08:00"),
        ("2026-11-23 10:00", "2026-11-23 10:00"),
        ("2026-11-23 23:30", "2026-11-24 08:00"),
    ],
)
def test_next_opening(moment: str, expected: str):
    assert next_opening(POLICY, at(moment), TZ) == at(expected)


@pytest.mark.parametrize(
    "moment, start, end",
    [
        # open: at least 20 minutes ahead, rounded up to 10 minutes, one hour long
        ("2026-11-23 14:03", "2026-11-23 14:30", "2026-11-23 15:30"),
        ("2026-11-23 14:10", "2026-11-23 14:30", "2026-11-23 15:30"),
        # shortly before closing: cut at closing time when at least 30 minutes remain
        ("2026-11-23 22:00", "2026-11-23 22:20", "2026-11-23 23:00"),
        # too late today: next morning
        ("2026-11-23 22:30", "2026-11-24 08:00", "2026-11-24 09:00"),
        ("2026-11-23 23:45", "2026-11-24 08:00", "2026-11-24 09:00"),
        # night: the morning's first hour
        ("2026-11-24 02:00", "2026-11-24 08:00", "2026-11-24 09:00"),
        ("2026-11-24 07:50", "2026-11-24 08:10", "2026-11-24 09:10"),
    ],
)
def test_callback_windows(moment: str, start: str, end: str):
    assert callback_window(POLICY, at(moment), TZ) == (at(start), at(end))


def test_a_desk_open_round_the_clock_does_not_close_at_midnight():
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    raw["opening_hours"] = {"default": {"open": "00:00", "close": "24:00"}, "closed_dates": ["2026-11-26"]}
    policy = parse_policy(raw)
    assert closing_time(policy, at("2026-11-23 23:30"), TZ) == at("2026-11-26 00:00")
    assert callback_window(policy, at("2026-11-23 23:00"), TZ) == (at("2026-11-23 23:20"), at("2026-11-24 00:20"))
    # the day before a closed date still ends at midnight
    assert callback_window(policy, at("2026-11-25 23:00"), TZ) == (at("2026-11-25 23:20"), at("2026-11-26 00:00"))


def test_closed_days_and_dates_are_skipped(tmp_path: Path):
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    raw["opening_hours"] = {"default": {"open": "09:00", "close": "18:00"}, "sun": None, "closed_dates": ["2026-11-30"]}
    policy = parse_policy(raw)
    saturday_evening = at("2026-11-28 19:00")
    assert callback_window(policy, saturday_evening, TZ) == (at("2026-12-01 09:00"), at("2026-12-01 10:00"))
    assert not is_open(policy, at("2026-11-29 10:00"), TZ)
    assert "周日 休息" in opening_hours_text(policy)


@pytest.mark.parametrize(
    "tier, reason, expected_bonus",
    [
        (None, "requested", 0),
        ("L1", "requested", 0),
        ("L4", "requested", 600),
        ("L5", "requested", 900),
        ("L2", "complaint", 300),
        ("L2", "angry", 300),
        ("L5", "angry", 1200),
        ("L3", "policy_undecided", 180),
    ],
)
def test_priority_scores(tier, reason, expected_bonus):
    assert priority_score(POLICY, 1_000_000.0, tier, reason) == 1_000_000.0 - expected_bonus


def test_priority_respects_waiting_time():
    old_l1 = priority_score(POLICY, 1_000_000.0, "L1", "requested")
    new_l5 = priority_score(POLICY, 1_000_000.0 + 60, "L5", "requested")
    much_later_l5 = priority_score(POLICY, 1_000_000.0 + 3600, "L5", "requested")
    assert new_l5 < old_l1 < much_later_l5
    assert is_priority_tier(POLICY, "L4") and is_priority_tier(POLICY, "L5")
    assert not is_priority_tier(POLICY, "L3") and not is_priority_tier(POLICY, None)


@pytest.mark.parametrize(
    "position, free, total, handle_s, expected",
    [
        (1, 2, 6, 300.0, 60),     # a free slot: the minimum wait
        (2, 2, 6, 300.0, 60),
        (3, 2, 6, 300.0, 60),     # one slot to free: 50 s → rounded up to 1 minute
        (5, 0, 6, 300.0, 300),    # 5 slots to free at 6 per 300 s: 250 s → 5 minutes
        (10, 0, 3, 300.0, 1020),  # 1000 s → 17 minutes
        (1, 0, 3, 600.0, 240),    # 200 s → 4 minutes
        (4, 0, 0, 300.0, None),   # nobody online
    ],
)
def test_estimated_waits(position, free, total, handle_s, expected):
    assert estimate_wait_s(POLICY, position, free, total, handle_s) == expected


def test_mean_handle_time_uses_recent_values_or_the_default():
    assert mean_handle_s(POLICY, []) == 300.0
    assert mean_handle_s(POLICY, [100.0, 200.0, 0.0]) == 150.0
    assert mean_handle_s(POLICY, [60.0] * 50 + [6000.0] * 10) == 60.0  # only the 50 most recent


@pytest.mark.parametrize(
    "position, last, last_at, now, expected",
    [
        (3, None, None, 100.0, True),
        (3, 3, 0.0, 100.0, False),   # unchanged
        (2, 3, 90.0, 100.0, False),  # changed but told 10 s ago
        (2, 3, 60.0, 100.0, True),   # changed, told 40 s ago
        (1, 2, 99.0, 100.0, True),   # next in line: always told
    ],
)
def test_position_notices_are_throttled(position, last, last_at, now, expected):
    assert should_notify_position(POLICY, position, last, last_at, now) is expected


@pytest.mark.parametrize(
    "reason, intents, expected",
    [
        ("requested", ["track_order"], False),
        ("requested", ["return_request"], True),
        ("complaint", [], True),
        ("angry", [], True),
        ("fallback", ["points_balance"], False),
        ("policy_undecided", [], True),
        ("requested", ["urge_delivery"], True),
    ],
)
def test_after_sales_classification(reason, intents, expected):
    assert is_after_sales(POLICY, reason, intents) is expected


def test_sla_deadlines():
    due = sla_due(POLICY, 1000.0, after_sales=True)
    assert (due.first_response, due.resolution) == (1120.0, 7000.0)
    assert sla_due(POLICY, 1000.0, after_sales=False).resolution is None


def test_capacity_per_agent(tmp_path: Path):
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    raw["capacity"] = {"default": 2, "agents": {"agent1": 5}}
    policy = parse_policy(raw)
    assert (capacity_for(policy, "agent1"), capacity_for(policy, "agent2")) == (5, 2)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"opening_hours": {"default": {"open": "8点", "close": "23:00"}}}, "opening_hours.default.open"),
        ({"opening_hours": {"default": {"open": "20:00", "close": "08:00"}}}, "close must be after open"),
        ({"opening_hours": {"default": {"open": "08:00", "close": "25:00"}}}, "not a time of day"),
        ({"sla": {"first_response_s": -1}}, "sla.first_response_s"),
        ({"capacity": {"default": 0}}, "capacity.default"),
        ({"resolution_codes": {}}, "resolution_codes"),
        ({"priority": {"tier_bonus_s": {"L4": "a lot"}}}, "priority.tier_bonus_s"),
        ({"canned_replies": [{"title": "x"}]}, "canned_replies"),
    ],
)
def test_invalid_policies_name_the_culprit(change, message):
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    raw.update(change)
    with pytest.raises(PolicyError, match=message):
        parse_policy(raw)


def test_missing_policy_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "nope.yml")
