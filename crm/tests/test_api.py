"""End-to-end tests of the CRM HTTP API against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import pytest
from sqlalchemy import text

from crm.clock import last_day_of_month
from crm.db import make_engine
from crm.seed import DEMO_CUSTOMERS
from crm.tests.support import API_KEY, SEED_DAY, CrmServer

ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$")
TODAY = SEED_DAY


def days_ago(days: int) -> str:
    return (TODAY - dt.timedelta(days=days)).isoformat()


def query(server: CrmServer, sql: str, **params: Any) -> List[Tuple[Any, ...]]:
    """Run SQL against the server's database (to find test targets)."""
    engine = make_engine(server.database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def all_pages(server: CrmServer, path: str) -> List[Dict[str, Any]]:
    items: List[Dict[str, Any]] = []
    separator = "&" if "?" in path else "?"
    while True:
        page = server.ok(f"{path}{separator}limit=200&offset={len(items)}")
        items.extend(page["items"])
        if len(items) >= page["total"] or not page["items"]:
            return items


def orders_of(server: CrmServer, customer_id: str) -> List[Dict[str, Any]]:
    return all_pages(server, f"/api/customers/{customer_id}/orders")


def assert_error(status: int, body: Any, expected_status: int, code: Optional[str] = None) -> None:
    assert status == expected_status, body
    assert set(body) == {"error"} and isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body


# ------------------------------------------------------------------------------- basics
def test_health_and_openapi_need_no_key(crm: CrmServer) -> None:
    status, body, headers = crm.call("GET", "/health", key=None)
    assert status == 200 and body == {"status": "ok", "database": crm.backend}
    assert headers["content-type"].startswith("application/json")
    status, body, _ = crm.call("GET", "/openapi.json", key=None)
    assert status == 200 and body["openapi"].startswith("3.0")


API_PATHS = [
    ("GET", "/api/customers"),
    ("GET", "/api/customers/C000001"),
    ("GET", "/api/customers/C000001/orders"),
    ("GET", "/api/customers/C000001/returns"),
    ("GET", "/api/customers/C000001/points"),
    ("GET", "/api/customers/C000001/points/ledger"),
    ("POST", "/api/customers/C000001/points/redeem"),
    ("GET", "/api/coupons"),
    ("GET", "/api/tiers"),
    ("GET", "/api/policies/invoices"),
    ("GET", "/api/orders/880000010001"),
    ("POST", "/api/orders/880000010001/verify"),
    ("POST", "/api/orders/880000080001/cancel"),
    ("POST", "/api/orders/880000020002/address"),
    ("GET", "/api/orders/880000010001/returns"),
    ("POST", "/api/orders/880000010001/urge"),
    ("GET", "/api/orders/880000010001/urges"),
    ("POST", "/api/orders/880000010001/late-compensation"),
    ("GET", "/api/orders/880000010001/late-compensation"),
    ("GET", "/api/returns/R8800000501"),
    ("POST", "/api/returns"),
]


@pytest.mark.parametrize("method,path", API_PATHS)
def test_api_requires_key(crm: CrmServer, method: str, path: str) -> None:
    for key in (None, "wrong-key", API_KEY + "x", ""):
        status, body, _ = crm.call(method, path, {} if method == "POST" else None, key=key)
        assert_error(status, body, 401, "unauthorized")


def test_customers_pagination(crm: CrmServer) -> None:
    page = crm.ok("/api/customers?limit=5&offset=5")
    assert page["total"] >= 400 and page["limit"] == 5 and page["offset"] == 5
    assert [item["customer_id"] for item in page["items"]] == [f"C{n:06d}" for n in range(6, 11)]
    default = crm.ok("/api/customers")
    assert default["limit"] == 20 and default["offset"] == 0 and len(default["items"]) == 20
    beyond = crm.ok("/api/customers?offset=100000")
    assert beyond["items"] == [] and beyond["total"] == page["total"]
    by_phone = crm.ok("/api/customers?phone=13812345678")
    assert [item["customer_id"] for item in by_phone["items"]] == ["C000001"]


def test_customer_shape(crm: CrmServer) -> None:
    customer = crm.ok("/api/customers/C000001")
    assert set(customer) >= {
        "customer_id",
        "name",
        "phone",
        "tier",
        "tier_name",
        "growth_value",
        "points_balance",
        "birthday",
        "created_at",
    }
    assert customer["tier"] == "L4" and customer["tier_name"] == "金牌会员"
    assert ISO_TIME.match(customer["created_at"]) and re.match(r"^\d{4}-\d{2}-\d{2}$", customer["birthday"])
    assert customer["next_tier"]["code"] == "L5"
    assert customer["next_tier"]["growth_missing"] == 100000 - customer["growth_value"]
    assert crm.ok("/api/customers/C000007")["next_tier"] is None


# -------------------------------------------------------------------------------- demo cases
def test_demo_customers_cover_every_tier_and_phone(crm: CrmServer) -> None:
    tiers = set()
    for demo in DEMO_CUSTOMERS:
        customer = crm.ok(f"/api/customers/{demo.customer_id}")
        assert (customer["name"], customer["phone"], customer["tier"]) == (demo.name, demo.phone, demo.tier)
        tiers.add(customer["tier"])
        for order in orders_of(crm, demo.customer_id):
            assert order["receiver_phone"] == demo.phone and order["receiver_name"] == demo.name
    assert tiers == {"L1", "L2", "L3", "L4", "L5"}
    assert len({demo.phone[-4:] for demo in DEMO_CUSTOMERS}) == len(DEMO_CUSTOMERS)


def test_demo_late_order(crm: CrmServer) -> None:
    order = crm.ok("/api/orders/880000010001")
    assert order["status"] == "in_transit" and order["status_label"] == "运输中"
    assert order["is_late"] is True and order["signed_at"] is None
    assert order["promised_date"] == days_ago(2)
    shipment = order["shipment"]
    assert shipment["carrier"] == "SF" and shipment["carrier_name"] == "顺丰速运"
    assert re.match(r"^SF\d{12}$", shipment["tracking_number"])
    times = [event["time"] for event in shipment["events"]]
    assert times == sorted(times, reverse=True) and all(ISO_TIME.match(t) for t in times)
    assert all(event["location"] and event["description"] for event in shipment["events"])


def test_demo_delivered_order_with_returnable_shoes(crm: CrmServer) -> None:
    order = crm.ok("/api/orders/880000010002")
    assert order["status"] == "delivered" and order["signed_at"].startswith(days_ago(3))
    assert order["payment_method"] == "wallet" and order["coupon_discount_fen"] > 0
    shoes = [item for item in order["items"] if item["sku"] == "SH001"]
    assert shoes and shoes[0]["product_name"] == "耐克 Air Zoom 跑鞋" and shoes[0]["no_reason_returnable"]
    assert sum(item["paid_fen"] for item in order["items"]) == order["subtotal_fen"] - order["coupon_discount_fen"]
    assert order["paid_fen"] == order["subtotal_fen"] - order["coupon_discount_fen"] + order["shipping_fee_fen"]
    assert not order["is_late"]


def test_demo_points_expiring_this_month(crm: CrmServer) -> None:
    points = crm.ok("/api/customers/C000001/points")
    assert points["balance"] >= 5000
    expiring = {entry["expires_on"]: entry["points"] for entry in points["expiring"]}
    assert expiring.get(last_day_of_month(TODAY).isoformat(), 0) > 0
    assert [entry["expires_on"] for entry in points["expiring"]] == sorted(expiring)
    assert sum(expiring.values()) == points["balance"]
    assert len(points["recent"]) == 10


def test_demo_two_orders_in_flight(crm: CrmServer) -> None:
    in_flight = [order for order in orders_of(crm, "C000002") if order["in_flight"]]
    assert sorted(order["status"] for order in in_flight) == ["awaiting_shipment", "in_transit"]
    assert not any(order["is_late"] for order in in_flight)
    waiting = next(order for order in in_flight if order["status"] == "awaiting_shipment")
    assert waiting["shipment"] is None and waiting["cancellable"] and waiting["address_editable"]
    moving = next(order for order in in_flight if order["status"] == "in_transit")
    assert moving["shipment"]["carrier"] == "JD" and re.match(r"^JD\d{13}$", moving["shipment"]["tracking_number"])


def test_demo_delivered_long_ago(crm: CrmServer) -> None:
    orders = orders_of(crm, "C000003")
    assert not any(order["in_flight"] for order in orders)
    latest = orders[0]
    assert latest["order_id"] == "880000030001" and latest["signed_at"].startswith(days_ago(40))
    assert latest["status"] == "completed"


def test_demo_delivered_yesterday_with_fresh_food(crm: CrmServer) -> None:
    order = crm.ok("/api/orders/880000040001")
    assert order["status"] == "delivered" and order["signed_at"].startswith(days_ago(1))
    flags = {item["category"]: item["no_reason_returnable"] for item in order["items"]}
    assert flags == {"fresh_food": False, "apparel": True}
    fresh = next(item for item in order["items"] if item["category"] == "fresh_food")
    assert "生鲜" in fresh["not_returnable_reason"]


def test_demo_return_in_progress_and_refund_paid(crm: CrmServer) -> None:
    returns = crm.ok("/api/customers/C000005/returns")["items"]
    assert [(r["return_id"], r["status"]) for r in returns] == [("R8800000501", "approved")]
    assert returns[0]["refunded_at"] is None and returns[0]["items"][0]["line_id"] == 1
    refunded = crm.ok("/api/returns/R8800000601")
    assert refunded["status"] == "refunded" and ISO_TIME.match(refunded["refunded_at"])
    assert refunded["refund_method"] == "bank_card" and refunded["refund_fen"] > 0
    order = crm.ok(f"/api/orders/{refunded['order_id']}")
    assert order["items"][0]["returned_quantity"] == 1


def test_demo_out_for_delivery_and_pending_payment(crm: CrmServer) -> None:
    order = crm.ok("/api/orders/880000070001")
    assert order["status"] == "out_for_delivery" and order["status_label"] == "派送中"
    assert "派件" in order["shipment"]["events"][0]["description"]
    assert crm.ok("/api/customers/C000007")["tier"] == "L5"
    pending = crm.ok("/api/orders/880000080001")
    assert pending["status"] == "pending_payment" and pending["cancellable"] and pending["paid_at"] is None


def test_ledger_matches_balance_for_demo_customers(crm: CrmServer) -> None:
    for demo in DEMO_CUSTOMERS:
        ledger = all_pages(crm, f"/api/customers/{demo.customer_id}/points/ledger")
        balance = crm.ok(f"/api/customers/{demo.customer_id}")["points_balance"]
        assert sum(entry["delta"] for entry in ledger) == balance


def test_order_list_filters_and_order(crm: CrmServer) -> None:
    page = crm.ok("/api/customers/C000001/orders?limit=3")
    assert page["total"] >= 3 and len(page["items"]) == 3
    placed = [order["placed_at"] for order in page["items"]]
    assert placed == sorted(placed, reverse=True)
    filtered = crm.ok("/api/customers/C000002/orders?status=in_transit,awaiting_shipment")
    assert filtered["total"] == 2
    assert crm.ok("/api/customers/C000009/orders") == {"items": [], "total": 0, "limit": 20, "offset": 0}


def test_seeded_data_has_every_state(crm: CrmServer) -> None:
    statuses = {row[0] for row in query(crm, "SELECT DISTINCT status FROM orders")}
    assert statuses == {
        "pending_payment",
        "awaiting_shipment",
        "shipped",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "completed",
        "cancelled",
    }
    return_statuses = {row[0] for row in query(crm, "SELECT DISTINCT status FROM returns")}
    assert return_statuses == {"requested", "approved", "picked_up", "received", "refunded", "rejected", "cancelled"}


def test_service_policies(crm: CrmServer) -> None:
    from crm.policy import SERVICE_POLICIES, load_service_policies

    shipped = load_service_policies()
    for name in SERVICE_POLICIES:
        assert crm.ok(f"/api/policies/{name}") == shipped[name]
    status, body, _ = crm.call("GET", "/api/policies/tiers")
    assert_error(status, body, 404, "not_found")


def test_tiers_and_coupons(crm: CrmServer) -> None:
    tiers = crm.ok("/api/tiers")["items"]
    assert [(t["code"], t["name"], t["min_growth_value"]) for t in tiers] == [
        ("L1", "注册会员", 0),
        ("L2", "铜牌会员", 2000),
        ("L3", "银牌会员", 10000),
        ("L4", "金牌会员", 30000),
        ("L5", "钻石会员", 100000),
    ]
    assert all(tier["benefits"] for tier in tiers)
    coupons = crm.ok("/api/coupons")["items"]
    assert any(coupon["title"] == "满199减20" for coupon in coupons)
    assert all(coupon["points_cost"] > 0 and coupon["value_fen"] > 0 for coupon in coupons)


# ----------------------------------------------------------------------------- bad inputs
BAD_REQUESTS: List[Tuple[str, str, Any, int]] = [
    ("GET", "/api/customers/C12345", None, 400),
    ("GET", "/api/customers/c000001", None, 400),
    ("GET", "/api/customers/C0000011", None, 400),
    ("GET", "/api/customers/C00000１", None, 400),
    ("GET", "/api/customers/C999999", None, 404),
    ("GET", "/api/customers/C999999/orders", None, 404),
    ("GET", "/api/customers/C999999/returns", None, 404),
    ("GET", "/api/customers/C999999/points", None, 404),
    ("GET", "/api/customers/C999999/points/ledger", None, 404),
    ("GET", "/api/customers/X1/orders", None, 400),
    ("GET", "/api/customers/X1/returns", None, 400),
    ("GET", "/api/customers/X1/points", None, 400),
    ("GET", "/api/customers/X1/points/ledger", None, 400),
    ("GET", "/api/customers?limit=0", None, 400),
    ("GET", "/api/customers?limit=201", None, 400),
    ("GET", "/api/customers?limit=-1", None, 400),
    ("GET", "/api/customers?limit=abc", None, 400),
    ("GET", "/api/customers?limit=1.5", None, 400),
    ("GET", "/api/customers?limit=99999999999999999999", None, 400),
    ("GET", "/api/customers?offset=-1", None, 400),
    ("GET", "/api/customers?offset=x", None, 400),
    ("GET", "/api/customers?limit=1&limit=2", None, 400),
    ("GET", "/api/customers?phone=123", None, 400),
    ("GET", "/api/customers/C000001/orders?limit=0", None, 400),
    ("GET", "/api/customers/C000001/orders?offset=-5", None, 400),
    ("GET", "/api/customers/C000001/orders?status=lost", None, 400),
    ("GET", "/api/customers/C000001/returns?limit=500", None, 400),
    ("GET", "/api/customers/C000001/points/ledger?limit=x", None, 400),
    ("GET", "/api/orders/880000010001/returns?offset=abc", None, 400),
    ("GET", "/api/orders/12345678901", None, 400),
    ("GET", "/api/orders/1234567890123", None, 400),
    ("GET", "/api/orders/abcdefghijkl", None, 400),
    ("GET", "/api/orders/999999999999", None, 404),
    ("GET", "/api/orders/123/returns", None, 400),
    ("GET", "/api/orders/999999999999/returns", None, 404),
    ("GET", "/api/returns/R123", None, 400),
    ("GET", "/api/returns/X1234567890", None, 400),
    ("GET", "/api/returns/R9999999999", None, 404),
    ("POST", "/api/orders/123/verify", {"phone_last4": "5678"}, 400),
    ("POST", "/api/orders/880000010001/verify", {"phone_last4": "567"}, 400),
    ("POST", "/api/orders/880000010001/verify", {"phone_last4": 5678}, 400),
    ("POST", "/api/orders/880000010001/verify", {"phone_last4": "56a8"}, 400),
    ("POST", "/api/orders/880000010001/verify", {}, 400),
    ("POST", "/api/orders/880000010001/verify", b"{not json", 400),
    ("POST", "/api/orders/880000010001/verify", b"[1, 2]", 400),
    ("POST", "/api/orders/880000010001/verify", b"", 400),
    ("POST", "/api/orders/123/cancel", None, 400),
    ("POST", "/api/orders/999999999999/cancel", None, 404),
    ("POST", "/api/orders/880000010001/cancel", b"{oops", 400),
    ("POST", "/api/orders/123/address", {}, 400),
    ("POST", "/api/orders/880000020002/address", {}, 400),
    (
        "POST",
        "/api/orders/880000020002/address",
        {"receiver_name": "李娜", "receiver_phone": "12345", "address": "北京市海淀区中关村大街1号"},
        400,
    ),
    (
        "POST",
        "/api/orders/880000020002/address",
        {"receiver_name": " ", "receiver_phone": "13987654321", "address": "北京市海淀区中关村大街1号"},
        400,
    ),
    (
        "POST",
        "/api/orders/999999999999/address",
        {"receiver_name": "李娜", "receiver_phone": "13987654321", "address": "北京市海淀区中关村大街1号"},
        404,
    ),
    ("POST", "/api/customers/C000001/points/redeem", {}, 400),
    ("POST", "/api/customers/C000001/points/redeem", {"coupon_id": "CP0020"}, 400),
    ("POST", "/api/customers/C000001/points/redeem", {"coupon_id": 20, "idempotency_key": "k"}, 400),
    ("POST", "/api/customers/C000001/points/redeem", b"nope", 400),
    ("POST", "/api/customers/C1/points/redeem", {"coupon_id": "CP0020", "idempotency_key": "k"}, 400),
    ("POST", "/api/customers/C999999/points/redeem", {"coupon_id": "CP0020", "idempotency_key": "k"}, 404),
    ("POST", "/api/customers/C000001/points/redeem", {"coupon_id": "CP9999", "idempotency_key": "k-404"}, 404),
    ("POST", "/api/returns", b"{", 400),
    ("POST", "/api/returns", b"\xff\xfe", 400),
    ("POST", "/api/returns", [], 400),
    ("POST", "/api/returns", {}, 400),
    ("GET", "/api/nowhere", None, 404),
    ("GET", "/nowhere", None, 404),
    ("DELETE", "/api/orders/880000010001", None, 405),
    ("PUT", "/api/customers", None, 405),
]


@pytest.mark.parametrize("method,path,body,expected", BAD_REQUESTS, ids=[f"{m} {p} {e}" for m, p, _b, e in BAD_REQUESTS])
def test_bad_requests_answer_json_4xx(crm: CrmServer, method: str, path: str, body: Any, expected: int) -> None:
    raw = body if isinstance(body, bytes) else None
    status, answer, headers = crm.call(method, path.replace("１", "%EF%BC%91"), None if raw is not None else body, raw=raw)
    assert_error(status, answer, expected)
    assert headers["content-type"].startswith("application/json")


def valid_return_body(order_id: str, **changes: Any) -> Dict[str, Any]:
    body = {
        "order_id": order_id,
        "items": [{"line_id": 1, "quantity": 1}],
        "reason": "no_longer_wanted",
        "idempotency_key": uuid.uuid4().hex,
        "refund_fen": 100,
        "return_shipping_paid_by": "shopper",
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "changes",
    [
        {"order_id": "12"},
        {"order_id": None},
        {"items": []},
        {"items": "1"},
        {"items": [{"line_id": 1}]},
        {"items": [{"line_id": "1", "quantity": 1}]},
        {"items": [{"line_id": 1, "quantity": 0}]},
        {"items": [{"line_id": 1, "quantity": True}]},
        {"items": [{"line_id": 1, "quantity": 1}, {"line_id": 1, "quantity": 1}]},
        {"reason": "bored"},
        {"idempotency_key": ""},
        {"idempotency_key": "x" * 129},
        {"refund_fen": -1},
        {"refund_fen": 1.5},
        {"refund_fen": "100"},
        {"return_shipping_paid_by": "courier"},
        {"refund_expected_by": "2026-13-01"},
        {"refund_expected_by": "next week"},
    ],
)
def test_return_body_validation(crm: CrmServer, changes: Dict[str, Any]) -> None:
    request = valid_return_body("880000010002")
    request.update(changes)
    status, body = crm.post("/api/returns", request)
    assert_error(status, body, 400, "invalid_argument")


# ------------------------------------------------------------------------------ verify
def test_verify_does_not_leak_existence(crm: CrmServer) -> None:
    status, body = crm.post("/api/orders/880000010001/verify", {"phone_last4": "5678"})
    assert status == 200 and body == {"verified": True, "customer_id": "C000001"}
    wrong = crm.post("/api/orders/880000010001/verify", {"phone_last4": "0000"})
    unknown = crm.post("/api/orders/999999999999/verify", {"phone_last4": "5678"})
    assert wrong == unknown == (200, {"verified": False, "customer_id": None})


# ------------------------------------------------------------------------ state changes
def non_demo_order(crm: CrmServer, statuses: Tuple[str, ...], extra: str = "") -> str:
    marks = ", ".join(f"'{status}'" for status in statuses)
    rows = query(
        crm,
        f"SELECT o.order_id FROM orders o WHERE o.status IN ({marks}) "
        f"AND o.customer_id > 'C000009' {extra} ORDER BY o.order_id",
    )
    assert rows, f"no seeded order in {statuses}"
    return rows[0][0]


def test_cancel_rules(crm: CrmServer) -> None:
    for status in ("pending_payment", "awaiting_shipment"):
        order_id = non_demo_order(crm, (status,))
        code, order = crm.post(f"/api/orders/{order_id}/cancel")
        assert code == 200 and order["status"] == "cancelled" and order["status_label"] == "已取消"
        assert ISO_TIME.match(order["cancelled_at"]) and not order["cancellable"]
        code, body = crm.post(f"/api/orders/{order_id}/cancel")
        assert_error(code, body, 409, "not_allowed")
    for status in ("shipped", "in_transit", "out_for_delivery", "delivered", "completed"):
        order_id = non_demo_order(crm, (status,))
        code, body = crm.post(f"/api/orders/{order_id}/cancel", {})
        assert_error(code, body, 409, "not_allowed")
        assert re.search(r"[\u4e00-\u9fff]", body["error"]["message"])
        assert crm.ok(f"/api/orders/{order_id}")["status"] == status


def test_address_change_rules(crm: CrmServer) -> None:
    order_id = non_demo_order(
        crm, ("awaiting_shipment",), "AND o.order_id NOT IN (SELECT order_id FROM orders " "WHERE status = 'cancelled')"
    )
    change = {"receiver_name": "王小二", "receiver_phone": "13900001111", "address": "上海市徐汇区漕溪北路88号1栋101室"}
    status, order = crm.post(f"/api/orders/{order_id}/address", change)
    assert status == 200, order
    assert (order["receiver_name"], order["receiver_phone"], order["address"]) == tuple(change.values())
    shipped = non_demo_order(crm, ("in_transit",))
    status, body = crm.post(f"/api/orders/{shipped}/address", change)
    assert_error(status, body, 409, "not_allowed")


def returnable_order(crm: CrmServer) -> Tuple[str, Dict[str, Any]]:
    rows = query(
        crm,
        "SELECT o.order_id FROM orders o WHERE o.status IN ('delivered', 'completed') "
        "AND o.customer_id > 'C000009' AND NOT EXISTS (SELECT 1 FROM returns r WHERE r.order_id = "
        "o.order_id) ORDER BY o.order_id",
    )
    for (order_id,) in rows:
        order = crm.ok(f"/api/orders/{order_id}")
        if any(item["quantity"] >= 1 and item["no_reason_returnable"] for item in order["items"]):
            return order_id, order
    pytest.fail("no returnable seeded order")
    raise AssertionError


def test_return_creation_is_idempotent_and_validated(crm: CrmServer) -> None:
    order_id, order = returnable_order(crm)
    item = next(item for item in order["items"] if item["no_reason_returnable"])
    too_much = valid_return_body(order_id, items=[{"line_id": item["line_id"], "quantity": 1}], refund_fen=order["paid_fen"] + 1)
    status, answer = crm.post("/api/returns", too_much)
    assert_error(status, answer, 422)
    key = uuid.uuid4().hex
    body = valid_return_body(
        order_id,
        items=[{"line_id": item["line_id"], "quantity": item["quantity"]}],
        idempotency_key=key,
        refund_fen=item["paid_fen"],
        refund_expected_by="2030-01-02",
    )
    status, created = crm.post("/api/returns", body)
    assert status == 201, created
    assert re.match(r"^R\d{10}$", created["return_id"]) and created["status"] == "requested"
    assert created["refund_fen"] == item["paid_fen"] and created["refund_method"] == order["payment_method"]
    assert created["refund_expected_by"] == "2030-01-02" and created["items"][0]["sku"] == item["sku"]
    status, again = crm.post("/api/returns", body)
    assert status == 200 and again == created
    status, reused = crm.post("/api/returns", {**body, "reason": "other"})
    assert_error(status, reused, 409, "conflict")
    assert crm.ok(f"/api/returns/{created['return_id']}") == created
    listed = crm.ok(f"/api/orders/{order_id}/returns")
    assert [entry["return_id"] for entry in listed["items"]] == [created["return_id"]]
    updated = crm.ok(f"/api/orders/{order_id}")
    line = next(entry for entry in updated["items"] if entry["line_id"] == item["line_id"])
    assert line["returned_quantity"] == item["quantity"]
    mine = crm.ok(f"/api/customers/{order['customer_id']}/returns?limit=200")["items"]
    assert created["return_id"] in [entry["return_id"] for entry in mine]
    # Nothing of that line is left to return.
    status, body2 = crm.post("/api/returns", valid_return_body(order_id, items=[{"line_id": item["line_id"], "quantity": 1}]))
    assert_error(status, body2, 422)
    status, body3 = crm.post("/api/returns", valid_return_body(order_id, items=[{"line_id": 99, "quantity": 1}]))
    assert_error(status, body3, 422)


def test_return_state_and_existence_rules(crm: CrmServer) -> None:
    in_transit = non_demo_order(crm, ("in_transit",))
    status, body = crm.post("/api/returns", valid_return_body(in_transit))
    assert_error(status, body, 409, "not_allowed")
    status, body = crm.post("/api/returns", valid_return_body("999999999999"))
    assert_error(status, body, 404, "not_found")


def test_concurrent_return_requests_with_one_key(crm: CrmServer) -> None:
    order_id, order = returnable_order(crm)
    item = next(item for item in order["items"] if item["no_reason_returnable"])
    body = valid_return_body(order_id, items=[{"line_id": item["line_id"], "quantity": 1}], refund_fen=1)
    results = asyncio.run(_post_many(crm, "/api/returns", [body] * 8))
    assert sorted(status for status, _ in results) == [200] * 7 + [201]
    assert len({answer["return_id"] for _, answer in results}) == 1


# ------------------------------------------------------------------------------- points
async def _post_many(crm: CrmServer, path: str, bodies: List[Dict[str, Any]]) -> List[Tuple[int, Any]]:
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as session:

        async def one(body: Dict[str, Any]) -> Tuple[int, Any]:
            async with session.post(crm.base_url + path, json=body) as response:
                return response.status, await response.json()

        return list(await asyncio.gather(*(one(body) for body in bodies)))


def customer_with_points(crm: CrmServer, low: int, high: int, skip: Tuple[str, ...] = ()) -> Tuple[str, int]:
    rows = query(
        crm,
        "SELECT customer_id FROM customers WHERE customer_id > 'C000009' AND points_balance "
        "BETWEEN :low AND :high ORDER BY customer_id",
        low=low,
        high=high,
    )
    for (customer_id,) in rows:
        if customer_id in skip:
            continue
        balance = crm.ok(f"/api/customers/{customer_id}/points")["balance"]
        if low <= balance <= high:
            return customer_id, balance
    pytest.fail(f"no customer with {low}..{high} points")
    raise AssertionError


def test_redemption_idempotent(crm: CrmServer) -> None:
    customer_id, balance = customer_with_points(crm, 2000, 60000)
    key = uuid.uuid4().hex
    status, first = crm.post(f"/api/customers/{customer_id}/points/redeem", {"coupon_id": "CP0010", "idempotency_key": key})
    assert status == 201, first
    assert first["points_spent"] == 1000 and first["balance"] == balance - 1000
    assert first["coupon"]["coupon_id"] == "CP0010" and re.match(r"^\d{4}-\d{2}-\d{2}$", first["valid_until"])
    status, second = crm.post(f"/api/customers/{customer_id}/points/redeem", {"coupon_id": "CP0010", "idempotency_key": key})
    assert status == 200 and second == first
    assert crm.ok(f"/api/customers/{customer_id}/points")["balance"] == balance - 1000
    status, body = crm.post(f"/api/customers/{customer_id}/points/redeem", {"coupon_id": "CP0005", "idempotency_key": key})
    assert_error(status, body, 409, "conflict")
    status, body = crm.post("/api/customers/C000002/points/redeem", {"coupon_id": "CP0010", "idempotency_key": key})
    assert_error(status, body, 409, "conflict")
    ledger = crm.ok(f"/api/customers/{customer_id}/points/ledger?limit=1")["items"]
    assert ledger[0]["delta"] == -1000 and "满99减10" in ledger[0]["reason"]


def test_redemption_insufficient_points(crm: CrmServer) -> None:
    status, body = crm.post("/api/customers/C000008/points/redeem", {"coupon_id": "CP0100", "idempotency_key": uuid.uuid4().hex})
    assert_error(status, body, 409, "not_allowed")
    assert "积分不足" in body["error"]["message"]


def test_concurrent_redemptions_never_overspend(crm: CrmServer) -> None:
    customer_id, balance = customer_with_points(crm, 3000, 9999)
    cost = 1000
    bodies = [{"coupon_id": "CP0010", "idempotency_key": uuid.uuid4().hex} for _ in range(20)]
    results = asyncio.run(_post_many(crm, f"/api/customers/{customer_id}/points/redeem", bodies))
    successes = [answer for status, answer in results if status == 201]
    failures = [answer for status, answer in results if status != 201]
    assert len(successes) == balance // cost
    assert all(answer["error"]["code"] == "not_allowed" for answer in failures)
    final = crm.ok(f"/api/customers/{customer_id}/points")["balance"]
    assert final == balance - cost * len(successes) and final >= 0
    assert sorted(answer["balance"] for answer in successes) == [balance - cost * n for n in range(len(successes), 0, -1)]
    ledger = all_pages(crm, f"/api/customers/{customer_id}/points/ledger")
    assert sum(entry["delta"] for entry in ledger) == final


def test_points_endpoints_shape(crm: CrmServer) -> None:
    points = crm.ok("/api/customers/C000006/points")
    assert set(points) >= {"balance", "expiring", "recent"}
    for entry in points["recent"]:
        assert ISO_TIME.match(entry["created_at"]) and isinstance(entry["delta"], int)
    ledger = crm.ok("/api/customers/C000006/points/ledger?limit=2&offset=1")
    assert ledger["limit"] == 2 and ledger["offset"] == 1 and len(ledger["items"]) <= 2
