"""The price-protection part of the CRM's OpenAPI document (:mod:`crm.openapi` merges it in)."""

from __future__ import annotations

from typing import Dict

from bot.price_protection import REASONS
from crm.openapi import DATE, DATE_TIME, FEN, IDEMPOTENCY_KEY, ORDER_ID, Schema, _int, _obj, _op, _ref, _str
from crm.vocab import PAYMENT_METHODS

PRICE_PROTECTION_SCHEMAS: Dict[str, Schema] = {
    "PriceProtectionRequest": _obj(
        {
            "line_ids": {
                "type": "array",
                "items": _int(minimum=1, maximum=1_000_000),
                "minItems": 1,
                "maxItems": 100,
                "uniqueItems": True,
                "description": "the order lines to protect; every line of the order when omitted",
            }
        },
        [],
    ),
    "PriceProtectionLine": _obj(
        {
            "line_id": _int(),
            "sku": _str(),
            "product_name": _str(),
            "quantity": _int("units protected (ordered minus returned)"),
            "paid_unit_fen": _int("what one unit cost, its share of the coupon taken off"),
            "current_price_fen": FEN,
            "refund_fen": _int("the difference refunded for the line"),
        }
    ),
    "PriceProtectionClaim": _obj(
        {
            "claim_id": _str(pattern=r"^PP\d{10}$"),
            "order_id": _str(),
            "customer_id": _str(),
            "status": _str(enum=["refunding"]),
            "status_label": _str(example="差价退款中"),
            "refund_fen": _int("the whole difference, back to the order's payment method"),
            "refund_method": _str(enum=list(PAYMENT_METHODS)),
            "refund_method_label": _str(),
            "refund_timing": _str("the row of the policy's refund_working_days the method refunds by"),
            "refund_expected_from": _str("YYYY-MM-DD: the earliest day the difference may arrive", format="date"),
            "refund_expected_by": DATE,
            "created_at": DATE_TIME,
            "lines": {"type": "array", "items": _ref("PriceProtectionLine")},
        }
    ),
    "PriceProtectionClaimList": _obj(
        {"items": {"type": "array", "items": _ref("PriceProtectionClaim")}, "total": _int("number of claims")}
    ),
}

PRICE_PROTECTION_PATHS: Dict[str, Dict[str, Schema]] = {
    "/api/orders/{order_id}/price-protection": {
        "get": _op(
            "Price-protection claims of an order, newest first",
            "the claims",
            "PriceProtectionClaimList",
            params=[ORDER_ID],
        ),
        "post": _op(
            "Claim price protection (价保) for the order's lines whose price dropped within the policy's window "
            "(crm/policy/price_protection.yml); the difference goes back to the order's payment method (idempotent per key)",
            "repeated request with the same Idempotency-Key: the earlier claim",
            "PriceProtectionClaim",
            params=[ORDER_ID, IDEMPOTENCY_KEY],
            body="PriceProtectionRequest",
            created="claim filed",
            extra={
                "409": "not_allowed with error.reason " + ", ".join(REASONS) + " (error.details: window_ends_at and each "
                "line's reason); conflict: the key was used for another claim",
                "422": "a line_id the order does not have (reason unknown_line)",
            },
        ),
    },
}
