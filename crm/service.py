"""Synchronous use cases of the CRM API; each runs inside one database session.

Functions take the session first and a :class:`Context` (clock and policy) and return JSON-ready
dictionaries, raising :class:`crm.errors.ApiError` for anything the caller did wrong.
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from bot.shop_calendar import ShopCalendar, add_working_days
from crm import order_forms, serialize
from crm.clock import Clock, points_expiry, to_utc_naive
from crm.errors import conflict, not_allowed, not_found, unprocessable
from crm.models import (
    Coupon,
    Customer,
    Order,
    OrderItem,
    PointsEntry,
    Product,
    Redemption,
    Return,
    ReturnItem,
)
from crm.points import Lots, replay
from crm.policy import Tier
from crm.texts import text
from crm.vocab import (
    ADDRESS_EDITABLE_STATUSES,
    CANCELLABLE_STATUSES,
    INACTIVE_RETURN_STATUSES,
    ORDER_STATUS_LABELS,
    RETURNABLE_ORDER_STATUSES,
)

REFUND_WORKING_DAYS = {"balance": 0, "points": 0, "wallet": 3, "bank_card": 7}
RETURN_HANDLING_DAYS = 3
DEFAULT_REFUND_WORKING_DAYS = 7


@dataclass(frozen=True)
class Context:
    """What every use case needs besides the session.

    Attributes:
        clock: the shop's clock.
        tiers: the membership tier table.
    """

    clock: Clock
    tiers: Tuple[Tier, ...]

    @property
    def tz(self) -> dt.tzinfo:
        return self.clock.tz


@dataclass(frozen=True)
class ReturnRequest:
    """A validated ``POST /api/returns`` body."""

    order_id: str
    lines: List[Tuple[int, int]]
    reason: str
    idempotency_key: str
    refund_fen: int
    return_shipping_paid_by: str
    refund_expected_by: Optional[dt.date]


@dataclass(frozen=True)
class AddressChange:
    """A validated ``POST /api/orders/{id}/address`` body."""

    receiver_name: str
    receiver_phone: str
    address: str


def _page(items: List[Dict[str, Any]], total: int, limit: int, offset: int) -> Dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def _count(session: Session, statement: Any, params: Optional[Dict[str, Any]] = None) -> int:
    return int(session.execute(select(func.count()).select_from(statement.subquery()), params).scalar_one())


def _ordered_page(
    session: Session, statement: Any, order_by: Sequence[Any], limit: int, offset: int, render: Callable[[Any], Dict[str, Any]]
) -> Dict[str, Any]:
    """One page of ``statement``'s records in ``order_by`` order, each rendered to JSON, with the total."""
    total = _count(session, statement)
    records = session.execute(statement.order_by(*order_by).limit(limit).offset(offset)).scalars()
    return _page([render(record) for record in records], total, limit, offset)


# ----------------------------------------------------------------------------- customers
def _customer(session: Session, customer_id: str, lock: bool = False) -> Customer:
    record = session.get(Customer, customer_id, with_for_update=lock or None)
    if record is None:
        raise not_found(text("service.no_such_customer", customer_id=customer_id))
    return record


def list_customers(session: Session, ctx: Context, limit: int, offset: int, phone: Optional[str] = None) -> Dict[str, Any]:
    """Customers by id, optionally only the one with ``phone``."""
    statement = select(Customer)
    if phone is not None:
        statement = statement.where(Customer.phone == phone)
    total = _count(session, statement)
    records = session.execute(statement.order_by(Customer.customer_id).limit(limit).offset(offset)).scalars()
    return _page([serialize.customer(record, ctx.tiers, ctx.tz) for record in records], total, limit, offset)


def get_customer(session: Session, ctx: Context, customer_id: str) -> Dict[str, Any]:
    """One customer profile."""
    return serialize.customer(_customer(session, customer_id), ctx.tiers, ctx.tz)


# -------------------------------------------------------------------------------- orders
RETURNED_QUANTITIES = (
    select(Return.order_id, ReturnItem.line_id, func.sum(ReturnItem.quantity))
    .join(ReturnItem, ReturnItem.return_id == Return.return_id)
    .where(Return.order_id.in_(bindparam("order_ids", expanding=True)), Return.status.notin_(sorted(INACTIVE_RETURN_STATUSES)))
    .group_by(Return.order_id, ReturnItem.line_id)
)
"""Quantities per order line in active returns (built once: SQLAlchemy then neither builds it nor
computes its cache key again on each request; the values are bound parameters)."""


