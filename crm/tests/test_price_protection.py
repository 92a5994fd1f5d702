"""Price protection (价保) over HTTP, on SQLite and PostgreSQL: claims for dropped prices, each refusal
with its reason code, idempotency, and one claim per order line under concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any, Dict, List, Optional, Tuple

import aiohttp
import pytest

from bot.shop_calendar import add_working_days
from crm.policy import load_service_policy
from crm.tests.support import API_KEY, CrmServer
from crm.tests.test_api import ISO_TIME, TODAY, assert_error, query

POLICY = load_service_policy("price_protection")
DROPPED = "880000010001"  # C000001: 华为 FreeBuds Pro 3 paid 1,499 元, now 1,299 元 (everyday price)
FLASH_SALE = "880000010002"  # C000001: 耐克 Air Zoom now at 秒杀价 799 元, 安踏 T恤 unchanged
WINDOW_PASSED = "880000030001"  # C000003: 索尼 降噪耳机 dropped, but paid 43 days ago
UNCHANGED = "880000040001"  # C000004: nothing dropped
UNPAID = "880000080001"  # C000008: pending payment


def claim(crm: CrmServer, order_id: str, body: Any = None, key: Optional[str] = None) -> Tuple[int, Any]:
    headers = {"Idempotency-Key": key if key is not None else f"test-{uuid.uuid4().hex}"} if key != "" else {}
    status, answer, _ = crm.call("POST", f"/api/orders/{order_id}/price-protection", body, headers=headers)
    return status, answer


def refusal(status: int, body: Any, reason: str) -> Dict[str, Any]:
    assert_error(status, body, 409, "not_allowed")
    assert body["error"]["reason"] == reason, body
    return body["error"]["details"]


def test_a_dropped_price_is_refunded_to_the_payment_method_once(crm: CrmServer) -> None:
    order = crm.ok(f"/api/orders/{DROPPED}")
    earphones = order["items"][0]
    assert (earphones["sku"], earphones["paid_fen"], earphones["current_price_fen"], earphones["current_price_kind"]) == (
        "EL006", 149900, 129900, None)
    key = f"test-{uuid.uuid4().hex}"
    status, created = claim(crm, DROPPED, key=key)
    assert status == 201, created
    assert created["claim_id"].startswith("PP") and len(created["claim_id"]) == 12
    assert (created["order_id"], created["customer_id"], created["status"], created["status_label"]) == (
        DROPPED, "C000001", "refunding", "差价退款中")
    assert (created["refund_fen"], created["refund_method"], created["refund_method_label"], created["refund_timing"]) == (
        20000, "wallet", "在线钱包", "微信、支付宝等在线钱包")
    low, high = POLICY["refund_working_days"]["微信、支付宝等在线钱包"]
    assert created["refund_expected_from"] == add_working_days(TODAY, low).isoformat()
    assert created["refund_expected_by"] == add_working_days(TODAY, high).isoformat()
    assert ISO_TIME.match(created["created_at"])
    assert created["lines"] == [{"line_id": 1, "sku": "EL006", "product_name": "华为 FreeBuds Pro 3 无线耳机", "quantity": 1,
                                 "paid_unit_fen": 149900, "current_price_fen": 129900, "refund_fen": 20000}]

    status, again = claim(crm, DROPPED, key=key)
    assert status == 200 and again == created
    assert crm.ok(f"/api/orders/{DROPPED}/price-protection") == {"items": [created], "total": 1}

    details = refusal(*claim(crm, DROPPED), "already_claimed")
    assert [(line["line_id"], line["reason"]) for line in details["lines"]] == [(1, "already_claimed"), (2, "no_price_drop")]
    status, body = claim(crm, FLASH_SALE, key=key)
    assert_error(status, body, 409, "conflict")
    assert crm.ok(f"/api/orders/{DROPPED}/price-protection")["total"] == 1


def test_a_flash_sale_price_is_not_protected(crm: CrmServer) -> None:
    status, body = claim(crm, FLASH_SALE, {"line_ids": [1, 2]})
    details = refusal(status, body, "excluded_price_kind")
    assert body["error"]["message"] == "商品现在的价格是秒杀价，不参与价保"
    assert details["lines"][0] == {"line_id": 1, "reason": "excluded_price_kind", "current_price_fen": 79900,
                                   "current_price_kind": "秒杀价", "paid_unit_fen": 88080}
    assert details["lines"][1]["reason"] == "no_price_drop"
    refusal(*claim(crm, FLASH_SALE, {"line_ids": [2]}), "no_price_drop")
    assert crm.ok(f"/api/orders/{FLASH_SALE}/price-protection") == {"items": [], "total": 0}


def test_the_window_ends_window_days_after_payment(crm: CrmServer) -> None:
    order = crm.ok(f"/api/orders/{WINDOW_PASSED}")
    assert order["items"][0]["current_price_fen"] < order["items"][0]["paid_fen"]
    details = refusal(*claim(crm, WINDOW_PASSED), "window_passed")
    ends = dt.datetime.fromisoformat(order["paid_at"]) + dt.timedelta(days=POLICY["window_days"])
    assert details["window_ends_at"] == ends.isoformat()
    status, body = claim(crm, WINDOW_PASSED)
    assert f"价保期已于 {ends.year}年{ends.month}月{ends.day}日 {ends:%H:%M} 结束" in body["error"]["message"]


@pytest.mark.parametrize(("order_id", "reason"), [(UNCHANGED, "no_price_drop"), (UNPAID, "not_paid")])
def test_refusals_name_their_reason(crm: CrmServer, order_id: str, reason: str) -> None:
    details = refusal(*claim(crm, order_id), reason)
    assert details["window_ends_at"] is None if reason == "not_paid" else ISO_TIME.match(details["window_ends_at"])


def recent_dropped_orders(crm: CrmServer) -> List[str]:
    """Non-demo orders paid within the window with a dropped everyday price and nothing returned."""
    since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=POLICY["window_days"] - 1)).replace(tzinfo=None)
    rows = query(
        crm,
        "SELECT DISTINCT o.order_id FROM orders o JOIN order_items i ON i.order_id = o.order_id "
        "JOIN product_prices p ON p.sku = i.sku AND p.kind IS NULL AND p.price_fen * i.quantity < i.paid_fen "
        "WHERE o.paid_at > :since AND o.status NOT IN ('cancelled', 'pending_payment') AND o.customer_id > 'C000009' "
        "AND NOT EXISTS (SELECT 1 FROM returns r WHERE r.order_id = o.order_id) ORDER BY o.order_id",
        since=since,
    )
    assert len(rows) >= 2, "the seed has fewer than 2 recent orders with a dropped price"
    return [row[0] for row in rows]


def test_a_seeded_order_with_a_drop_gets_the_difference_per_unit(crm: CrmServer) -> None:
    order_id = recent_dropped_orders(crm)[0]
    order = crm.ok(f"/api/orders/{order_id}")
    dropped = [item for item in order["items"] if item["current_price_fen"] < item["paid_fen"] // item["quantity"]
               and item["current_price_kind"] is None]
    status, created = claim(crm, order_id)
    assert status == 201, created
    assert [line["line_id"] for line in created["lines"]] == [item["line_id"] for item in dropped]
    for line, item in zip(created["lines"], dropped, strict=True):
        assert line["refund_fen"] == (item["paid_fen"] // item["quantity"] - item["current_price_fen"]) * item["quantity"]
    assert created["refund_fen"] == sum(line["refund_fen"] for line in created["lines"])
    assert created["refund_method"] == order["payment_method"]


@pytest.mark.parametrize(
    ("body", "key", "status"),
    [
        ({"line_ids": "1"}, None, 400),
        ({"line_ids": []}, None, 400),
        ({"line_ids": [1, 1]}, None, 400),
        ({"line_ids": [True]}, None, 400),
        ({}, "", 400),
        ({"line_ids": [9]}, None, 422),
    ],
    ids=["not-a-list", "empty", "repeated", "boolean", "no-key", "unknown-line"],
)
def test_bad_claims_answer_json_errors(crm: CrmServer, body: Any, key: Optional[str], status: int) -> None:
    answer_status, answer = claim(crm, UNCHANGED, body, key=key)
    assert_error(answer_status, answer, status, "invalid_argument")
    if status == 422:
        assert answer["error"]["reason"] == "unknown_line"


def test_unknown_orders_are_404(crm: CrmServer) -> None:
    assert_error(*claim(crm, "123456789012"), 404, "not_found")
    status, body = crm.get("/api/orders/123456789012/price-protection")
    assert_error(status, body, 404, "not_found")


def test_concurrent_claims_protect_a_line_once(crm: CrmServer) -> None:
    order_id = recent_dropped_orders(crm)[-1]
    results = asyncio.run(_claim_many(crm, order_id, [f"race-{uuid.uuid4().hex}" for _ in range(6)]))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * 5, results
    assert {body["error"]["reason"] for status, body in results if status == 409} == {"already_claimed"}
    assert crm.ok(f"/api/orders/{order_id}/price-protection")["total"] == 1


async def _claim_many(crm: CrmServer, order_id: str, keys: List[str]) -> List[Tuple[int, Any]]:
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as session:

        async def one(key: str) -> Tuple[int, Any]:
            async with session.post(f"{crm.base_url}/api/orders/{order_id}/price-protection", json={},
                                    headers={"Idempotency-Key": key}) as response:
                return response.status, await response.json()

        return list(await asyncio.gather(*(one(key) for key in keys)))
