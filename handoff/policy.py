"""The human service policy as data, and the pure functions that apply it.

The policy lives in one YAML file (``handoff/service.yml`` by default, ``HANDOFF_POLICY_FILE``
to change it): opening hours, SLA targets, capacity, presence, queue priorities, sticky routing,
ETA parameters, callback windows, reason labels, resolution codes and canned replies. Every
function here is pure: it takes the policy and the current time and returns a decision, so the
same rules hold for the bot, the channel and the desk, and tests can be tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60


class PolicyError(ValueError):
    """The policy file is missing or holds a value that cannot be used."""


@dataclass(frozen=True)
class DayHours:
    """Opening hours of one day, in minutes after midnight (``close`` may be 1440 for 24:00)."""

    open_minute: int
    close_minute: int


@dataclass(frozen=True)
class CannedReply:
    """A reply an agent can insert with one click."""

    title: str
    text: str


@dataclass(frozen=True)
class Team:
    """A team (skill) of agents a handoff is routed to.

    Attributes:
        code: the team's code (agents name it in the agents file).
        name: what agents read (售前, 售后, VIP).
        tiers: membership tiers routed to this team first.
        reasons: handoff reasons routed to it.
        intents: intents of the shopper routed to it.
        after_sales: the handoffs the SLA counts as after-sales are routed to it.
    """

    code: str
    name: str
    tiers: FrozenSet[str] = frozenset()
    reasons: FrozenSet[str] = frozenset()
    intents: FrozenSet[str] = frozenset()
    after_sales: bool = False


@dataclass(frozen=True)
class ServicePolicy:
    """Every tunable of the human service, as read from the policy file."""

    hours: Tuple[Optional[DayHours], ...]
    closed_dates: FrozenSet[date] = frozenset()
    first_response_s: int = 120
    after_sales_resolution_s: int = 6000
    after_sales_reasons: FrozenSet[str] = frozenset()
    after_sales_intents: FrozenSet[str] = frozenset()
    default_capacity: int = 3
    agent_capacity: Mapping[str, int] = field(default_factory=dict)
    heartbeat_ttl_s: int = 30
    priority_tiers: FrozenSet[str] = frozenset()
    tier_bonus_s: Mapping[str, int] = field(default_factory=dict)
    reason_bonus_s: Mapping[str, int] = field(default_factory=dict)
    sticky_offer_s: int = 60
    sticky_memory_days: int = 30
    default_handle_s: int = 300
    recent_handles: int = 50
    min_wait_s: int = 60
    update_min_interval_s: int = 30
    callback_window_minutes: int = 60
    callback_lead_minutes: int = 20
    callback_capacity: int = 0
    """Callbacks one window holds (0: no limit); a full window offers the next (:mod:`handoff.windows`)."""
    review_due_workdays: int = 2
    """Working days within which a supervisor contacts a shopper whose case is under review (:mod:`handoff.reviews`)."""
    review_complaint_after_s: int = 1800
    """A complaint this long after an agent ended the conversation is still about that agent (it opens a review)."""
    unattended_after_s: int = 600
    agent_offline_requeue_s: int = 120
    unclaimed_callback_s: int = 900
    sweep_interval_s: int = 5
    reasons: Mapping[str, str] = field(default_factory=dict)
    resolution_codes: Mapping[str, str] = field(default_factory=dict)
    canned_replies: Tuple[CannedReply, ...] = ()
    teams: Tuple[Team, ...] = ()
    default_team: str = ""
    auto_assign: bool = False
    dedicated_tiers: FrozenSet[str] = frozenset()
    """Tiers whose shoppers have a dedicated agent (一对一专属客服, :mod:`handoff.dedicated`)."""
    dedicated_team: str = ""
    """The team that serves them when their dedicated agent is away (its queue, the team's agents)."""
    dedicated_offer_s: int = 120
    """How long a handoff is offered to the dedicated agent alone before their team may claim it too."""


def _clock(value: Any, where: str) -> int:
    if not isinstance(value, str) or len(value.split(":")) != 2:
        raise PolicyError(f"{where}: a time looks like \"08:00\", got {value!r}")
    hours, minutes = value.split(":")
    if not (hours.isascii() and hours.isdigit() and minutes.isascii() and minutes.isdigit()):
        raise PolicyError(f"{where}: a time looks like \"08:00\", got {value!r}")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or total > MINUTES_PER_DAY:
        raise PolicyError(f"{where}: {value!r} is not a time of day")
    return total


def _day_hours(value: Any, where: str) -> Optional[DayHours]:
    if value is None:
        return None
    if not isinstance(value, Mapping) or "open" not in value or "close" not in value:
        raise PolicyError(f"{where}: expected {{open: \"08:00\", close: \"23:00\"}} or null")
    opening, closing = _clock(value["open"], f"{where}.open"), _clock(value["close"], f"{where}.close")
    if closing <= opening:
        raise PolicyError(f"{where}: close must be after open")
    return DayHours(opening, closing)


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{name}: expected a mapping")
    return value


def _int(section: Mapping[str, Any], key: str, default: int, where: str, minimum: int = 0) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"{where}.{key}: expected an integer >= {minimum}, got {value!r}")
    return value


