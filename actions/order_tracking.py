"""Order tracking as plain functions: which order the shopper means, and how to tell its status."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Dict, List, Optional, Sequence

from actions import formatting

STATUS_LABELS = {
    "pending_payment": "待付款",
    "awaiting_shipment": "待发货",
    "shipped": "已发货",
    "in_transit": "运输中",
    "out_for_delivery": "派送中",
    "delivered": "已签收",
    "completed": "已完成",
    "cancelled": "已取消",
}
IN_FLIGHT = ("awaiting_shipment", "shipped", "in_transit", "out_for_delivery")
UNSIGNED = ("pending_payment",) + IN_FLIGHT
MAX_CHOICES = 5

Order = Dict[str, Any]


@dataclass(frozen=True)
class OrderChoice:
    """Which order a tracking question is about.

    Attributes:
        order: the one order to describe, when it is clear.
        candidates: the orders to choose from when several are in flight.
    """

    order: Optional[Order] = None
    candidates: List[Order] = field(default_factory=list)


def choose_order(orders: Sequence[Order], tracking_number: Optional[str] = None) -> OrderChoice:
    """Pick the order a shopper asking "where is my order" most likely means.

    Args:
        orders: the shopper's orders, newest first.
        tracking_number: a tracking number the shopper gave, if any.

    Returns:
        The order matching the tracking number; else the only order in flight; else the
        candidates when several are in flight; else the most recent order; else nothing.
    """
    if tracking_number:
        for order in orders:
            shipment = order.get("shipment") or {}
            if shipment.get("tracking_number", "").upper() == tracking_number.upper():
                return OrderChoice(order=order)
        return OrderChoice()
    in_flight = [order for order in orders if order.get("status") in IN_FLIGHT]
    if len(in_flight) == 1:
        return OrderChoice(order=in_flight[0])
    if len(in_flight) > 1:
        return OrderChoice(candidates=in_flight[:MAX_CHOICES])
    return OrderChoice(order=orders[0]) if orders else OrderChoice()


def is_late(order: Order, today: date) -> bool:
    """An order is late when it is not signed for and its promised date has passed."""
    promised = order.get("promised_date")
    if not promised or order.get("status") not in UNSIGNED or order.get("status") == "pending_payment":
        return False
    return today > formatting.parse_date(promised)


def items_summary(order: Order) -> str:
    """耐克 Air Zoom 跑鞋 等 2 件."""
    items = order.get("items") or []
    if not items:
        return "商品"
    count = sum(int(item.get("quantity", 1)) for item in items)
    first = items[0].get("product_name", "商品")
    return first if count == 1 else f"{first} 等 {count} 件"


def order_button(order: Order) -> Dict[str, str]:
    """A button that asks about one order: date, first item and amount."""
    placed = formatting.parse_datetime(order["placed_at"])
    title = f"{placed.month}月{placed.day}日 {items_summary(order)} {formatting.money(order.get('paid_fen', 0))}"
    payload = "/track_order" + json.dumps({"order_id": order["order_id"]}, separators=(",", ":"))
    return {"title": title, "payload": payload}


def latest_event_line(order: Order) -> Optional[str]:
    """最新物流：11月21日 14:32【上海浦东转运中心】快件已发出."""
    events = (order.get("shipment") or {}).get("events") or []
    if not events:
        return None
    latest = max(events, key=lambda event: event["time"])
    when = formatting.moment(formatting.parse_datetime(latest["time"]))
    return f"最新物流：{when}【{latest.get('location', '')}】{latest.get('description', '')}"


def describe_order(order: Order, today: date) -> str:
    """The status of one order in plain Chinese, with every fact the CRM gave.

    Args:
        order: the order as the CRM returns it.
        today: today's date in the shop's timezone.
    """
    status = order.get("status", "")
    label = STATUS_LABELS.get(status, order.get("status_label", status))
    lines = [
        f"您的订单 {order['order_id']}（{items_summary(order)}，实付 {formatting.money(order.get('paid_fen', 0))}）"
        f"当前状态：{label}。"
    ]
    shipment = order.get("shipment")
    if shipment:
        carrier = shipment.get("carrier_name") or shipment.get("carrier", "")
        lines.append(f"承运商：{carrier}，运单号 {shipment.get('tracking_number', '')}。")
        event_line = latest_event_line(order)
        if event_line:
            lines.append(event_line + "。" if not event_line.endswith("。") else event_line)
    if status in ("delivered", "completed") and order.get("signed_at"):
        signed = formatting.parse_datetime(order["signed_at"])
        lines.append(f"签收时间：{formatting.moment(signed)}。")
    elif status == "cancelled":
        lines.append("这个订单已取消，不会再发货。")
    elif status == "pending_payment":
        lines.append("这个订单还没有付款，付款后我们会尽快为您发货。")
    elif order.get("promised_date"):
        promised = formatting.parse_date(order["promised_date"])
        if is_late(order, today):
            overdue = (today - promised).days
            lines.append(
                f"非常抱歉，这个订单承诺{formatting.day(promised, today)}送达，"
                f"现已超出 {overdue} 天仍未签收。"
                "如需人工客服立即为您催促承运商并跟进赔付，请点“转人工”。"
            )
        else:
            lines.append(f"预计{formatting.day(promised, today)}前送达。")
    return "\n".join(lines)