def _returned_quantities(session: Session, order_ids: Iterable[str]) -> Dict[str, Dict[int, int]]:
    ids = list(order_ids)
    if not ids:
        return {}
    rows = session.execute(RETURNED_QUANTITIES, {"order_ids": ids})
    result: Dict[str, Dict[int, int]] = {}
    for order_id, line_id, quantity in rows:
        result.setdefault(order_id, {})[line_id] = int(quantity)
    return result


def _order_json(session: Session, ctx: Context, record: Order) -> Dict[str, Any]:
    """The order form of ``record`` as the database holds it now (flush changes first)."""
    connection = session.connection()
    row = order_forms.order_row(connection, record.order_id)
    assert row is not None
    return order_forms.render(connection, ctx, [row])[0]


ORDER_FORM_LOADING = (
    joinedload(Order.shipment),
    selectinload(Order.items).joinedload(OrderItem.product).joinedload(Product.current_price),
)
"""How an unlocked read of an order record loads its shipment, lines, products and current prices
(the models' default loads each in a query of its own). Not for locked reads: PostgreSQL refuses
FOR UPDATE on the nullable side of an outer join."""
ORDER_EXISTS = select(Order.order_id).where(Order.order_id == bindparam("order_id"))


def _order(session: Session, order_id: str, lock: bool = False) -> Order:
    record = session.get(Order, order_id, with_for_update=lock or None, options=() if lock else ORDER_FORM_LOADING)
    if record is None:
        raise not_found(text("service.no_such_order", order_id=order_id))
    return record


def _require_order(session: Session, order_id: str) -> None:
    """404 unless the order exists."""
    if session.connection().execute(ORDER_EXISTS, {"order_id": order_id}).first() is None:
        raise not_found(text("service.no_such_order", order_id=order_id))


def get_order(session: Session, ctx: Context, order_id: str) -> Dict[str, Any]:
    """The full order form."""
    connection = session.connection()
    row = order_forms.order_row(connection, order_id)
    if row is None:
        raise not_found(text("service.no_such_order", order_id=order_id))
    return order_forms.render(connection, ctx, [row])[0]


CUSTOMER_EXISTS = select(Customer.customer_id).where(Customer.customer_id == bindparam("customer_id"))


def list_customer_orders(
    session: Session, ctx: Context, customer_id: str, limit: int, offset: int, statuses: Optional[Sequence[str]] = None
) -> Dict[str, Any]:
    """A customer's orders, newest first, optionally filtered by status.

    The total is counted only when the page does not tell it (a full page, or an empty one past the
    start), and the customer is looked up only for an empty page (an order's customer exists).
    """
    connection = session.connection()
    rows = order_forms.customer_order_rows(connection, customer_id, statuses, limit, offset)
    if not rows and connection.execute(CUSTOMER_EXISTS, {"customer_id": customer_id}).first() is None:
        raise not_found(text("service.no_such_customer", customer_id=customer_id))
    if rows and len(rows) < limit:
        total = offset + len(rows)
    elif not rows and offset == 0:
        total = 0
    else:
        total = order_forms.count_customer_orders(connection, customer_id, statuses)
    return _page(order_forms.render(connection, ctx, rows), total, limit, offset)


ORDER_PHONES = (
    select(Order.customer_id, Order.receiver_phone, Customer.phone.label("owner_phone"))
    .select_from(Order)
    .outerjoin(Customer, Customer.customer_id == Order.customer_id)
    .where(Order.order_id == bindparam("order_id"))
)
"""An order's customer, receiver's phone and account holder's phone (for :func:`verify_order`)."""


def verify_order(session: Session, ctx: Context, order_id: str, phone_last4: str) -> Dict[str, Any]:
    """Check the last four digits of the receiver's (or account holder's) phone.

    Unknown orders answer exactly like a wrong number, so the answer does not reveal whether the
    order exists.
    """
    row = session.connection().execute(ORDER_PHONES, {"order_id": order_id}).first()
    candidates = ["\0\0\0\0", "\0\0\0\0"]
    if row is not None:
        owner_phone = row.owner_phone
        candidates = [row.receiver_phone[-4:], owner_phone[-4:] if owner_phone is not None else "\0\0\0\0"]
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), phone_last4.encode())
    verified = matched and row is not None
    return {"verified": verified, "customer_id": row.customer_id if verified and row is not None else None}