def _int_map(value: Any, where: str) -> Dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values()):
        raise PolicyError(f"{where}: expected a mapping of names to non-negative integers")
    return {str(k): int(v) for k, v in value.items()}


def _labels(value: Any, where: str) -> Dict[str, str]:
    if not isinstance(value, Mapping) or not value or not all(isinstance(v, str) and v for v in value.values()):
        raise PolicyError(f"{where}: expected a non-empty mapping of codes to Chinese labels")
    return {str(k): v for k, v in value.items()}


def _names(value: Any, where: str) -> FrozenSet[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: expected a list of names")
    return frozenset(value)


def parse_policy(raw: Mapping[str, Any]) -> ServicePolicy:
    """Build and validate a policy from the file's parsed YAML.

    Args:
        raw: the mapping read from the policy file.

    Returns:
        The policy.

    Raises:
        PolicyError: a value is missing or unusable; the message names it.
    """
    if not isinstance(raw, Mapping):
        raise PolicyError("the policy file must hold a mapping")
    opening = _section(raw, "opening_hours")
    default_hours = _day_hours(opening.get("default"), "opening_hours.default") if "default" in opening else None
    hours: List[Optional[DayHours]] = []
    for key in WEEKDAY_KEYS:
        hours.append(_day_hours(opening[key], f"opening_hours.{key}") if key in opening else default_hours)
    try:
        closed = frozenset(date.fromisoformat(str(d)) for d in opening.get("closed_dates") or [])
    except ValueError as error:
        raise PolicyError(f"opening_hours.closed_dates: {error}") from error
    sla, capacity, presence = _section(raw, "sla"), _section(raw, "capacity"), _section(raw, "presence")
    priority, routing, eta = _section(raw, "priority"), _section(raw, "routing"), _section(raw, "eta")
    updates, callback, recovery = _section(raw, "queue_updates"), _section(raw, "callback"), _section(raw, "recovery")
    teams = _teams(raw.get("teams"))
    canned_raw = raw.get("canned_replies") or []
    if not isinstance(canned_raw, list) or not all(isinstance(c, Mapping) and c.get("title") and c.get("text") for c in canned_raw):
        raise PolicyError("canned_replies: expected a list of {title, text}")
    return ServicePolicy(
        hours=tuple(hours),
        closed_dates=closed,
        first_response_s=_int(sla, "first_response_s", 120, "sla", 1),
        after_sales_resolution_s=_int(sla, "after_sales_resolution_s", 6000, "sla", 1),
        after_sales_reasons=_names(sla.get("after_sales_reasons"), "sla.after_sales_reasons"),
        after_sales_intents=_names(sla.get("after_sales_intents"), "sla.after_sales_intents"),
        default_capacity=_int(capacity, "default", 3, "capacity", 1),
        agent_capacity=_int_map(capacity.get("agents"), "capacity.agents"),
        heartbeat_ttl_s=_int(presence, "heartbeat_ttl_s", 30, "presence", 5),
        priority_tiers=_names(priority.get("priority_tiers"), "priority.priority_tiers"),
        tier_bonus_s=_int_map(priority.get("tier_bonus_s"), "priority.tier_bonus_s"),
        reason_bonus_s=_int_map(priority.get("reason_bonus_s"), "priority.reason_bonus_s"),
        sticky_offer_s=_int(routing, "sticky_offer_s", 60, "routing"),
        sticky_memory_days=_int(routing, "sticky_memory_days", 30, "routing", 1),
        default_handle_s=_int(eta, "default_handle_s", 300, "eta", 1),
        recent_handles=_int(eta, "recent_handles", 50, "eta", 1),
        min_wait_s=_int(eta, "min_wait_s", 60, "eta", 1),
        update_min_interval_s=_int(updates, "min_interval_s", 30, "queue_updates"),
        callback_window_minutes=_int(callback, "window_minutes", 60, "callback", 10),
        callback_lead_minutes=_int(callback, "lead_minutes", 20, "callback"),
        callback_capacity=_int(callback, "capacity_per_window", 0, "callback"),
        review_due_workdays=_int(_section(raw, "reviews"), "due_workdays", 2, "reviews", 1),
        review_complaint_after_s=_int(_section(raw, "reviews"), "complaint_after_s", 1800, "reviews"),
        unattended_after_s=_int(callback, "unattended_after_s", 600, "callback", 1),
        agent_offline_requeue_s=_int(recovery, "agent_offline_requeue_s", 120, "recovery", 1),
        unclaimed_callback_s=_int(recovery, "unclaimed_callback_s", 900, "recovery", 1),
        sweep_interval_s=_int(recovery, "sweep_interval_s", 5, "recovery", 1),
        reasons=_labels(raw.get("reasons"), "reasons"),
        resolution_codes=_labels(raw.get("resolution_codes"), "resolution_codes"),
        canned_replies=tuple(CannedReply(str(c["title"]), str(c["text"])) for c in canned_raw),
        teams=teams,
        default_team=str(routing.get("default_team") or ""),
        auto_assign=bool(routing.get("auto_assign", False)),
        **_dedicated(_section(raw, "dedicated_agent"), teams),
    )


def _dedicated(section: Mapping[str, Any], teams: Tuple[Team, ...]) -> Dict[str, Any]:
    team = str(section.get("team") or "")
    if team and team not in {t.code for t in teams}:
        raise PolicyError(f"dedicated_agent.team: {team!r} is not a team of the policy")
    return {"dedicated_tiers": _names(section.get("tiers"), "dedicated_agent.tiers"), "dedicated_team": team,
            "dedicated_offer_s": _int(section, "offer_s", 120, "dedicated_agent", 1)}


def _teams(value: Any) -> Tuple[Team, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) and v.get("name") for v in value.values()):
        raise PolicyError("teams: expected a mapping of team codes to {name, tiers, reasons, intents, after_sales}")
    return tuple(Team(str(code), str(t["name"]), _names(t.get("tiers"), f"teams.{code}.tiers"), _names(t.get("reasons"), f"teams.{code}.reasons"),
                      _names(t.get("intents"), f"teams.{code}.intents"), bool(t.get("after_sales", False))) for code, t in value.items())


