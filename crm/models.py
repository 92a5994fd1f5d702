"""SQLAlchemy models of the reference CRM.

Conventions: money is integer fen; datetimes are naive UTC; dates are shop-local calendar dates.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeMeta, registry, relationship

mapper_registry = registry()


class Base(metaclass=DeclarativeMeta):
    """Declarative base of the CRM's tables."""

    __abstract__ = True
    registry = mapper_registry
    metadata = mapper_registry.metadata
    __init__ = mapper_registry.constructor


class Customer(Base):
    """A registered shopper."""

    __tablename__ = "customers"

    customer_id = Column(String(7), primary_key=True)
    name = Column(String(32), nullable=False)
    phone = Column(String(11), nullable=False, unique=True)
    tier = Column(String(2), nullable=False)
    growth_value = Column(Integer, nullable=False, default=0)
    points_balance = Column(Integer, nullable=False, default=0)
    birthday = Column(Date, nullable=True)
    created_at = Column(DateTime, nullable=False)


class PointsEntry(Base):
    """One line of a customer's points ledger; the balance is the sum of the deltas.

    Earnings carry ``expires_on``; spending, deductions and expiries have it null.
    """

    __tablename__ = "points_ledger"
    __table_args__ = (Index("ix_points_ledger_customer_time", "customer_id", "created_at"),)

    entry_id = Column(Integer, primary_key=True, autoincrement=True)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False)
    delta = Column(Integer, nullable=False)
    reason = Column(String(120), nullable=False)
    created_at = Column(DateTime, nullable=False)
    expires_on = Column(Date, nullable=True)
    order_id = Column(String(12), nullable=True)


class Product(Base):
    """A SKU of the catalogue."""

    __tablename__ = "products"

    sku = Column(String(16), primary_key=True)
    name = Column(String(80), nullable=False)
    brand = Column(String(40), nullable=False)
    category = Column(String(20), nullable=False)
    price_fen = Column(Integer, nullable=False)
    no_reason_returnable = Column(Boolean, nullable=False)
    not_returnable_reason = Column(String(120), nullable=True)

    current_price = relationship("ProductPrice", uselist=False, lazy="selectin")


class ProductPrice(Base):
    """The price a SKU sells at now, where it is not the catalogue's ``price_fen``.

    ``kind`` names a price that is not the everyday price (秒杀价, 拼团价, ... as
    ``crm/policy/price_protection.yml`` names them); null for an everyday price change.
    """

    __tablename__ = "product_prices"

    sku = Column(String(16), ForeignKey("products.sku"), primary_key=True)
    price_fen = Column(Integer, nullable=False)
    kind = Column(String(20), nullable=True)
    changed_at = Column(DateTime, nullable=False)


class Order(Base):
    """An order with its money breakdown and lifecycle timestamps."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_customer_placed", "customer_id", "placed_at"),)

    order_id = Column(String(12), primary_key=True)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False)
    status = Column(String(20), nullable=False, index=True)
    placed_at = Column(DateTime, nullable=False)
    paid_at = Column(DateTime, nullable=True)
    promised_date = Column(Date, nullable=True)
    signed_at = Column(DateTime, nullable=True)
    completed_at = Column(DateTime, nullable=True)
    cancelled_at = Column(DateTime, nullable=True)
    payment_method = Column(String(12), nullable=False)
    has_shipping_insurance = Column(Boolean, nullable=False, default=False)
    receiver_name = Column(String(32), nullable=False)
    receiver_phone = Column(String(11), nullable=False)
    address = Column(String(200), nullable=False)
    subtotal_fen = Column(Integer, nullable=False)
    coupon_discount_fen = Column(Integer, nullable=False, default=0)
    shipping_fee_fen = Column(Integer, nullable=False, default=0)
    paid_fen = Column(Integer, nullable=False)

    items = relationship("OrderItem", order_by="OrderItem.line_id", lazy="selectin")
    shipment = relationship("Shipment", uselist=False, lazy="selectin")


class OrderItem(Base):
    """One line of an order; ``paid_fen`` is the line total minus its pro-rata coupon share."""

    __tablename__ = "order_items"
    __table_args__ = (UniqueConstraint("order_id", "line_id", name="uq_order_items_line"),)

    item_id = Column(Integer, primary_key=True, autoincrement=True)
    order_id = Column(String(12), ForeignKey("orders.order_id"), nullable=False, index=True)
    line_id = Column(Integer, nullable=False)
    sku = Column(String(16), ForeignKey("products.sku"), nullable=False)
    product_name = Column(String(80), nullable=False)
    category = Column(String(20), nullable=False)
    quantity = Column(Integer, nullable=False)
    unit_price_fen = Column(Integer, nullable=False)
    paid_fen = Column(Integer, nullable=False)

    product = relationship("Product", lazy="selectin")


class Shipment(Base):
    """The parcel of an order."""

    __tablename__ = "shipments"

    tracking_number = Column(String(16), primary_key=True)
    order_id = Column(String(12), ForeignKey("orders.order_id"), nullable=False, unique=True)
    carrier = Column(String(4), nullable=False)
    shipped_at = Column(DateTime, nullable=False)

    events = relationship(
        "ShipmentEvent",
        order_by=lambda: (ShipmentEvent.time.desc(), ShipmentEvent.event_id.desc()),
        lazy="selectin",
    )


class ShipmentEvent(Base):
    """A carrier scan: time, location and a Chinese description."""

    __tablename__ = "shipment_events"

    event_id = Column(Integer, primary_key=True, autoincrement=True)
    tracking_number = Column(String(16), ForeignKey("shipments.tracking_number"), nullable=False, index=True)
    time = Column(DateTime, nullable=False)
    location = Column(String(60), nullable=False)
    description = Column(String(200), nullable=False)


class Return(Base):
    """An after-sales return request with the refund figures computed by the assistant's policy."""

    __tablename__ = "returns"

    return_id = Column(String(11), primary_key=True)
    order_id = Column(String(12), ForeignKey("orders.order_id"), nullable=False, index=True)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False, index=True)
    reason = Column(String(24), nullable=False)
    status = Column(String(12), nullable=False)
    refund_fen = Column(Integer, nullable=False)
    return_shipping_paid_by = Column(String(8), nullable=False)
    refund_method = Column(String(12), nullable=False)
    refund_expected_by = Column(Date, nullable=True)
    refunded_at = Column(DateTime, nullable=True)
    note = Column(String(200), nullable=True)
    created_at = Column(DateTime, nullable=False)
    updated_at = Column(DateTime, nullable=False)
    idempotency_key = Column(String(128), nullable=True, unique=True)

    items = relationship("ReturnItem", order_by="ReturnItem.line_id", lazy="selectin")