def cancel_order(session: Session, ctx: Context, order_id: str) -> Dict[str, Any]:
    """Cancel an order that is not shipped yet; points paid are returned to the ledger."""
    record = _order(session, order_id, lock=True)
    if record.status not in CANCELLABLE_STATUSES:
        label = ORDER_STATUS_LABELS.get(record.status, record.status)
        if record.status == "cancelled":
            raise not_allowed(text("service.already_cancelled"))
        raise not_allowed(text("service.not_cancellable", label=label))
    now = ctx.clock.now_utc()
    if record.payment_method == "points" and record.paid_at is not None and record.paid_fen > 0:
        _customer(session, record.customer_id, lock=True)
        _add_points(
            session,
            record.customer_id,
            record.paid_fen,
            text("points_reasons.order_cancelled", order_id=record.order_id),
            now,
            points_expiry(ctx.clock.today()),
            record.order_id,
        )
    record.status = "cancelled"
    record.cancelled_at = now
    session.flush()
    return _order_json(session, ctx, record)


def change_address(session: Session, ctx: Context, order_id: str, change: AddressChange) -> Dict[str, Any]:
    """Change the receiver of an order that has not shipped yet."""
    record = _order(session, order_id, lock=True)
    if record.status not in ADDRESS_EDITABLE_STATUSES:
        label = ORDER_STATUS_LABELS.get(record.status, record.status)
        raise not_allowed(text("service.address_not_editable", label=label))
    record.receiver_name = change.receiver_name
    record.receiver_phone = change.receiver_phone
    record.address = change.address
    session.flush()
    return _order_json(session, ctx, record)


# ------------------------------------------------------------------------------- returns
def _return_json(session: Session, ctx: Context, record: Return) -> Dict[str, Any]:
    lines = {
        item.line_id: item for item in session.execute(select(OrderItem).where(OrderItem.order_id == record.order_id)).scalars()
    }
    return serialize.return_(record, ctx.tz, lines)


def _returns_page(session: Session, ctx: Context, statement: Any, limit: int, offset: int) -> Dict[str, Any]:
    order_by = (Return.created_at.desc(), Return.return_id.desc())
    return _ordered_page(session, statement, order_by, limit, offset, lambda record: _return_json(session, ctx, record))


def get_return(session: Session, ctx: Context, return_id: str) -> Dict[str, Any]:
    """One return."""
    record = session.get(Return, return_id)
    if record is None:
        raise not_found(text("service.no_such_return", return_id=return_id))
    return _return_json(session, ctx, record)


def list_order_returns(session: Session, ctx: Context, order_id: str, limit: int, offset: int) -> Dict[str, Any]:
    """Returns of one order, newest first."""
    _require_order(session, order_id)
    return _returns_page(session, ctx, select(Return).where(Return.order_id == order_id), limit, offset)


def list_customer_returns(session: Session, ctx: Context, customer_id: str, limit: int, offset: int) -> Dict[str, Any]:
    """Returns of one customer, newest first."""
    _customer(session, customer_id)
    return _returns_page(session, ctx, select(Return).where(Return.customer_id == customer_id), limit, offset)


def _new_id(session: Session, model: Any, prefix: str, digits: int) -> str:
    while True:
        candidate = prefix + "".join(secrets.choice("0123456789") for _ in range(digits))
        if session.get(model, candidate) is None:
            return candidate


def _same_return(record: Return, request: ReturnRequest) -> bool:
    lines = sorted((item.line_id, item.quantity) for item in record.items)
    return record.order_id == request.order_id and lines == request.lines and record.reason == request.reason


def find_return_by_key(session: Session, ctx: Context, request: ReturnRequest) -> Optional[Dict[str, Any]]:
    """The return created earlier with the same idempotency key, or None.

    Raises:
        ApiError: the key was used for a different request (409 conflict).
    """
    record = session.execute(select(Return).where(Return.idempotency_key == request.idempotency_key)).scalar_one_or_none()
    if record is None:
        return None
    if not _same_return(record, request):
        raise conflict(text("service.return_key_reused"))
    return _return_json(session, ctx, record)


def expected_refund_date(today: dt.date, payment_method: str, calendar: Optional[ShopCalendar] = None) -> dt.date:
    """When the refund of a return requested ``today`` arrives at the latest, when the request names no date.

    The return is handled within :data:`RETURN_HANDLING_DAYS` calendar days, then the money takes the
    payment method's working days, counted in the shop's calendar (:mod:`bot.shop_calendar`).
    """
    issued = today + dt.timedelta(days=RETURN_HANDLING_DAYS)
    return add_working_days(issued, REFUND_WORKING_DAYS.get(payment_method, DEFAULT_REFUND_WORKING_DAYS), calendar)