def team_for(policy: ServicePolicy, tier: Optional[str], reason: str, intents: Iterable[str]) -> Optional[Team]:
    """The team a handoff goes to: the first whose tiers hold the tier, else the first whose reasons,
    intents or after-sales rule match, else the default team; None when the policy has no teams."""
    asked = set(intents)
    for team in policy.teams:
        if tier and tier in team.tiers:
            return team
    for team in policy.teams:
        if reason in team.reasons or asked & team.intents or (team.after_sales and is_after_sales(policy, reason, asked)):
            return team
    return next((t for t in policy.teams if t.code == policy.default_team), None)


def has_dedicated_agent(policy: ServicePolicy, tier: Optional[str], customer_id: Optional[str]) -> bool:
    """Whether a shopper is served by a dedicated agent: a verified customer of a tier the policy names."""
    return bool(customer_id) and tier is not None and tier in policy.dedicated_tiers


def dedicated_team(policy: ServicePolicy) -> Optional[Team]:
    """The team that serves dedicated-agent shoppers when their agent is away (None: the policy names none)."""
    return next((t for t in policy.teams if t.code == policy.dedicated_team), None)


def dedicated_outcome(online: bool, load: int, capacity: int) -> str:
    """What becomes of a dedicated-agent shopper's handoff: ``offered`` to the dedicated agent when
    online with a free slot, else ``offline`` or ``busy`` (the team's queue, and the shopper is told)."""
    if not online:
        return "offline"
    return "offered" if load < capacity else "busy"


