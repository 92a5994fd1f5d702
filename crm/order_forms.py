"""The order form (the JSON of ``GET /api/orders/{id}``, of a customer's order pages and of the answers
of order writes), read as plain rows.

An order form is read in four statements whatever the number of orders: the orders with their
shipments, the lines with their products, current prices and quantities in active returns, the
shipments' scans, and the carriers' answered urges. The statements are built once (the values are
bound parameters) and run on the session's connection as plain SQL, so no ORM object is built,
tracked or expired for a read; the JSON is built straight from the rows.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Connection

from crm.carrier import DEFAULT_LOCATION, answer_for
from crm.clock import iso_date, iso_datetime, local_date
from crm.models import Order, OrderItem, OrderUrge, Product, ProductPrice, Return, ReturnItem, Shipment, ShipmentEvent
from crm.vocab import (
    ADDRESS_EDITABLE_STATUSES,
    CANCELLABLE_STATUSES,
    CARRIER_NAMES,
    CATEGORY_LABELS,
    IN_FLIGHT_STATUSES,
    INACTIVE_RETURN_STATUSES,
    ORDER_STATUS_LABELS,
    PAYMENT_METHOD_LABELS,
)

if TYPE_CHECKING:
    from crm.service import Context

Scan = Tuple[dt.datetime, str, str]
"""A scan not stored with the shipment (the carrier's answer to an urge): naive UTC time, location, description."""

_ORDERS = Order.__table__
_SHIPMENTS = Shipment.__table__
_ITEMS = OrderItem.__table__
_PRODUCTS = Product.__table__
_PRICES = ProductPrice.__table__
_EVENTS = ShipmentEvent.__table__
_URGES = OrderUrge.__table__
_RETURNS = Return.__table__
_RETURN_ITEMS = ReturnItem.__table__

_ORDER_FORM = select(
    _ORDERS.c.order_id,
    _ORDERS.c.customer_id,
    _ORDERS.c.status,
    _ORDERS.c.placed_at,
    _ORDERS.c.paid_at,
    _ORDERS.c.promised_date,
    _ORDERS.c.signed_at,
    _ORDERS.c.completed_at,
    _ORDERS.c.cancelled_at,
    _ORDERS.c.payment_method,
    _ORDERS.c.has_shipping_insurance,
    _ORDERS.c.receiver_name,
    _ORDERS.c.receiver_phone,
    _ORDERS.c.address,
    _ORDERS.c.subtotal_fen,
    _ORDERS.c.coupon_discount_fen,
    _ORDERS.c.shipping_fee_fen,
    _ORDERS.c.paid_fen,
    _SHIPMENTS.c.tracking_number,
    _SHIPMENTS.c.carrier,
    _SHIPMENTS.c.shipped_at,
).select_from(_ORDERS.outerjoin(_SHIPMENTS, _SHIPMENTS.c.order_id == _ORDERS.c.order_id))
"""An order's columns (in :func:`_render`'s order) and its shipment's (null without one)."""

ONE_ORDER = _ORDER_FORM.where(_ORDERS.c.order_id == bindparam("order_id"))
CUSTOMER_ORDERS = _ORDERS.c.customer_id == bindparam("customer_id")
CUSTOMER_ORDERS_IN_STATUSES = and_(CUSTOMER_ORDERS, _ORDERS.c.status.in_(bindparam("statuses", expanding=True)))
CUSTOMER_ORDER_PAGES = {
    filtered: _ORDER_FORM.where(condition)
    .order_by(_ORDERS.c.placed_at.desc(), _ORDERS.c.order_id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
    for filtered, condition in ((False, CUSTOMER_ORDERS), (True, CUSTOMER_ORDERS_IN_STATUSES))
}
"""A page of a customer's orders, newest first, by whether it is filtered by status."""
CUSTOMER_ORDER_COUNTS = {
    filtered: select(func.count()).select_from(_ORDERS).where(condition)
    for filtered, condition in ((False, CUSTOMER_ORDERS), (True, CUSTOMER_ORDERS_IN_STATUSES))
}
"""The number of a customer's orders, by whether they are filtered by status."""

_RETURNED = (
    select(func.coalesce(func.sum(_RETURN_ITEMS.c.quantity), 0))
    .select_from(_RETURN_ITEMS.join(_RETURNS, _RETURNS.c.return_id == _RETURN_ITEMS.c.return_id))
    .where(
        _RETURNS.c.order_id == _ITEMS.c.order_id,
        _RETURN_ITEMS.c.line_id == _ITEMS.c.line_id,
        _RETURNS.c.status.notin_(sorted(INACTIVE_RETURN_STATUSES)),
    )
    .scalar_subquery()
)
"""The quantity of a line in the order's active returns."""
LINES = (
    select(
        _ITEMS.c.order_id,
        _ITEMS.c.line_id,
        _ITEMS.c.sku,
        _ITEMS.c.product_name,
        _ITEMS.c.category,
        _ITEMS.c.quantity,
        _ITEMS.c.unit_price_fen,
        _ITEMS.c.paid_fen,
        _PRODUCTS.c.sku,
        _PRODUCTS.c.brand,
        _PRODUCTS.c.no_reason_returnable,
        _PRODUCTS.c.not_returnable_reason,
        _PRODUCTS.c.price_fen,
        _PRICES.c.sku,
        _PRICES.c.price_fen,
        _PRICES.c.kind,
        _RETURNED,
    )
    .select_from(
        _ITEMS.outerjoin(_PRODUCTS, _PRODUCTS.c.sku == _ITEMS.c.sku).outerjoin(_PRICES, _PRICES.c.sku == _PRODUCTS.c.sku)
    )
    .where(_ITEMS.c.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(_ITEMS.c.order_id, _ITEMS.c.line_id)
)
"""The orders' lines with product, current price and returned quantity, in the order of ``Order.items``."""
SCANS = (
    select(_EVENTS.c.tracking_number, _EVENTS.c.time, _EVENTS.c.event_id, _EVENTS.c.location, _EVENTS.c.description)
    .where(_EVENTS.c.tracking_number.in_(bindparam("tracking_numbers", expanding=True)))
    .order_by(_EVENTS.c.tracking_number, _EVENTS.c.time.desc(), _EVENTS.c.event_id.desc())
)
"""The shipments' scans, newest first (the order of ``Shipment.events``)."""
CARRIER_URGES = (
    select(_URGES.c.order_id, _URGES.c.urge_id, _URGES.c.target, _URGES.c.created_at, _URGES.c.answer_due_at)
    .where(_URGES.c.order_id.in_(bindparam("order_ids", expanding=True)), _URGES.c.target == "carrier",
           _URGES.c.created_at <= bindparam("now"))
    .order_by(_URGES.c.urge_id)
)
"""The carrier urges of orders filed by now (their answers are scans of the parcel, :mod:`crm.carrier`)."""


def late(status: str, promised_date: Optional[dt.date], signed_at: Optional[dt.datetime], today: dt.date, tz: dt.tzinfo) -> bool:
    """An order is late when it has not been signed for by its promised date."""
    if promised_date is None or status in ("pending_payment", "cancelled"):
        return False
    if signed_at is not None:
        return local_date(signed_at, tz) > promised_date
    return today > promised_date


def order_row(connection: Connection, order_id: str) -> Optional[Sequence[Any]]:
    """The order form row of one order (:data:`ONE_ORDER`), None when there is no such order."""
    return connection.execute(ONE_ORDER, {"order_id": order_id}).first()


def customer_order_rows(
    connection: Connection, customer_id: str, statuses: Optional[Sequence[str]], limit: int, offset: int
) -> List[Sequence[Any]]:
    """A page of a customer's order form rows, newest first, only those in ``statuses`` when given."""
    params: Dict[str, Any] = {"customer_id": customer_id, "limit": limit, "offset": offset}
    if statuses:
        params["statuses"] = list(statuses)
    return list(connection.execute(CUSTOMER_ORDER_PAGES[bool(statuses)], params))


def count_customer_orders(connection: Connection, customer_id: str, statuses: Optional[Sequence[str]]) -> int:
    """How many orders the customer has (only those in ``statuses`` when given)."""
    params: Dict[str, Any] = {"customer_id": customer_id}
    if statuses:
        params["statuses"] = list(statuses)
    return int(connection.execute(CUSTOMER_ORDER_COUNTS[bool(statuses)], params).scalar_one())


def _lines(connection: Connection, order_ids: List[str]) -> Dict[str, List[Dict[str, Any]]]:
    lines: Dict[str, List[Dict[str, Any]]] = {order_id: [] for order_id in order_ids}
    for (order_id, line_id, sku, product_name, category, quantity, unit_price_fen, paid_fen,
         product, brand, no_reason_returnable, not_returnable_reason, catalogue_price_fen,
         price_change, price_fen, kind, returned) in connection.execute(LINES, {"order_ids": order_ids}):
        known = product is not None
        if price_change is not None:
            current_price_fen, current_price_kind = price_fen, kind
        else:
            current_price_fen, current_price_kind = (catalogue_price_fen if known else None), None
        lines[order_id].append({
            "line_id": line_id,
            "sku": sku,
            "product_name": product_name,
            "brand": brand if known else None,
            "category": category,
            "category_name": CATEGORY_LABELS.get(category, category),
            "quantity": quantity,
            "unit_price_fen": unit_price_fen,
            "paid_fen": paid_fen,
            "no_reason_returnable": bool(no_reason_returnable) if known else False,
            "not_returnable_reason": not_returnable_reason if known else None,
            "returned_quantity": int(returned),
            "current_price_fen": current_price_fen,
            "current_price_kind": current_price_kind,
        })
    return lines


def _scans(connection: Connection, tracking_numbers: List[str]) -> Dict[str, List[Tuple[dt.datetime, int, str, str]]]:
    scans: Dict[str, List[Tuple[dt.datetime, int, str, str]]] = {number: [] for number in tracking_numbers}
    if tracking_numbers:
        for tracking_number, time, event_id, location, description in connection.execute(SCANS, {"tracking_numbers": tracking_numbers}):
            scans[tracking_number].append((time, event_id, location, description))
    return scans


def _answered_scans(connection: Connection, ctx: Context, locations: Dict[str, str]) -> Dict[str, List[Scan]]:
    """The scans carriers have answered urges of the shipped orders (``locations``: their latest scan's place) with, by now."""
    if not locations:
        return {}
    now = ctx.clock.now_utc()
    answered: Dict[str, List[Scan]] = {}
    for urge in connection.execute(CARRIER_URGES, {"order_ids": sorted(locations), "now": now}):
        location = locations[urge.order_id]
        answer = answer_for(urge, location)  # type: ignore[arg-type]  # a row with the urge's columns
        if answer.outcome == "scan" and answer.visible(now) and answer.answered_at is not None:
            answered.setdefault(urge.order_id, []).append((answer.answered_at, location or DEFAULT_LOCATION, answer.scan))
    return answered


def _shipment(tracking_number: str, carrier: str, shipped_at: dt.datetime, stored: List[Tuple[dt.datetime, int, str, str]],
              answered: Sequence[Scan], tz: dt.tzinfo) -> Dict[str, Any]:
    scans = stored  # already newest first
    if answered:
        scans = sorted([*stored, *((time, 0, location, text) for time, location, text in answered)],
                       key=lambda scan: (scan[0], scan[1]), reverse=True)
    return {
        "carrier": carrier,
        "carrier_name": CARRIER_NAMES.get(carrier, carrier),
        "tracking_number": tracking_number,
        "shipped_at": iso_datetime(shipped_at, tz),
        "events": [{"time": iso_datetime(time, tz), "location": location, "description": text} for time, _, location, text in scans],
    }


def render(connection: Connection, ctx: Context, rows: Sequence[Sequence[Any]]) -> List[Dict[str, Any]]:
    """The order forms of order form rows (:data:`ONE_ORDER`, :data:`CUSTOMER_ORDER_PAGES`), in their order."""
    if not rows:
        return []
    tz = ctx.tz
    lines = _lines(connection, [row[0] for row in rows])
    scans = _scans(connection, [row[18] for row in rows if row[18] is not None])
    locations = {row[0]: (scans[row[18]][0][2] if scans[row[18]] else "") for row in rows if row[18] is not None}
    answered = _answered_scans(connection, ctx, locations)
    today = ctx.clock.today()
    forms = []
    for (order_id, customer_id, status, placed_at, paid_at, promised_date, signed_at, completed_at, cancelled_at,
         payment_method, has_shipping_insurance, receiver_name, receiver_phone, address, subtotal_fen,
         coupon_discount_fen, shipping_fee_fen, paid_fen, tracking_number, carrier, shipped_at) in rows:
        forms.append({
            "order_id": order_id,
            "customer_id": customer_id,
            "status": status,
            "status_label": ORDER_STATUS_LABELS.get(status, status),
            "in_flight": status in IN_FLIGHT_STATUSES,
            "cancellable": status in CANCELLABLE_STATUSES,
            "address_editable": status in ADDRESS_EDITABLE_STATUSES,
            "placed_at": iso_datetime(placed_at, tz),
            "paid_at": iso_datetime(paid_at, tz),
            "promised_date": iso_date(promised_date),
            "signed_at": iso_datetime(signed_at, tz),
            "completed_at": iso_datetime(completed_at, tz),
            "cancelled_at": iso_datetime(cancelled_at, tz),
            "is_late": late(status, promised_date, signed_at, today, tz),
            "payment_method": payment_method,
            "payment_method_label": PAYMENT_METHOD_LABELS.get(payment_method, payment_method),
            "has_shipping_insurance": has_shipping_insurance,
            "receiver_name": receiver_name,
            "receiver_phone": receiver_phone,
            "address": address,
            "subtotal_fen": subtotal_fen,
            "coupon_discount_fen": coupon_discount_fen,
            "shipping_fee_fen": shipping_fee_fen,
            "paid_fen": paid_fen,
            "items": lines[order_id],
            "shipment": None if tracking_number is None
            else _shipment(tracking_number, carrier, shipped_at, scans[tracking_number], answered.get(order_id, ()), tz),
        })
    return forms