def create_return(session: Session, ctx: Context, request: ReturnRequest) -> Tuple[Dict[str, Any], bool]:
    """Store a return request; the second call with the same key returns the first result.

    Returns:
        The return and whether it was created by this call.
    """
    record = _order(session, request.order_id, lock=True)
    existing = find_return_by_key(session, ctx, request)
    if existing is not None:
        return existing, False
    if record.status not in RETURNABLE_ORDER_STATUSES:
        label = ORDER_STATUS_LABELS.get(record.status, record.status)
        raise not_allowed(text("service.not_returnable", label=label))
    items = {item.line_id: item for item in record.items}
    returned = _returned_quantities(session, [record.order_id]).get(record.order_id, {})
    for line_id, quantity in request.lines:
        item = items.get(line_id)
        if item is None:
            raise unprocessable(text("service.no_such_line", order_id=record.order_id, line_id=line_id))
        available = item.quantity - returned.get(line_id, 0)
        if quantity > available:
            raise unprocessable(text("service.too_many_returned", product_name=item.product_name, available=max(0, available)))
    committed = session.execute(
        select(func.coalesce(func.sum(Return.refund_fen), 0)).where(
            Return.order_id == record.order_id, Return.status.notin_(sorted(INACTIVE_RETURN_STATUSES))
        )
    ).scalar_one()
    if request.refund_fen > record.paid_fen - int(committed):
        raise unprocessable(
            text("service.refund_too_high", refund_fen=request.refund_fen, remaining_fen=record.paid_fen - int(committed))
        )
    now = ctx.clock.now_utc()
    expected = request.refund_expected_by or expected_refund_date(ctx.clock.today(), record.payment_method)
    created = Return(
        return_id=_new_id(session, Return, "R", 10),
        order_id=record.order_id,
        customer_id=record.customer_id,
        reason=request.reason,
        status="requested",
        refund_fen=request.refund_fen,
        return_shipping_paid_by=request.return_shipping_paid_by,
        refund_method=record.payment_method,
        refund_expected_by=expected,
        created_at=now,
        updated_at=now,
        idempotency_key=request.idempotency_key,
    )
    session.add(created)
    for line_id, quantity in request.lines:
        session.add(ReturnItem(return_id=created.return_id, line_id=line_id, quantity=quantity))
    session.flush()
    session.refresh(created)
    return _return_json(session, ctx, created), True


# -------------------------------------------------------------------------------- points
def _ledger_lots(session: Session, customer_id: str) -> Lots:
    rows = session.execute(
        select(PointsEntry.delta, PointsEntry.expires_on)
        .where(PointsEntry.customer_id == customer_id)
        .order_by(PointsEntry.created_at, PointsEntry.entry_id)
    )
    return replay((delta, expires_on) for delta, expires_on in rows)


def _add_points(
    session: Session,
    customer_id: str,
    delta: int,
    reason: str,
    when: dt.datetime,
    expires_on: Optional[dt.date] = None,
    order_id: Optional[str] = None,
) -> PointsEntry:
    entry = PointsEntry(customer_id=customer_id, delta=delta, reason=reason, created_at=when, expires_on=expires_on, order_id=order_id)
    session.add(entry)
    session.execute(
        update(Customer)
        .where(Customer.customer_id == customer_id)
        .values(points_balance=Customer.points_balance + delta)
        .execution_options(synchronize_session=False)
    )
    return entry


def _expire_points(session: Session, ctx: Context, customer_id: str) -> Lots:
    """Write expiry lines for lots whose expiry date has passed; return the current lots.

    The caller holds the customer's row lock.
    """
    lots = _ledger_lots(session, customer_id)
    today = ctx.clock.today()
    expiries = sorted({lot.expires_on for lot in lots.lots if lot.expires_on < today and lot.remaining > 0})
    for expiry in expiries:
        amount = lots.expired_before(expiry + dt.timedelta(days=1))
        if amount <= 0:
            continue
        lots.consume(amount)
        boundary = to_utc_naive(dt.datetime.combine(expiry + dt.timedelta(days=1), dt.time()), ctx.tz)
        _add_points(session, customer_id, -amount, text("points_reasons.expired", year=expiry.year, month=expiry.month, day=expiry.day), boundary)
    if expiries:
        session.flush()
    return lots