_cache: Dict[Path, Tuple[float, ServicePolicy]] = {}


def load_policy(path: Path) -> ServicePolicy:
    """Read the policy file (cached until the file changes).

    Args:
        path: the YAML policy file.

    Raises:
        PolicyError: the file cannot be read or is invalid.
    """
    try:
        mtime = path.stat().st_mtime
    except OSError as error:
        raise PolicyError(f"cannot read the policy file {path}: {error}") from error
    cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise PolicyError(f"cannot read the policy file {path}: {error}") from error
    policy = parse_policy(raw or {})
    _cache[path] = (mtime, policy)
    return policy


# Opening hours ------------------------------------------------------------------------------


def hours_on(policy: ServicePolicy, day: date) -> Optional[DayHours]:
    """The opening hours of a date, or None when agents are not at work that day."""
    if day in policy.closed_dates:
        return None
    return policy.hours[day.weekday()]


def _at(day: date, minute: int, tz: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=minute)


def _local(moment: datetime, tz: tzinfo) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("times must carry a timezone")
    return moment.astimezone(tz)


def is_open(policy: ServicePolicy, moment: datetime, tz: tzinfo) -> bool:
    """Whether agents are at work at ``moment`` (open ≤ t < close, shop time)."""
    local = _local(moment, tz)
    hours = hours_on(policy, local.date())
    minute = local.hour * 60 + local.minute
    return hours is not None and hours.open_minute <= minute < hours.close_minute


def closing_time(policy: ServicePolicy, moment: datetime, tz: tzinfo, horizon_days: int = 21) -> Optional[datetime]:
    """When the current opening period ends; None when closed now.

    A day open until 24:00 runs on into the next day when that day opens at 00:00: a desk open round the
    clock does not close at midnight (it closes, as far as this looks, ``horizon_days`` ahead).
    """
    if not is_open(policy, moment, tz):
        return None
    day = _local(moment, tz).date()
    for _ in range(horizon_days):
        hours = hours_on(policy, day)
        assert hours is not None
        close = _at(day, hours.close_minute, tz)
        if not is_open(policy, close, tz):
            return close
        day += timedelta(days=1)
    return close


def next_opening(policy: ServicePolicy, moment: datetime, tz: tzinfo, horizon_days: int = 21) -> Optional[datetime]:
    """The next moment agents start work, strictly after ``moment`` unless open now (then ``moment``).

    Returns:
        The opening time, or None when nothing opens within ``horizon_days``.
    """
    if is_open(policy, moment, tz):
        return _local(moment, tz)
    local = _local(moment, tz)
    for offset in range(horizon_days + 1):
        day = local.date() + timedelta(days=offset)
        hours = hours_on(policy, day)
        if hours is None:
            continue
        opening = _at(day, hours.open_minute, tz)
        if opening > local:
            return opening
    return None


def _round_up(moment: datetime, minutes: int) -> datetime:
    base = moment.replace(second=0, microsecond=0)
    if base < moment:
        base += timedelta(minutes=1)
    remainder = base.minute % minutes
    return base if remainder == 0 else base + timedelta(minutes=minutes - remainder)


