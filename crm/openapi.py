"""The OpenAPI 3.0 description of the CRM API, served at ``/openapi.json``."""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

from crm.carrier import load_table
from crm.policy import SERVICE_POLICIES
from crm.vocab import (
    CARRIER_NAMES,
    CATEGORY_LABELS,
    ORDER_STATUSES,
    PAYMENT_METHODS,
    RETURN_REASONS,
    RETURN_SHIPPING_PAYERS,
    RETURN_STATUSES,
)

Schema = Dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: Dict[str, Schema], required: Optional[List[str]] = None) -> Schema:
    return {"type": "object", "properties": properties, "required": required if required is not None else list(properties)}


def _str(description: str = "", **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def _int(description: str = "", **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", **extra}
    if description:
        schema["description"] = description
    return schema


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


DATE_TIME = _str("ISO 8601 with the shop's offset, e.g. 2026-11-20T14:23:05+08:00", format="date-time")
OFFSET_DATE_TIME_PATTERN = (
    r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{3}|\.[0-9]{6})?[+-]([01][0-9]|2[0-3]):[0-5][0-9]$"
)
"""A timestamp as the API reads one: a real date (29 February left out), seconds, optional milliseconds or microseconds,
a numeric offset (no ``Z``)."""
SOLID = r"[^\s\x1c-\x1f\x85]"
r"""A character that is no space in any reading: the API trims what Python calls whitespace, which also
takes the separators U+001C-U+001F and U+0085 that a JSON Schema (ECMA) ``\s`` leaves out."""
NOT_BLANK = SOLID
"""Some character that is no space: the API trims strings and refuses a blank one."""
KEY = _str("same key → same result (1–128 characters, not blank)", minLength=1, maxLength=128, pattern=NOT_BLANK)
DATE = _str("YYYY-MM-DD", format="date")
FEN = _int("amount in fen (1/100 yuan)")


def _page(item: str) -> Schema:
    return _obj(
        {
            "items": {"type": "array", "items": _ref(item)},
            "total": _int("number of matching records"),
            "limit": _int(),
            "offset": _int(),
        }
    )


SCHEMAS: Dict[str, Schema] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": _str(enum=["not_found", "invalid_argument", "unauthorized", "conflict", "not_allowed", "internal"]),
                    "message": _str("explanation, in Chinese where it may reach a shopper"),
                    "reason": _str("why an operation refused, where it says (e.g. a price-protection claim's window_passed)"),
                    "details": {"type": "object", "description": "facts of the refusal, where the operation gives them",
                                "additionalProperties": True},
                },
                ["code", "message"],
            )
        }
    ),
    "Health": _obj(
        {"status": _str(enum=["ok", "unavailable"]), "database": _str(enum=["sqlite", "postgresql"])}, ["status", "database"]
    ),
    "NextTier": _obj(
        {"code": _str(), "name": _str(), "min_growth_value": _int(), "growth_missing": _int("growth value still needed")}
    ),
    "Customer": _obj(
        {
            "customer_id": _str(pattern=r"^C\d{6}$", example="C000001"),
            "name": _str(),
            "phone": _str(pattern=r"^1[3-9]\d{9}$"),
            "tier": _str(enum=["L1", "L2", "L3", "L4", "L5"]),
            "tier_name": _str(example="金牌会员"),
            "growth_value": _int(),
            "points_balance": _int(),
            "birthday": _nullable(DATE),
            "created_at": DATE_TIME,
            "next_tier": _nullable(_ref("NextTier")),
        }
    ),
    "CustomerPage": _page("Customer"),
    "OrderItem": _obj(
        {
            "line_id": _int("line number within the order, from 1"),
            "sku": _str(),
            "product_name": _str(example="耐克 Air Zoom 跑鞋"),
            "brand": _nullable(_str()),
            "category": _str(enum=list(CATEGORY_LABELS)),
            "category_name": _str(),
            "quantity": _int(),
            "unit_price_fen": FEN,
            "paid_fen": _int("line total minus its pro-rata share of the coupon"),
            "no_reason_returnable": {"type": "boolean", "description": "eligible for 7-day no-reason return"},
            "not_returnable_reason": _nullable(_str()),
            "returned_quantity": _int("quantity in returns that are not rejected or cancelled"),
            "current_price_fen": _nullable(_int("the price the item sells at now (price protection compares it)")),
            "current_price_kind": _nullable(_str("the kind of the current price when it is not the everyday price, e.g. 秒杀价")),
        }
    ),
    "ShipmentEvent": _obj({"time": DATE_TIME, "location": _str(example="上海浦东转运中心"), "description": _str()}),
    "Shipment": _obj(
        {
            "carrier": _str(enum=list(CARRIER_NAMES)),
            "carrier_name": _str(example="顺丰速运"),
            "tracking_number": _str("SF + 12 digits, JD + 13 digits, YT + 13 digits"),
            "shipped_at": DATE_TIME,
            "events": {
                "type": "array",
                "items": _ref("ShipmentEvent"),
                "description": "newest first, with the scans carriers answered urges with (UrgeAnswer.scan) once answered",
            },
        }
    ),
    "Order": _obj(
        {
            "order_id": _str(pattern=r"^\d{12}$"),
            "customer_id": _str(),
            "status": _str(enum=list(ORDER_STATUSES)),
            "status_label": _str(example="运输中"),
            "in_flight": {"type": "boolean", "description": "paid and not yet signed for"},
            "cancellable": {"type": "boolean"},
            "address_editable": {"type": "boolean"},
            "placed_at": DATE_TIME,
            "paid_at": _nullable(DATE_TIME),
            "promised_date": _nullable(DATE),
            "signed_at": _nullable(DATE_TIME),
            "completed_at": _nullable(DATE_TIME),
            "cancelled_at": _nullable(DATE_TIME),
            "is_late": {"type": "boolean", "description": "not signed for by the promised date (as of today)"},
            "payment_method": _str(enum=list(PAYMENT_METHODS)),
            "payment_method_label": _str(),
            "has_shipping_insurance": {"type": "boolean", "description": "运费险: return shipping is covered"},
            "receiver_name": _str(),
            "receiver_phone": _str(),
            "address": _str(),
            "subtotal_fen": FEN,
            "coupon_discount_fen": FEN,
            "shipping_fee_fen": FEN,
            "paid_fen": FEN,
            "items": {"type": "array", "items": _ref("OrderItem")},
            "shipment": _nullable(_ref("Shipment")),
        }
    ),
    "OrderPage": _page("Order"),
    "VerifyRequest": _obj({"phone_last4": _str(pattern=r"^\d{4}$")}),
    "VerifyResult": _obj({"verified": {"type": "boolean"}, "customer_id": _nullable(_str())}),
    "CancelRequest": _obj({"reason": _str()}, []),
    "AddressChange": _obj(
        {
            "receiver_name": _str(minLength=1, maxLength=32, pattern=NOT_BLANK),
            "receiver_phone": _str(pattern=r"^1[3-9]\d{9}$"),
            "address": _str("at least 5 characters once trimmed", minLength=5, maxLength=200, pattern=rf"^\s*{SOLID}[\s\S]{{3,}}{SOLID}\s*$"),
        }
    ),
    "ReturnLine": _obj({"line_id": _int(minimum=1, maximum=1_000_000), "quantity": _int(minimum=1, maximum=1_000_000)}),
    "ReturnItem": _obj({"line_id": _int(), "sku": _nullable(_str()), "product_name": _nullable(_str()), "quantity": _int()}),
    "ReturnCreate": _obj(
        {
            "order_id": _str(pattern=r"^\d{12}$"),
            "items": {"type": "array", "items": _ref("ReturnLine"), "minItems": 1, "maxItems": 100, "description": "each line_id once"},
            "reason": _str(enum=list(RETURN_REASONS)),
            "idempotency_key": KEY,
            "refund_fen": _int("refund computed by the assistant's return policy", minimum=0, maximum=10**10),
            "return_shipping_paid_by": _str(enum=list(RETURN_SHIPPING_PAYERS)),
            "refund_expected_by": _str("YYYY-MM-DD; estimated from the refund method when omitted", format="date"),
        },
        ["order_id", "items", "reason", "idempotency_key", "refund_fen", "return_shipping_paid_by"],
    ),
    "Return": _obj(
        {
            "return_id": _str(pattern=r"^R\d{10}$"),
            "order_id": _str(),
            "customer_id": _str(),
            "status": _str(enum=list(RETURN_STATUSES)),
            "status_label": _str(),
            "reason": _str(enum=list(RETURN_REASONS)),
            "reason_label": _str(),
            "items": {"type": "array", "items": _ref("ReturnItem")},
            "refund_fen": FEN,
            "return_shipping_paid_by": _str(enum=list(RETURN_SHIPPING_PAYERS)),
            "refund_method": _str(enum=list(PAYMENT_METHODS)),
            "refund_method_label": _str(),
            "refund_expected_by": _nullable(DATE),
            "refunded_at": _nullable(DATE_TIME),
            "note": _nullable(_str()),
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
        }
    ),
    "ReturnPage": _page("Return"),
    "LedgerEntry": _obj(
        {
            "entry_id": _int(),
            "delta": _int("points added (positive) or spent/expired (negative)"),
            "reason": _str(),
            "created_at": DATE_TIME,
            "expires_on": _nullable(DATE),
            "order_id": _nullable(_str()),
        }
    ),
    "LedgerPage": _page("LedgerEntry"),
    "ExpiringPoints": _obj({"points": _int(), "expires_on": DATE}),
    "PointsSummary": _obj(
        {
            "customer_id": _str(),
            "balance": _int(),
            "value_fen": _int("what the balance is worth (100 points = 1 yuan)"),
            "expiring": {
                "type": "array",
                "items": _ref("ExpiringPoints"),
                "description": "unexpired points grouped by expiry date, ascending",
            },
            "recent": {"type": "array", "items": _ref("LedgerEntry"), "description": "last 10 ledger lines"},
        }
    ),
    "Coupon": _obj(
        {
            "coupon_id": _str(),
            "title": _str(example="满199减20"),
            "points_cost": _int(),
            "value_fen": FEN,
            "threshold_fen": FEN,
            "valid_days": _int(),
        }
    ),
    "CouponList": _obj({"items": {"type": "array", "items": _ref("Coupon")}}),
    "RedeemRequest": _obj({"coupon_id": _str(minLength=1, maxLength=16, pattern=NOT_BLANK), "idempotency_key": KEY}),
    "Redemption": _obj(
        {
            "redemption_id": _str(),
            "customer_id": _str(),
            "coupon": _ref("Coupon"),
            "points_spent": _int(),
            "balance": _int("balance right after this redemption"),
            "created_at": DATE_TIME,
            "valid_until": DATE,
        }
    ),
    "UrgeRequest": _obj(
        {"answer_due_at": _str("by when the carrier (or warehouse) answers, e.g. 2026-11-20T16:30:00+08:00; now + 2 hours when "
                               "omitted", pattern=OFFSET_DATE_TIME_PATTERN)}, []
    ),
    "Urge": _obj(
        {
            "urge_id": _int(),
            "order_id": _str(),
            "customer_id": _str(),
            "target": _str("carrier once shipped, warehouse before", enum=["carrier", "warehouse"]),
            "target_label": _str(example="承运商"),
            "carrier": _nullable(_str(enum=list(CARRIER_NAMES))),
            "carrier_name": _nullable(_str(example="顺丰速运")),
            "tracking_number": _nullable(_str()),
            "created_at": DATE_TIME,
            "answer_due_at": DATE_TIME,
            "open": {"type": "boolean", "description": "answer_due_at is still ahead; urging again returns this urge"},
            "answer": _ref("UrgeAnswer"),
        }
    ),
    "UrgeReason": _obj(
        {
            "code": _str("from crm/policy/carrier_answers.yml", enum=sorted({reason.code for reason in load_table().reasons})),
            "label": _str(example="天气原因"),
            "detail": _str("the carrier's (or warehouse's) sentence about the delay"),
        }
    ),
    "UrgeAnswer": _obj(
        {
            "status": _str(
                "answered once the answer has arrived (by the CRM's clock); pending while none has and answer_due_at is ahead; "
                "unanswered when answer_due_at has passed without one",
                enum=["answered", "pending", "unanswered"],
            ),
            "answered_at": _nullable(DATE_TIME),
            "kind": _nullable(_str("scan: a new scan of the parcel (also in the order's track); reason: why it is late",
                                   enum=["scan", "reason"])),
            "reason": _nullable(_ref("UrgeReason")),
            "scan": _nullable(_ref("ShipmentEvent")),
        }
    ),
    "UrgePage": _page("Urge"),
    "LateCompensationRequest": _obj({"points": _int("points to grant, as the assistant's delivery policy allows", minimum=1, maximum=100000)}),
    "LateCompensation": _obj(
        {
            "order_id": _str(),
            "customer_id": _str(),
            "points": _int(),
            "days_late": _int("days past the promised date when granted (or when signed for)"),
            "reason": _str("the points-ledger reason"),
            "ledger_entry_id": _int(),
            "balance": _int("points balance right after the grant"),
            "granted_at": DATE_TIME,
        }
    ),
    "Tier": _obj(
        {
            "code": _str(),
            "name": _str(),
            "min_growth_value": _int(),
            "free_shipping_threshold_fen": FEN,
            "after_sales_response_minutes": _int(),
            "dedicated_agent": {"type": "boolean"},
            "benefits": {"type": "array", "items": _str()},
        }
    ),
    "TierList": _obj({"items": {"type": "array", "items": _ref("Tier")}}),
    "ServicePolicy": {
        "type": "object",
        "description": "one service policy document as configured in crm/policy/<name>.yml (invoices: default_kind, "
        "issue_hours_after_signing, special_vat, reissue_days_after_order...; price_protection: window_days, excluded, "
        "refund_working_days...; after_sales: warranty and installation; coupon_rules: threshold_basis, "
        "coupons_per_order...; shipping: fees, dispatch, transit_days, payment timeout; points: earn_per_yuan, "
        "points_per_yuan, arrival_days_after_signing); day ranges are [earliest, latest]",
        "additionalProperties": True,
    },
}

