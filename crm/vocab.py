"""Codes and Chinese labels shared by the models, the seed data and the API."""

from __future__ import annotations

import re
from typing import Dict, Tuple

CUSTOMER_ID_RE = re.compile(r"^C\d{6}\Z")
ORDER_ID_RE = re.compile(r"^\d{12}\Z")
RETURN_ID_RE = re.compile(r"^R\d{10}\Z")
MOBILE_RE = re.compile(r"^1[3-9]\d{9}\Z")
PHONE_LAST4_RE = re.compile(r"^\d{4}\Z")

ORDER_STATUS_LABELS: Dict[str, str] = {
    "pending_payment": "待付款",
    "awaiting_shipment": "待发货",
    "shipped": "已发货",
    "in_transit": "运输中",
    "out_for_delivery": "派送中",
    "delivered": "已签收",
    "completed": "已完成",
    "cancelled": "已取消",
}
ORDER_STATUSES: Tuple[str, ...] = tuple(ORDER_STATUS_LABELS)
CANCELLABLE_STATUSES = frozenset({"pending_payment", "awaiting_shipment"})
ADDRESS_EDITABLE_STATUSES = frozenset({"pending_payment", "awaiting_shipment"})
RETURNABLE_ORDER_STATUSES = frozenset({"delivered", "completed"})
IN_FLIGHT_STATUSES = frozenset({"awaiting_shipment", "shipped", "in_transit", "out_for_delivery"})

PAYMENT_METHOD_LABELS: Dict[str, str] = {
    "balance": "账户余额",
    "points": "积分",
    "wallet": "在线钱包",
    "bank_card": "银行卡",
}
PAYMENT_METHODS: Tuple[str, ...] = tuple(PAYMENT_METHOD_LABELS)

CATEGORY_LABELS: Dict[str, str] = {
    "shoes": "鞋靴",
    "apparel": "服饰",
    "electronics": "数码家电",
    "fresh_food": "生鲜",
    "digital_goods": "数字商品",
    "gift_card": "礼品卡",
    "personal_care": "个护美妆",
    "underwear": "内衣",
    "customized": "定制商品",
    "home": "家居",
    "books": "图书",
}

CARRIER_NAMES: Dict[str, str] = {"SF": "顺丰速运", "JD": "京东物流", "YT": "圆通速递"}
TRACKING_DIGITS: Dict[str, int] = {"SF": 12, "JD": 13, "YT": 13}

RETURN_STATUS_LABELS: Dict[str, str] = {
    "requested": "已申请",
    "approved": "已同意，待取件",
    "picked_up": "已取件",
    "received": "商家已收货",
    "refunded": "已退款",
    "rejected": "已驳回",
    "cancelled": "已取消",
}
RETURN_STATUSES: Tuple[str, ...] = tuple(RETURN_STATUS_LABELS)
INACTIVE_RETURN_STATUSES = frozenset({"rejected", "cancelled"})

RETURN_REASON_LABELS: Dict[str, str] = {
    "quality_issue": "质量问题",
    "wrong_size": "尺码不合适",
    "not_as_described": "与描述不符",
    "no_longer_wanted": "不想要了",
    "damaged_on_arrival": "收到时已损坏",
    "other": "其他",
}
RETURN_REASONS: Tuple[str, ...] = tuple(RETURN_REASON_LABELS)
SHOP_AT_FAULT_REASONS = frozenset({"quality_issue", "not_as_described", "damaged_on_arrival"})
RETURN_SHIPPING_PAYERS: Tuple[str, ...] = ("shopper", "shop")