class ReturnItem(Base):
    """An order line (and quantity) included in a return."""

    __tablename__ = "return_items"
    __table_args__ = (UniqueConstraint("return_id", "line_id", name="uq_return_items_line"),)

    return_item_id = Column(Integer, primary_key=True, autoincrement=True)
    return_id = Column(String(11), ForeignKey("returns.return_id"), nullable=False, index=True)
    line_id = Column(Integer, nullable=False)
    quantity = Column(Integer, nullable=False)


class Coupon(Base):
    """A coupon of the points catalogue."""

    __tablename__ = "coupons"

    coupon_id = Column(String(16), primary_key=True)
    title = Column(String(40), nullable=False)
    points_cost = Column(Integer, nullable=False)
    value_fen = Column(Integer, nullable=False)
    threshold_fen = Column(Integer, nullable=False)
    valid_days = Column(Integer, nullable=False)


class Redemption(Base):
    """A coupon issued to a customer in exchange for points."""

    __tablename__ = "redemptions"

    redemption_id = Column(String(12), primary_key=True)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False, index=True)
    coupon_id = Column(String(16), ForeignKey("coupons.coupon_id"), nullable=False)
    points_spent = Column(Integer, nullable=False)
    balance_after = Column(Integer, nullable=False)
    created_at = Column(DateTime, nullable=False)
    valid_until = Column(Date, nullable=False)
    idempotency_key = Column(String(128), nullable=False, unique=True)

    coupon = relationship("Coupon", lazy="selectin")


class OrderUrge(Base):
    """A shopper's urge (催件) of an order in flight, filed with its carrier or, before shipping, the warehouse.

    An urge is open until ``answer_due_at``; while one is open, urging again returns it.
    """

    __tablename__ = "order_urges"
    __table_args__ = (Index("ix_order_urges_order_time", "order_id", "created_at"),)

    urge_id = Column(Integer, primary_key=True, autoincrement=True)
    order_id = Column(String(12), ForeignKey("orders.order_id"), nullable=False)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False)
    target = Column(String(10), nullable=False)
    carrier = Column(String(4), nullable=True)
    tracking_number = Column(String(16), nullable=True)
    created_at = Column(DateTime, nullable=False)
    answer_due_at = Column(DateTime, nullable=False)


class LateCompensation(Base):
    """Points granted for a late delivery: at most one per order (the primary key)."""

    __tablename__ = "late_compensations"

    order_id = Column(String(12), ForeignKey("orders.order_id"), primary_key=True)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False, index=True)
    points = Column(Integer, nullable=False)
    days_late = Column(Integer, nullable=False)
    ledger_entry_id = Column(Integer, ForeignKey("points_ledger.entry_id"), nullable=False)
    balance_after = Column(Integer, nullable=False)
    granted_at = Column(DateTime, nullable=False)
    idempotency_key = Column(String(128), nullable=False, unique=True)


class PriceProtectionClaim(Base):
    """A price-protection claim (价保): the difference of the lines whose price dropped, refunded to the
    order's payment method."""

    __tablename__ = "price_protection_claims"

    claim_id = Column(String(12), primary_key=True)
    order_id = Column(String(12), ForeignKey("orders.order_id"), nullable=False, index=True)
    customer_id = Column(String(7), ForeignKey("customers.customer_id"), nullable=False, index=True)
    refund_fen = Column(Integer, nullable=False)
    refund_method = Column(String(12), nullable=False)
    refund_expected_from = Column(Date, nullable=False)
    refund_expected_by = Column(Date, nullable=False)
    status = Column(String(12), nullable=False)
    created_at = Column(DateTime, nullable=False)
    idempotency_key = Column(String(128), nullable=False, unique=True)

    lines = relationship("PriceProtectionLine", order_by="PriceProtectionLine.line_id", lazy="selectin")


class PriceProtectionLine(Base):
    """An order line protected by a claim: at most one claim per order line (the unique constraint)."""

    __tablename__ = "price_protection_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_id", name="uq_price_protection_lines_line"),)

    protection_line_id = Column(Integer, primary_key=True, autoincrement=True)
    claim_id = Column(String(12), ForeignKey("price_protection_claims.claim_id"), nullable=False, index=True)
    order_id = Column(String(12), ForeignKey("orders.order_id"), nullable=False)
    line_id = Column(Integer, nullable=False)
    sku = Column(String(16), nullable=False)
    product_name = Column(String(80), nullable=False)
    quantity = Column(Integer, nullable=False)
    paid_unit_fen = Column(Integer, nullable=False)
    current_price_fen = Column(Integer, nullable=False)
    refund_fen = Column(Integer, nullable=False)
