"""Codes and their Chinese labels (from ``crm/texts.yml``) shared by the models, the seed data and the API."""

from __future__ import annotations

import re
from typing import Dict, Tuple

from crm.texts import labels

CUSTOMER_ID_RE = re.compile(r"^C\d{6}\Z")
ORDER_ID_RE = re.compile(r"^\d{12}\Z")
RETURN_ID_RE = re.compile(r"^R\d{10}\Z")
MOBILE_RE = re.compile(r"^1[3-9]\d{9}\Z")
PHONE_LAST4_RE = re.compile(r"^\d{4}\Z")

ORDER_STATUS_LABELS: Dict[str, str] = labels("order_status")
ORDER_STATUSES: Tuple[str, ...] = tuple(ORDER_STATUS_LABELS)
CANCELLABLE_STATUSES = frozenset({"pending_payment", "awaiting_shipment"})
ADDRESS_EDITABLE_STATUSES = frozenset({"pending_payment", "awaiting_shipment"})
RETURNABLE_ORDER_STATUSES = frozenset({"delivered", "completed"})
IN_FLIGHT_STATUSES = frozenset({"awaiting_shipment", "shipped", "in_transit", "out_for_delivery"})

PAYMENT_METHOD_LABELS: Dict[str, str] = labels("payment_method")
PAYMENT_METHODS: Tuple[str, ...] = tuple(PAYMENT_METHOD_LABELS)

CATEGORY_LABELS: Dict[str, str] = labels("category")

CARRIER_NAMES: Dict[str, str] = labels("carrier")
TRACKING_DIGITS: Dict[str, int] = {"SF": 12, "JD": 13, "YT": 13}

RETURN_STATUS_LABELS: Dict[str, str] = labels("return_status")
RETURN_STATUSES: Tuple[str, ...] = tuple(RETURN_STATUS_LABELS)
INACTIVE_RETURN_STATUSES = frozenset({"rejected", "cancelled"})

RETURN_REASON_LABELS: Dict[str, str] = labels("return_reason")
RETURN_REASONS: Tuple[str, ...] = tuple(RETURN_REASON_LABELS)
SHOP_AT_FAULT_REASONS = frozenset({"quality_issue", "not_as_described", "damaged_on_arrival"})
RETURN_SHIPPING_PAYERS: Tuple[str, ...] = ("shopper", "shop")
