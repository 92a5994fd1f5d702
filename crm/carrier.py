"""The carrier's (or, before shipping, the warehouse's) answer to an urge (催件), as the reference CRM
simulates it.

Each urge gets one outcome, chosen deterministically from its id with the weights of
``crm/policy/carrier_answers.yml``, so a test database answers the same way every time:

- ``scan``: the carrier expedites the parcel and a new scan appears in its track at the answer time;
- ``reason``: the carrier (or the warehouse) gives a reason for the delay from the table;
- ``none``: nobody answers before the promised ``answer_due_at``, nor after it.

An answer arrives between the shares ``answer_after`` of the time from the urge to its due time, and
is visible once the CRM's clock has passed that time. Nothing is stored: the answer is a function
of the urge and the clock, so the schema does not change and the scan shows in every read of the
order (:func:`crm.service.get_order`) from its time on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import yaml  # type: ignore[import-untyped]

from crm.clock import iso_datetime
from crm.models import OrderUrge
from crm.policy import POLICY_DIR, PolicyError

ANSWERS_FILE = POLICY_DIR / "carrier_answers.yml"
OUTCOMES = ("scan", "reason", "none")
DEFAULT_LOCATION = "转运中心"
"""Where the scan is when the parcel has no scan yet."""


@dataclass(frozen=True)
class Reason:
    """A reason for a delay: code, short label (天气原因) and the sentence the carrier gives."""

    code: str
    label: str
    detail: str
    targets: Tuple[str, ...]


@dataclass(frozen=True)
class AnswerTable:
    """The outcomes' weights, when answers arrive, the scans and the reasons."""

    weights: Tuple[Tuple[str, int], ...]
    answer_after: Tuple[float, float]
    scans: Tuple[str, ...]
    reasons: Tuple[Reason, ...]


@dataclass(frozen=True)
class CarrierAnswer:
    """What the carrier answers to one urge, whatever the clock says.

    Attributes:
        outcome: ``scan``, ``reason`` or ``none``.
        answered_at: naive UTC time of the answer; None for ``none``.
        reason: the reason given (``reason`` only).
        scan: the new scan's description (``scan`` only).
    """

    outcome: str
    answered_at: Optional[dt.datetime]
    reason: Optional[Reason] = None
    scan: str = ""

    def visible(self, now: dt.datetime) -> bool:
        """Whether the answer has arrived at ``now`` (naive UTC)."""
        return self.answered_at is not None and self.answered_at <= now


def parse_table(document: Mapping[str, Any]) -> AnswerTable:
    """Check and parse the answers table.

    Raises:
        PolicyError: a part is missing or malformed.
    """
    try:
        weights = tuple((name, int(document["outcomes"][name])) for name in OUTCOMES)
        low, high = (float(share) for share in document["answer_after"])
        scans = tuple(str(text) for text in document["scans"])
        reasons = tuple(
            Reason(str(entry["code"]), str(entry["label"]), str(entry["detail"]), tuple(str(t) for t in entry["targets"]))
            for entry in document["reasons"]
        )
    except (KeyError, TypeError, ValueError) as error:
        raise PolicyError(f"carrier answers table: {error!r}") from None
    if any(weight < 0 for _, weight in weights) or not sum(weight for _, weight in weights):
        raise PolicyError("carrier answers table: outcome weights must be non-negative, not all 0")
    if not 0 < low <= high < 1:
        raise PolicyError("carrier answers table: answer_after must be two shares with 0 < low <= high < 1")
    for target in ("carrier", "warehouse"):
        if not any(target in reason.targets for reason in reasons):
            raise PolicyError(f"carrier answers table: no reason for target {target}")
    if not scans or any("{location}" not in scan for scan in scans):
        raise PolicyError("carrier answers table: scans must name {location}")
    return AnswerTable(weights, (low, high), scans, reasons)


@cache
def load_table(path: Path = ANSWERS_FILE) -> AnswerTable:
    """The shipped answers table (cached per path)."""
    with path.open(encoding="utf-8") as handle:
        return parse_table(yaml.safe_load(handle) or {})


def _draws(urge_id: int) -> Tuple[float, float, int, int]:
    digest = hashlib.sha256(f"carrier-answer:{urge_id}".encode()).digest()
    unit = [int.from_bytes(digest[i : i + 4], "big") / 2**32 for i in (0, 4)]
    return unit[0], unit[1], digest[8], digest[9]


def outcome_of(urge_id: int, target: str, table: Optional[AnswerTable] = None) -> str:
    """The outcome of an urge: ``scan``, ``reason`` or ``none`` (a warehouse urge never has a scan)."""
    table = table or load_table()
    weights = dict(table.weights)
    if target != "carrier":
        weights = {"scan": 0, "reason": weights["scan"] + weights["reason"], "none": weights["none"]}
    pick = _draws(urge_id)[0] * sum(weights.values())
    for name in OUTCOMES:
        pick -= weights[name]
        if pick < 0 and weights[name]:
            return name
    return "none"


def answer_for(urge: OrderUrge, location: str = "", table: Optional[AnswerTable] = None) -> CarrierAnswer:
    """The answer to ``urge``; ``location`` is the parcel's latest scan location (for a ``scan``)."""
    table = table or load_table()
    outcome = outcome_of(urge.urge_id, urge.target, table)
    if outcome == "none":
        return CarrierAnswer("none", None)
    _, when, reason_draw, scan_draw = _draws(urge.urge_id)
    low, high = table.answer_after
    window = (urge.answer_due_at - urge.created_at).total_seconds()
    answered_at = urge.created_at + dt.timedelta(seconds=int(window * (low + (high - low) * when)))
    if outcome == "scan":
        scan = table.scans[scan_draw % len(table.scans)].format(location=location or DEFAULT_LOCATION)
        return CarrierAnswer("scan", answered_at, scan=scan)
    reasons = [reason for reason in table.reasons if urge.target in reason.targets]
    return CarrierAnswer("reason", answered_at, reason=reasons[reason_draw % len(reasons)])


def answer_json(answer: CarrierAnswer, record: OrderUrge, tz: dt.tzinfo, now: dt.datetime, location: str) -> Dict[str, Any]:
    """The ``answer`` of an urge's JSON at ``now`` (naive UTC).

    ``status`` is ``answered`` once the answer has arrived, ``pending`` while none has and the due
    time is ahead, ``unanswered`` when the due time has passed without one.
    """
    if not answer.visible(now):
        status = "pending" if record.answer_due_at > now else "unanswered"
        return {"status": status, "answered_at": None, "kind": None, "reason": None, "scan": None}
    reason = answer.reason
    return {
        "status": "answered",
        "answered_at": iso_datetime(answer.answered_at, tz),
        "kind": answer.outcome,
        "reason": {"code": reason.code, "label": reason.label, "detail": reason.detail} if reason else None,
        "scan": {"time": iso_datetime(answer.answered_at, tz), "location": location or DEFAULT_LOCATION, "description": answer.scan}
        if answer.outcome == "scan"
        else None,
    }