def callback_window(policy: ServicePolicy, moment: datetime, tz: tzinfo) -> Optional[Tuple[datetime, datetime]]:
    """The window in which an agent will call the shopper back.

    The window starts at least ``callback.lead_minutes`` from now, rounded up to 10 minutes, inside
    opening hours (the next opening when the rest of today's hours cannot hold it), and lasts
    ``callback.window_minutes`` (cut at closing time).

    Returns:
        (start, end) in shop time, or None when nothing opens within three weeks.
    """
    local = _local(moment, tz)
    earliest = _round_up(local + timedelta(minutes=policy.callback_lead_minutes), 10)
    length = timedelta(minutes=policy.callback_window_minutes)
    candidate: Optional[datetime] = earliest
    for _ in range(30):
        if candidate is None:
            return None
        start = next_opening(policy, candidate, tz)
        if start is None:
            return None
        start = _round_up(start, 10)
        close = closing_time(policy, start, tz)
        if close is not None and start + min(length, timedelta(minutes=30)) <= close:
            return start, min(start + length, close)
        candidate = (close or start) + timedelta(minutes=1)
    return None


# Queue order, capacity, SLA -------------------------------------------------------------------


def is_priority_tier(policy: ServicePolicy, tier: Optional[str]) -> bool:
    """Whether a membership tier is served in the priority lane (L4–L5 by default)."""
    return tier is not None and tier in policy.priority_tiers


def priority_score(policy: ServicePolicy, enqueued_at: float, tier: Optional[str], reason: str) -> float:
    """The queue score of a handoff: lower is served first.

    The score is the time the shopper entered the queue minus the credits of their tier and of the
    reason, so a priority shopper jumps ahead of recent arrivals but not of someone who has waited
    much longer.

    Args:
        policy: the policy.
        enqueued_at: epoch seconds when the shopper asked for a human.
        tier: membership tier code (L1–L5), None when unknown.
        reason: handoff reason code.
    """
    bonus = policy.tier_bonus_s.get(tier or "", 0) + policy.reason_bonus_s.get(reason, 0)
    return round(enqueued_at - bonus, 3)


def capacity_for(policy: ServicePolicy, agent: str) -> int:
    """How many conversations an agent handles at once."""
    return int(policy.agent_capacity.get(agent, policy.default_capacity))


def is_after_sales(policy: ServicePolicy, reason: str, intents: Iterable[str]) -> bool:
    """Whether a handoff is an after-sales issue (the 100-minute target applies)."""
    return reason in policy.after_sales_reasons or any(intent in policy.after_sales_intents for intent in intents)


@dataclass(frozen=True)
class SlaDue:
    """Deadlines of one handoff, epoch seconds (``resolution`` None when no target applies)."""

    first_response: float
    resolution: Optional[float]


def sla_due(policy: ServicePolicy, enqueued_at: float, after_sales: bool) -> SlaDue:
    """The first-response and (for after-sales issues) resolution deadlines of a handoff."""
    return SlaDue(
        first_response=enqueued_at + policy.first_response_s,
        resolution=enqueued_at + policy.after_sales_resolution_s if after_sales else None,
    )


def first_response_breached(due: float, first_response_at: Optional[float], now: float) -> bool:
    """Whether a handoff missed its first-response target: answered after the due time, or unanswered past it."""
    return (first_response_at if first_response_at is not None else now) > due


def complaint_is_about_agent(policy: ServicePolicy, status: str, resolved_at: Optional[float], now: float) -> bool:
    """Whether a shopper's complaint is about the agent of their latest handoff: while the agent has the
    conversation, or within ``reviews.complaint_after_s`` after the agent ended it."""
    if status == "assigned":
        return True
    return status == "resolved" and resolved_at is not None and 0 <= now - resolved_at <= policy.review_complaint_after_s


def reason_label(policy: ServicePolicy, reason: str) -> str:
    """The Chinese label of a reason code (the code itself when unknown)."""
    return policy.reasons.get(reason, reason)


# Estimated wait ------------------------------------------------------------------------------


def mean_handle_s(policy: ServicePolicy, recent: Sequence[float]) -> float:
    """Mean of the most recent handling times; the policy's default before there is any."""
    values = [v for v in list(recent)[: policy.recent_handles] if v > 0]
    return sum(values) / len(values) if values else float(policy.default_handle_s)