def points_summary(session: Session, ctx: Context, customer_id: str) -> Dict[str, Any]:
    """Balance, unexpired points grouped by expiry date, and the last ten ledger lines."""
    _customer(session, customer_id, lock=True)
    lots = _expire_points(session, ctx, customer_id)
    record = session.get(Customer, customer_id, populate_existing=True)
    assert record is not None
    recent = session.execute(
        select(PointsEntry)
        .where(PointsEntry.customer_id == customer_id)
        .order_by(PointsEntry.created_at.desc(), PointsEntry.entry_id.desc())
        .limit(10)
    ).scalars()
    return {
        "customer_id": customer_id,
        "balance": record.points_balance,
        "value_fen": record.points_balance,
        "expiring": [
            {"points": points, "expires_on": expires_on.isoformat()} for expires_on, points in lots.expiring(ctx.clock.today())
        ],
        "recent": [serialize.ledger_entry(entry, ctx.tz) for entry in recent],
    }


def points_ledger(session: Session, ctx: Context, customer_id: str, limit: int, offset: int) -> Dict[str, Any]:
    """The customer's ledger, newest first."""
    _customer(session, customer_id)
    statement = select(PointsEntry).where(PointsEntry.customer_id == customer_id)
    order_by = (PointsEntry.created_at.desc(), PointsEntry.entry_id.desc())
    return _ordered_page(session, statement, order_by, limit, offset, lambda record: serialize.ledger_entry(record, ctx.tz))


def list_coupons(session: Session, ctx: Context) -> Dict[str, Any]:
    """The coupons that can be redeemed with points."""
    records = session.execute(select(Coupon).order_by(Coupon.points_cost, Coupon.coupon_id)).scalars()
    return {"items": [serialize.coupon(record) for record in records]}


def find_redemption_by_key(
    session: Session, ctx: Context, customer_id: str, coupon_id: str, idempotency_key: str
) -> Optional[Dict[str, Any]]:
    """The redemption made earlier with this key, or None (409 if the key was used differently)."""
    record = session.execute(select(Redemption).where(Redemption.idempotency_key == idempotency_key)).scalar_one_or_none()
    if record is None:
        return None
    if record.customer_id != customer_id or record.coupon_id != coupon_id:
        raise conflict(text("service.redemption_key_reused"))
    return serialize.redemption(record, ctx.tz)


def redeem(session: Session, ctx: Context, customer_id: str, coupon_id: str, idempotency_key: str) -> Tuple[Dict[str, Any], bool]:
    """Exchange points for a coupon, at most once per idempotency key and never below zero.

    Returns:
        The redemption and whether it was created by this call.
    """
    _customer(session, customer_id, lock=True)
    existing = find_redemption_by_key(session, ctx, customer_id, coupon_id, idempotency_key)
    if existing is not None:
        return existing, False
    coupon = session.get(Coupon, coupon_id)
    if coupon is None:
        raise not_found(text("service.no_such_coupon", coupon_id=coupon_id))
    _expire_points(session, ctx, customer_id)
    now = ctx.clock.now_utc()
    spent = session.execute(
        update(Customer)
        .where(Customer.customer_id == customer_id, Customer.points_balance >= coupon.points_cost)
        .values(points_balance=Customer.points_balance - coupon.points_cost)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:
        balance = session.execute(select(Customer.points_balance).where(Customer.customer_id == customer_id)).scalar_one()
        raise not_allowed(text("service.not_enough_points", title=coupon.title, cost=coupon.points_cost, balance=balance))
    balance = session.execute(select(Customer.points_balance).where(Customer.customer_id == customer_id)).scalar_one()
    session.add(
        PointsEntry(customer_id=customer_id, delta=-coupon.points_cost, reason=text("points_reasons.redeemed", title=coupon.title), created_at=now)
    )
    record = Redemption(
        redemption_id=_new_id(session, Redemption, "PR", 10),
        customer_id=customer_id,
        coupon_id=coupon.coupon_id,
        points_spent=coupon.points_cost,
        balance_after=int(balance),
        created_at=now,
        valid_until=ctx.clock.today() + dt.timedelta(days=coupon.valid_days),
        idempotency_key=idempotency_key,
    )
    session.add(record)
    session.flush()
    session.refresh(record)
    return serialize.redemption(record, ctx.tz), True
