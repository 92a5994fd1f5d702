"""What the shop does for a late delivery, as pure functions over ``actions/policy/delivery.yml``.

Two decisions: by when the carrier (or the warehouse, before shipping) answers an urge (催件), and
how many points a late order is compensated with. The answer time counts only the minutes the
service desk is open when the policy says so (opening hours from the human service policy,
``handoff/service.yml``), and is rounded up so shoppers read a clean time. Compensation is
looked up by days late, then multiplied for the membership tiers the policy names; it is granted
at most once per order, which :func:`compensation_key` makes the CRM enforce.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

import yaml

from handoff.policy import ServicePolicy, closing_time, next_opening

POLICY_FILE = Path(__file__).with_name("policy") / "delivery.yml"
OPENING_HOURS_HORIZON_DAYS = 21


@dataclass(frozen=True)
class CompensationStep:
    """One row of the compensation table: from ``min_days_late`` days late, ``points`` points."""

    min_days_late: int
    points: int


@dataclass(frozen=True)
class DeliveryPolicy:
    """The late-delivery policy, as read from the policy file.

    Attributes:
        answer_within_minutes: minutes the carrier has to answer an urge.
        count_within_opening_hours: count those minutes only while the service desk is open.
        round_up_minutes: the promised answer time is rounded up to a multiple of this.
        steps: the compensation table, ascending by ``min_days_late``.
        tier_multiplier: membership tier code → factor applied to the compensation.
    """

    answer_within_minutes: int
    count_within_opening_hours: bool
    round_up_minutes: int
    steps: Tuple[CompensationStep, ...]
    tier_multiplier: Mapping[str, int]


@dataclass(frozen=True)
class Compensation:
    """The compensation the policy allows for one late order.

    Attributes:
        days_late: days past the promised date.
        base_points: the table's points for that many days.
        multiplier: the tier's factor (1 for tiers without one).
        points: what the shopper is granted: ``base_points * multiplier``.
    """

    days_late: int
    base_points: int
    multiplier: int

    @property
    def points(self) -> int:
        return self.base_points * self.multiplier


def _positive_int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"delivery policy: {where} must be an integer ≥ {minimum}, got {value!r}")
    return value


def policy_from_dict(raw: Mapping[str, Any]) -> DeliveryPolicy:
    """Build the policy from the parsed policy file.

    Raises:
        ValueError: a value is missing or unusable, or the table repeats a row.
    """
    urge, compensation = raw["urge"], raw["compensation"]
    steps = sorted(
        (
            CompensationStep(_positive_int(row["min_days_late"], "min_days_late"), _positive_int(row["points"], "points"))
            for row in compensation["by_days_late"]
        ),
        key=lambda step: step.min_days_late,
    )
    if not steps or len({step.min_days_late for step in steps}) != len(steps):
        raise ValueError("delivery policy: by_days_late needs rows with distinct min_days_late")
    factors = compensation.get("tier_multiplier") or {}
    multipliers = {str(tier): _positive_int(factor, f"tier_multiplier.{tier}") for tier, factor in factors.items()}
    return DeliveryPolicy(
        answer_within_minutes=_positive_int(urge["answer_within_minutes"], "answer_within_minutes"),
        count_within_opening_hours=bool(urge.get("count_within_opening_hours", False)),
        round_up_minutes=_positive_int(urge.get("round_up_minutes", 1), "round_up_minutes"),
        steps=tuple(steps),
        tier_multiplier=multipliers,
    )


def load_policy(path: Path = POLICY_FILE) -> DeliveryPolicy:
    """Read the policy file."""
    return policy_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_policy() -> DeliveryPolicy:
    """The shipped policy, read once."""
    return load_policy()


# ------------------------------------------------------------------------------ compensation
def days_late(promised: date, today: date) -> int:
    """Days past the promised date (0 on or before it)."""
    return max(0, (today - promised).days)


def compensation_for(policy: DeliveryPolicy, late_days: int, tier: Optional[str]) -> Optional[Compensation]:
    """The compensation for an order ``late_days`` days late, of a member of ``tier``.

    Returns:
        None when no row of the table applies (not late, or fewer days than the first row).
    """
    applicable = [step for step in policy.steps if step.min_days_late <= late_days]
    if not applicable:
        return None
    return Compensation(late_days, applicable[-1].points, policy.tier_multiplier.get(tier or "", 1))


def compensation_key(order_id: str) -> str:
    """The idempotency key of an order's late-delivery compensation: one grant per order."""
    return f"late-delivery-{order_id}"


# ------------------------------------------------------------------------------------ urges
def _round_up(moment: datetime, minutes: int) -> datetime:
    base = moment.replace(second=0, microsecond=0)
    if base < moment:
        base += timedelta(minutes=1)
    remainder = (base.hour * 60 + base.minute) % minutes
    return base if remainder == 0 else base + timedelta(minutes=minutes - remainder)


def _add_open_minutes(hours: ServicePolicy, now: datetime, minutes: int) -> Optional[datetime]:
    """``now`` plus ``minutes`` counted only while the desk is open; None when it never opens."""
    tz = now.tzinfo
    assert tz is not None
    remaining = timedelta(minutes=minutes)
    moment = now
    for _ in range(OPENING_HOURS_HORIZON_DAYS * 2):
        start = next_opening(hours, moment, tz, OPENING_HOURS_HORIZON_DAYS)
        if start is None:
            return None
        close = closing_time(hours, start, tz)
        if close is None:
            return None
        if start + remaining <= close:
            return start + remaining
        remaining -= close - start
        moment = close
    return None


def urge_answer_due(policy: DeliveryPolicy, now: datetime, hours: Optional[ServicePolicy] = None) -> datetime:
    """By when the carrier answers an urge filed at ``now`` (a timezone-aware shop time).

    Args:
        policy: the delivery policy.
        now: when the urge is filed.
        hours: the human service policy whose opening hours count, when the policy counts them;
            without it (or when the desk never opens) the minutes are plain clock minutes.
    """
    if now.tzinfo is None:
        raise ValueError("now must carry a timezone")
    due: Optional[datetime] = None
    if policy.count_within_opening_hours and hours is not None:
        due = _add_open_minutes(hours, now, policy.answer_within_minutes)
    if due is None:
        due = now + timedelta(minutes=policy.answer_within_minutes)
    return _round_up(due, policy.round_up_minutes)