_ERRORS = {
    "400": "malformed id, query parameter or body",
    "401": "missing or wrong X-API-Key",
    "404": "unknown resource",
}


def _param(name: str, pattern: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


CUSTOMER_ID = _param("customer_id", r"^C\d{6}$", "customer id, e.g. C000001")
ORDER_ID = _param("order_id", r"^\d{12}$", "12-digit order id")
POLICY_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "service policy name",
    "schema": {"type": "string", "enum": list(SERVICE_POLICIES)},
}
RETURN_ID = _param("return_id", r"^R\d{10}$", "return id, e.g. R1234567890")
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "description": "identifies the request across retries (1–128 characters)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[!-~]([ -~]{0,126}[!-~])?$"},
}
PAGING = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20}},
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 999_999_999, "default": 0}},
]


def _json(schema: str, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


TOO_LARGE = "request line, headers or body over the server's size limits (any request)"


def _op(
    summary: str,
    ok: str,
    schema: str,
    *,
    params: Optional[List[Schema]] = None,
    body: Optional[str] = None,
    created: Optional[str] = None,
    extra: Optional[Dict[str, str]] = None,
    public: bool = False,
    errors: Optional[List[str]] = None,
) -> Schema:
    responses: Dict[str, Any] = {"200": _json(schema, ok)}
    if created is not None:
        responses["201"] = _json(schema, created)
    for status, text in {**{k: v for k, v in _ERRORS.items() if errors is None or k in errors}, **(extra or {})}.items():
        if public and status == "401":
            continue
        responses[status] = _json("Error", text)
    responses["413"] = _json("Error", TOO_LARGE)
    operation: Schema = {"summary": summary, "parameters": params or [], "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        operation["security"] = []
    return operation


PATHS: Dict[str, Dict[str, Schema]] = {
    "/health": {
        "get": _op(
            "Liveness and database check",
            "service is up",
            "Health",
            public=True,
            errors=[],
            extra={"503": "database unreachable"},
        )
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}},
                "413": _json("Error", TOO_LARGE),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics: requests by route template (METRICS_TOKEN as a Bearer token; without one, loopback clients only)",
            "security": [],
            "responses": {
                "200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": {"description": "METRICS_TOKEN is set and the request does not carry it",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "403": {"description": "METRICS_TOKEN is not set and the client is not on loopback",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "413": _json("Error", TOO_LARGE),
            },
        }
    },
    "/api/customers": {
        "get": _op(
            "List customers by id",
            "a page of customers",
            "CustomerPage",
            errors=["400", "401"],
            params=[
                *PAGING,
                {
                    "name": "phone",
                    "in": "query",
                    "schema": {"type": "string", "pattern": r"^1[3-9]\d{9}$"},
                    "description": "only the customer with this mobile number",
                },
            ],
        )
    },
    "/api/customers/{customer_id}": {"get": _op("One customer", "the customer", "Customer", params=[CUSTOMER_ID])},
    "/api/customers/{customer_id}/orders": {
        "get": _op(
            "A customer's orders, newest first",
            "a page of full orders",
            "OrderPage",
            params=[
                CUSTOMER_ID,
                *PAGING,
                {
                    "name": "status",
                    "in": "query",
                    "description": "comma-separated status codes",
                    "style": "form",
                    "explode": False,
                    "schema": {"type": "array", "items": {"type": "string", "enum": list(ORDER_STATUSES)}, "minItems": 1},
                },
            ],
        )
    },
    "/api/customers/{customer_id}/returns": {
        "get": _op("A customer's returns, newest first", "a page of returns", "ReturnPage", params=[CUSTOMER_ID, *PAGING])
    },
    "/api/customers/{customer_id}/points": {
        "get": _op(
            "Points balance, expiring points and recent ledger lines", "the points summary", "PointsSummary", params=[CUSTOMER_ID]
        )
    },
    "/api/customers/{customer_id}/points/ledger": {
        "get": _op("The points ledger, newest first", "a page of ledger lines", "LedgerPage", params=[CUSTOMER_ID, *PAGING])
    },
    "/api/customers/{customer_id}/points/redeem": {
        "post": _op(
            "Redeem points for a catalogue coupon (idempotent per key)",
            "repeated request: the earlier redemption",
            "Redemption",
            params=[CUSTOMER_ID],
            body="RedeemRequest",
            created="coupon issued",
            extra={"409": "not enough points, or the key was used for another request"},
        )
    },
    "/api/coupons": {"get": _op("Coupons redeemable with points", "the catalogue", "CouponList", errors=["401"])},
    "/api/tiers": {"get": _op("Membership tiers and benefits", "the tier table", "TierList", errors=["401"])},
    "/api/policies/{name}": {
        "get": _op(
            "A service policy the assistant answers from: invoices, price_protection, after_sales (warranty, repair, "
            "installation), coupon_rules, shipping or points",
            "the policy",
            "ServicePolicy",
            params=[POLICY_NAME],
            errors=["401", "404"],
        )
    },
    "/api/orders/{order_id}": {"get": _op("One order in full", "the order", "Order", params=[ORDER_ID])},
    "/api/orders/{order_id}/verify": {
        "post": _op(
            "Check the last 4 digits of the receiver's or account holder's phone (unknown orders answer verified=false)",
            "verification result",
            "VerifyResult",
            params=[ORDER_ID],
            body="VerifyRequest",
            errors=["400", "401"],
        )
    },
    "/api/orders/{order_id}/cancel": {
        "post": _op(
            "Cancel an order awaiting payment or shipment",
            "the cancelled order",
            "Order",
            params=[ORDER_ID],
            extra={"409": "the order can no longer be cancelled"},
        )
    },
    "/api/orders/{order_id}/address": {
        "post": _op(
            "Change the receiver before shipping",
            "the updated order",
            "Order",
            params=[ORDER_ID],
            body="AddressChange",
            extra={"409": "the order has shipped"},
        )
    },
    "/api/orders/{order_id}/urge": {
        "post": _op(
            "Urge (催件) an order in flight with its carrier, or the warehouse before shipping; "
            "returns the open urge while there is one",
            "an urge is still open: that urge",
            "Urge",
            params=[ORDER_ID],
            body="UrgeRequest",
            created="urge filed",
            extra={
                "409": "the order is not awaiting shipment or on its way",
                "422": "answer_due_at is not in the next 7 days",
            },
        )
    },
    "/api/orders/{order_id}/urges": {
        "get": _op("Urges of an order, newest first, each with the carrier's answer by now", "a page of urges", "UrgePage",
                   params=[ORDER_ID, *PAGING])
    },
    "/api/orders/{order_id}/late-compensation": {
        "get": _op(
            "The late-delivery compensation granted for an order",
            "the compensation",
            "LateCompensation",
            params=[ORDER_ID],
            extra={"404": "unknown order, or no compensation granted"},
        ),
        "post": _op(
            "Grant late-delivery compensation in points: once per order, only for a late order (idempotent per key)",
            "repeated request with the same Idempotency-Key: the earlier grant",
            "LateCompensation",
            params=[ORDER_ID, IDEMPOTENCY_KEY],
            body="LateCompensationRequest",
            created="points granted and written to the ledger",
            extra={
                "409": "conflict: already granted for this order, or the key was used for another request; "
                "not_allowed: the order is not late",
            },
        ),
    },
    "/api/orders/{order_id}/returns": {
        "get": _op("Returns of an order, newest first", "a page of returns", "ReturnPage", params=[ORDER_ID, *PAGING])
    },
    "/api/returns": {
        "post": _op(
            "Request a return (idempotent per key)",
            "repeated request: the earlier return",
            "Return",
            body="ReturnCreate",
            created="return created",
            extra={
                "409": "order not signed for yet, or key used for another request",
                "422": "line not in the order, quantity above what is left, or refund above what was paid",
            },
        )
    },
    "/api/returns/{return_id}": {"get": _op("One return", "the return", "Return", params=[RETURN_ID])},
}


def build_openapi() -> Dict[str, Any]:
    """Return a fresh copy of the OpenAPI document."""
    from crm.openapi_price_protection import PRICE_PROTECTION_PATHS, PRICE_PROTECTION_SCHEMAS

    return copy.deepcopy(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "Reference CRM API",
                "version": "1.0.0",
                "description": (
                    "Customers, orders, shipments, returns, points and tiers of the reference shop. "
                    "Money is integer fen; timestamps are ISO 8601 with the shop's offset (+08:00); dates are "
                    "YYYY-MM-DD. Every /api path needs the X-API-Key header. Errors are "
                    '{"error": {"code", "message"}} (a refusal with a reason code adds "reason" and "details").'
                ),
            },
            "servers": [{"url": "/"}],
            "security": [{"ApiKeyAuth": []}],
            "paths": {**PATHS, **PRICE_PROTECTION_PATHS},
            "components": {
                "securitySchemes": {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
                "schemas": {**SCHEMAS, **PRICE_PROTECTION_SCHEMAS},
            },
        }
    )