def estimate_wait_s(policy: ServicePolicy, position: int, free_slots: int, total_slots: int, handle_s: float) -> Optional[int]:
    """Seconds until a shopper at ``position`` in the queue is likely to be served.

    When a free slot is waiting for them, the wait is the minimum; otherwise the slots must free
    up ``position - free_slots`` times, and all agents together free one every
    ``handle_s / total_slots`` seconds.

    Args:
        policy: the policy (for the minimum wait).
        position: 1 for the next shopper served.
        free_slots: conversations the online agents can still take.
        total_slots: conversations the online agents handle at once.
        handle_s: mean handling time in seconds.

    Returns:
        Seconds, rounded up to whole minutes; None when no agent is online.
    """
    if total_slots <= 0:
        return None
    position = max(1, position)
    if position <= free_slots:
        seconds = float(policy.min_wait_s)
    else:
        seconds = max(float(policy.min_wait_s), (position - max(0, free_slots)) * handle_s / total_slots)
    return int(math.ceil(seconds / 60.0) * 60)


def should_notify_position(policy: ServicePolicy, position: int, last_position: Optional[int], last_at: Optional[float], now: float) -> bool:
    """Whether a waiting shopper should be told their new position now.

    Told when the position changed, at most once per ``queue_updates.min_interval_s``, except that
    becoming next in line is always told at once.
    """
    if last_position is not None and position == last_position:
        return False
    if position == 1:
        return True
    return last_at is None or now - last_at >= policy.update_min_interval_s


# Recovery: nothing hangs, nothing is dropped --------------------------------------------------


def offline_since(presence_until: Optional[float], noticed_at: Optional[float], activity: Iterable[Optional[float]], now: float) -> Optional[float]:
    """Since when the agent of an assigned handoff counts as offline (its presence key is gone).

    The agent's presence ended at ``presence_until`` (the last heartbeat's expiry, or the logout);
    without it (a presence older than this rule) the sweeper's first sighting ``noticed_at`` counts.
    Anything the agent did with the handoff later (claim, transfer to them, a reply) moves it on:
    whoever acted on it was there. Never in the future.

    Returns:
        Epoch seconds, None when nothing is known yet.
    """
    known = [t for t in (presence_until if presence_until is not None else noticed_at, *activity) if t is not None]
    return min(max(known), now) if known else None


def offline_recovery(policy: ServicePolicy, offline_s: Optional[float], open_now: bool, others_online: bool) -> Optional[str]:
    """What becomes of an assigned handoff whose agent has been offline for ``offline_s`` seconds.

    Returns:
        None while the agent may still come back (under ``recovery.agent_offline_requeue_s``);
        ``requeue`` (back to the queue with its original priority) during opening hours with
        another agent online; ``callback`` otherwise (out of hours, or nobody left to take it).
    """
    if offline_s is None or offline_s < policy.agent_offline_requeue_s:
        return None
    return "requeue" if open_now and others_online else "callback"


def queued_since(enqueued_at: float, requeued_at: Optional[float] = None) -> float:
    """When a handoff last entered the queue: the request, or its return after the agent left."""
    return max(enqueued_at, requeued_at or 0.0)


def unclaimed_overdue(policy: ServicePolicy, enqueued_at: float, requeued_at: Optional[float], now: float) -> bool:
    """Whether a waiting handoff has gone unclaimed for ``recovery.unclaimed_callback_s`` (it becomes a callback)."""
    return now - queued_since(enqueued_at, requeued_at) >= policy.unclaimed_callback_s


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def opening_hours_text(policy: ServicePolicy) -> str:
    """Opening hours as shoppers read them: ``08:00–23:00``, or per weekday when days differ."""
    distinct = {hours for hours in policy.hours}
    if len(distinct) == 1:
        only = next(iter(distinct))
        return "暂停服务" if only is None else f"{_hhmm(only.open_minute)}–{_hhmm(only.close_minute)}"
    names = "一二三四五六日"
    parts = []
    for index, hours in enumerate(policy.hours):
        parts.append(f"周{names[index]} " + ("休息" if hours is None else f"{_hhmm(hours.open_minute)}–{_hhmm(hours.close_minute)}"))
    return "，".join(parts)
