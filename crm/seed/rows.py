"""The generated drafts as rows per table."""

from __future__ import annotations

from typing import Any, Dict, List

from crm.clock import to_utc_naive
from crm.models import Base
from crm.seed.base import GeneratorBase
from crm.seed.prices import price_rows
from crm.seed_data import NOT_RETURNABLE_REASONS


def rows_by_table(generator: GeneratorBase) -> Dict[str, List[Dict[str, Any]]]:
    """Every row of a finished generation run, per table name."""
    utc = lambda stamp: to_utc_naive(stamp, generator.tz) if stamp is not None else None  # noqa: E731
    rows: Dict[str, List[Dict[str, Any]]] = {table.name: [] for table in Base.metadata.sorted_tables}
    rows["coupons"] = [vars(coupon).copy() for coupon in generator.coupons]
    for sku, name, brand, category, price in generator.products:
        rows["products"].append(
            {
                "sku": sku,
                "name": name,
                "brand": brand,
                "category": category,
                "price_fen": price * 100,
                "no_reason_returnable": category not in NOT_RETURNABLE_REASONS,
                "not_returnable_reason": NOT_RETURNABLE_REASONS.get(category),
            }
        )
    rows["product_prices"] = price_rows(generator.today, generator.tz)
    for customer in generator.customers:
        rows["customers"].append(
            {
                "customer_id": customer.customer_id,
                "name": customer.name,
                "phone": customer.phone,
                "tier": customer.tier,
                "growth_value": customer.growth_value,
                "points_balance": customer.points_balance,
                "birthday": customer.birthday,
                "created_at": utc(customer.created_at),
            }
        )
        for order in customer.orders:
            rows["orders"].append(
                {
                    "order_id": order.order_id,
                    "customer_id": customer.customer_id,
                    "status": order.status,
                    "placed_at": utc(order.placed_at),
                    "paid_at": utc(order.paid_at),
                    "promised_date": order.promised_date,
                    "signed_at": utc(order.signed_at),
                    "completed_at": utc(order.completed_at),
                    "cancelled_at": utc(order.cancelled_at),
                    "payment_method": order.payment_method,
                    "has_shipping_insurance": order.insurance,
                    "receiver_name": order.receiver[0],
                    "receiver_phone": order.receiver[1],
                    "address": order.receiver[2],
                    "subtotal_fen": order.subtotal_fen,
                    "coupon_discount_fen": order.coupon_fen,
                    "shipping_fee_fen": order.shipping_fen,
                    "paid_fen": order.paid_fen,
                }
            )
            for item in order.items:
                rows["order_items"].append(
                    {
                        "order_id": order.order_id,
                        "line_id": item.line_id,
                        "sku": item.product[0],
                        "product_name": item.product[1],
                        "category": item.product[3],
                        "quantity": item.quantity,
                        "unit_price_fen": item.product[4] * 100,
                        "paid_fen": item.paid_fen,
                    }
                )
            if order.tracking is not None and order.carrier is not None and order.shipped_at is not None:
                rows["shipments"].append(
                    {
                        "tracking_number": order.tracking,
                        "order_id": order.order_id,
                        "carrier": order.carrier,
                        "shipped_at": utc(order.shipped_at),
                    }
                )
                for stamp, location, text in order.events:
                    rows["shipment_events"].append(
                        {
                            "tracking_number": order.tracking,
                            "time": utc(stamp),
                            "location": location,
                            "description": text,
                        }
                    )
        for draft in customer.returns:
            rows["returns"].append(
                {
                    "return_id": draft.return_id,
                    "order_id": draft.order.order_id,
                    "customer_id": customer.customer_id,
                    "reason": draft.reason,
                    "status": draft.status,
                    "refund_fen": draft.refund_fen,
                    "return_shipping_paid_by": draft.shipping_paid_by,
                    "refund_method": draft.order.payment_method,
                    "refund_expected_by": draft.refund_expected_by,
                    "refunded_at": utc(draft.refunded_at),
                    "note": draft.note,
                    "created_at": utc(draft.created_at),
                    "updated_at": utc(draft.updated_at),
                    "idempotency_key": None,
                }
            )
            for line_id, quantity in draft.lines:
                rows["return_items"].append({"return_id": draft.return_id, "line_id": line_id, "quantity": quantity})
    rows["redemptions"] = generator.redemptions
    rows["points_ledger"] = generator.ledger
    return rows
