"""JSON forms of the CRM's records (the shapes documented in ``crm/openapi.py``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Mapping, Optional, Sequence

from crm.carrier import answer_for, answer_json
from crm.clock import iso_date, iso_datetime
from crm.models import Coupon, Customer, LateCompensation, Order, OrderUrge, PointsEntry, Redemption, Return, Shipment
from crm.order_forms import late
from crm.policy import Tier, next_tier, tier_by_code
from crm.texts import labels, text
from crm.vocab import (
    CARRIER_NAMES,
    PAYMENT_METHOD_LABELS,
    RETURN_REASON_LABELS,
    RETURN_STATUS_LABELS,
)


def customer(record: Customer, tiers: Sequence[Tier], tz: dt.tzinfo) -> Dict[str, Any]:
    """Customer profile with tier name and the growth still missing for the next tier."""
    tier = tier_by_code(tiers, record.tier)
    upper = next_tier(tiers, record.tier)
    return {
        "customer_id": record.customer_id,
        "name": record.name,
        "phone": record.phone,
        "tier": record.tier,
        "tier_name": tier.name if tier else record.tier,
        "growth_value": record.growth_value,
        "points_balance": record.points_balance,
        "birthday": iso_date(record.birthday),
        "created_at": iso_datetime(record.created_at, tz),
        "next_tier": None
        if upper is None
        else {
            "code": upper.code,
            "name": upper.name,
            "min_growth_value": upper.min_growth_value,
            "growth_missing": max(0, upper.min_growth_value - record.growth_value),
        },
    }


def is_late(record: Order, today: dt.date, tz: dt.tzinfo) -> bool:
    """An order is late when it has not been signed for by its promised date (:func:`crm.order_forms.late`)."""
    return late(record.status, record.promised_date, record.signed_at, today, tz)


def latest_location(record: Optional[Shipment]) -> str:
    """Where the parcel was last scanned (empty without a shipment or a scan)."""
    return record.events[0].location if record is not None and record.events else ""


def return_(record: Return, tz: dt.tzinfo, lines: Mapping[int, Any]) -> Dict[str, Any]:
    """A return with its items (``lines`` maps line ids to the order's items for names)."""
    items = []
    for entry in record.items:
        line = lines.get(entry.line_id)
        items.append(
            {
                "line_id": entry.line_id,
                "sku": line.sku if line is not None else None,
                "product_name": line.product_name if line is not None else None,
                "quantity": entry.quantity,
            }
        )
    return {
        "return_id": record.return_id,
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "status": record.status,
        "status_label": RETURN_STATUS_LABELS.get(record.status, record.status),
        "reason": record.reason,
        "reason_label": RETURN_REASON_LABELS.get(record.reason, record.reason),
        "items": items,
        "refund_fen": record.refund_fen,
        "return_shipping_paid_by": record.return_shipping_paid_by,
        "refund_method": record.refund_method,
        "refund_method_label": PAYMENT_METHOD_LABELS.get(record.refund_method, record.refund_method),
        "refund_expected_by": iso_date(record.refund_expected_by),
        "refunded_at": iso_datetime(record.refunded_at, tz),
        "note": record.note,
        "created_at": iso_datetime(record.created_at, tz),
        "updated_at": iso_datetime(record.updated_at, tz),
    }


def ledger_entry(record: PointsEntry, tz: dt.tzinfo) -> Dict[str, Any]:
    """One points ledger line."""
    return {
        "entry_id": record.entry_id,
        "delta": record.delta,
        "reason": record.reason,
        "created_at": iso_datetime(record.created_at, tz),
        "expires_on": iso_date(record.expires_on),
        "order_id": record.order_id,
    }


def coupon(record: Coupon) -> Dict[str, Any]:
    """A catalogue coupon."""
    return {
        "coupon_id": record.coupon_id,
        "title": record.title,
        "points_cost": record.points_cost,
        "value_fen": record.value_fen,
        "threshold_fen": record.threshold_fen,
        "valid_days": record.valid_days,
    }


def redemption(record: Redemption, tz: dt.tzinfo) -> Dict[str, Any]:
    """A points redemption (an issued coupon)."""
    return {
        "redemption_id": record.redemption_id,
        "customer_id": record.customer_id,
        "coupon": coupon(record.coupon),
        "points_spent": record.points_spent,
        "balance": record.balance_after,
        "created_at": iso_datetime(record.created_at, tz),
        "valid_until": iso_date(record.valid_until),
    }


URGE_TARGET_LABELS = labels("urge_target")


def urge(record: OrderUrge, tz: dt.tzinfo, now: dt.datetime, location: str = "") -> Dict[str, Any]:
    """An urge (催件) with whom it was filed, by when they answer and their answer by ``now`` (naive UTC).

    ``location`` is the parcel's latest stored scan location, where a carrier's answering scan is.
    """
    return {
        "urge_id": record.urge_id,
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "target": record.target,
        "target_label": URGE_TARGET_LABELS.get(record.target, record.target),
        "carrier": record.carrier,
        "carrier_name": CARRIER_NAMES.get(record.carrier, record.carrier) if record.carrier else None,
        "tracking_number": record.tracking_number,
        "created_at": iso_datetime(record.created_at, tz),
        "answer_due_at": iso_datetime(record.answer_due_at, tz),
        "open": record.answer_due_at > now,
        "answer": answer_json(answer_for(record, location), record, tz, now, location),
    }


def late_compensation_reason(order_id: str, days_late: int) -> str:
    """The points-ledger reason of a late-delivery compensation."""
    return text("points_reasons.late_compensation", order_id=order_id, days_late=days_late)


def late_compensation(record: LateCompensation, tz: dt.tzinfo) -> Dict[str, Any]:
    """A late-delivery compensation in points."""
    return {
        "order_id": record.order_id,
        "customer_id": record.customer_id,
        "points": record.points,
        "days_late": record.days_late,
        "reason": late_compensation_reason(record.order_id, record.days_late),
        "ledger_entry_id": record.ledger_entry_id,
        "balance": record.balance_after,
        "granted_at": iso_datetime(record.granted_at, tz),
    }
