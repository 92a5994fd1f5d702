"""Late deliveries: urges (催件) filed with the carrier or the warehouse, and the late-delivery
compensation granted once per order; ``/api/orders/{order_id}/urge(s)`` and
``/api/orders/{order_id}/late-compensation``."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Optional, Tuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from crm import serialize
from crm.clock import local_date, points_expiry, to_utc_naive
from crm.errors import conflict, not_allowed, not_found, unprocessable
from crm.models import (
    Customer,
    LateCompensation,
    Order,
    OrderUrge,
    Shipment,
    ShipmentEvent,
)
from crm.service import (
    Context,
    _add_points,
    _customer,
    _expire_points,
    _order,
    _ordered_page,
    _require_order,
)
from crm.texts import text
from crm.vocab import (
    IN_FLIGHT_STATUSES,
    ORDER_STATUS_LABELS,
)

DEFAULT_URGE_ANSWER = dt.timedelta(hours=2)
MAX_URGE_ANSWER = dt.timedelta(days=7)


def _open_urge(session: Session, order_id: str, now: dt.datetime) -> Optional[OrderUrge]:
    return session.execute(
        select(OrderUrge)
        .where(OrderUrge.order_id == order_id, OrderUrge.answer_due_at > now)
        .order_by(OrderUrge.created_at.desc(), OrderUrge.urge_id.desc())
        .limit(1)
    ).scalar_one_or_none()


def urge_order(session: Session, ctx: Context, order_id: str, answer_due_at: Optional[dt.datetime]) -> Tuple[Dict[str, Any], bool]:
    """File an urge (催件) of an order in flight, or return the one still open.

    Args:
        order_id: the order.
        answer_due_at: by when the carrier (or the warehouse, before shipping) answers, as the
            caller's policy promised it; two hours from now when omitted.

    Returns:
        The urge and whether it was created by this call.
    """
    record = _order(session, order_id, lock=True)
    if record.status not in IN_FLIGHT_STATUSES:
        label = ORDER_STATUS_LABELS.get(record.status, record.status)
        raise not_allowed(text("late_delivery.not_urgeable", label=label))
    now = ctx.clock.now_utc()
    existing = _open_urge(session, order_id, now)
    location = serialize.latest_location(record.shipment)
    if existing is not None:
        return serialize.urge(existing, ctx.tz, now, location), False
    due = to_utc_naive(answer_due_at, ctx.tz) if answer_due_at is not None else now + DEFAULT_URGE_ANSWER
    if not now < due <= now + MAX_URGE_ANSWER:
        raise unprocessable(text("late_delivery.bad_answer_due_at"))
    shipment = record.shipment
    urge = OrderUrge(
        order_id=record.order_id,
        customer_id=record.customer_id,
        target="carrier" if shipment is not None else "warehouse",
        carrier=shipment.carrier if shipment is not None else None,
        tracking_number=shipment.tracking_number if shipment is not None else None,
        created_at=now,
        answer_due_at=due,
    )
    session.add(urge)
    session.flush()
    return serialize.urge(urge, ctx.tz, now, location), True


LATEST_LOCATION = (
    select(Order.order_id, ShipmentEvent.location)
    .select_from(Order)
    .outerjoin(Shipment, Shipment.order_id == Order.order_id)
    .outerjoin(ShipmentEvent, ShipmentEvent.tracking_number == Shipment.tracking_number)
    .where(Order.order_id == bindparam("order_id"))
    .order_by(ShipmentEvent.time.desc(), ShipmentEvent.event_id.desc())
    .limit(1)
)
"""An order and where its parcel was last scanned (null without a shipment or a scan)."""


def list_order_urges(session: Session, ctx: Context, order_id: str, limit: int, offset: int) -> Dict[str, Any]:
    """The urges of one order, newest first, each with the carrier's answer by now (:mod:`crm.carrier`)."""
    found = session.connection().execute(LATEST_LOCATION, {"order_id": order_id}).first()
    if found is None:
        raise not_found(text("service.no_such_order", order_id=order_id))
    location = found.location or ""
    statement = select(OrderUrge).where(OrderUrge.order_id == order_id)
    order_by = (OrderUrge.created_at.desc(), OrderUrge.urge_id.desc())
    now = ctx.clock.now_utc()
    return _ordered_page(session, statement, order_by, limit, offset, lambda record: serialize.urge(record, ctx.tz, now, location))


def days_late(record: Order, today: dt.date, tz: dt.tzinfo) -> int:
    """Days the order is (or was, when signed for late) past its promised date; 0 when not late."""
    if not serialize.is_late(record, today, tz):
        return 0
    assert record.promised_date is not None
    end = local_date(record.signed_at, tz) if record.signed_at is not None else today
    return (end - record.promised_date).days


def get_late_compensation(session: Session, ctx: Context, order_id: str) -> Dict[str, Any]:
    """The late-delivery compensation of an order (404 when none was granted)."""
    _require_order(session, order_id)
    record = session.get(LateCompensation, order_id)
    if record is None:
        raise not_found(text("late_delivery.no_compensation", order_id=order_id))
    return serialize.late_compensation(record, ctx.tz)


def grant_late_compensation(session: Session, ctx: Context, order_id: str, points: int, idempotency_key: str) -> Tuple[Dict[str, Any], bool]:
    """Grant points for a late delivery: once per order, only when the order is late.

    The same key with the same request returns the first grant; any other second grant of the
    order is refused (409 ``conflict``), as is an order that is not late (409 ``not_allowed``).

    Returns:
        The compensation and whether it was granted by this call.
    """
    record = _order(session, order_id, lock=True)
    by_key = session.execute(select(LateCompensation).where(LateCompensation.idempotency_key == idempotency_key)).scalar_one_or_none()
    if by_key is not None:
        if by_key.order_id != order_id or by_key.points != points:
            raise conflict(text("late_delivery.key_reused"))
        return serialize.late_compensation(by_key, ctx.tz), False
    granted = session.get(LateCompensation, order_id)
    if granted is not None:
        raise conflict(text("late_delivery.already_compensated", order_id=order_id, points=granted.points))
    today = ctx.clock.today()
    late = days_late(record, today, ctx.tz)
    if late <= 0:
        raise not_allowed(text("late_delivery.not_late", order_id=order_id))
    _customer(session, record.customer_id, lock=True)
    _expire_points(session, ctx, record.customer_id)
    now = ctx.clock.now_utc()
    entry = _add_points(
        session, record.customer_id, points, serialize.late_compensation_reason(order_id, late), now, points_expiry(today), order_id
    )
    session.flush()
    balance = session.execute(select(Customer.points_balance).where(Customer.customer_id == record.customer_id)).scalar_one()
    grant = LateCompensation(
        order_id=order_id,
        customer_id=record.customer_id,
        points=points,
        days_late=late,
        ledger_entry_id=entry.entry_id,
        balance_after=int(balance),
        granted_at=now,
        idempotency_key=idempotency_key,
    )
    session.add(grant)
    session.flush()
    return serialize.late_compensation(grant, ctx.tz), True
