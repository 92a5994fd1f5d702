"""Late deliveries over HTTP, on SQLite and PostgreSQL: urges (催件) and late-delivery compensation in points."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from typing import Any, Dict, List, Tuple

import aiohttp
import pytest

from crm.tests.support import API_KEY, CrmServer
from crm.tests.test_api import ISO_TIME, TODAY, all_pages, assert_error, query

SHOP_TZ = dt.timezone(dt.timedelta(hours=8))
IN_FLIGHT = "('awaiting_shipment', 'shipped', 'in_transit', 'out_for_delivery')"


def late_orders(crm: CrmServer) -> List[str]:
    """Non-demo orders in flight past their promised date."""
    rows = query(
        crm,
        f"SELECT order_id FROM orders WHERE status IN {IN_FLIGHT} AND promised_date < :today "
        "AND customer_id > 'C000009' ORDER BY order_id",
        today=TODAY,
    )
    assert len(rows) >= 7, "the seed has fewer than 7 late orders in flight"
    return [row[0] for row in rows]


def order_in(crm: CrmServer, status: str) -> str:
    """A non-demo order in ``status``, from the end of the id range (other tests take the first ones)."""
    rows = query(crm, "SELECT order_id FROM orders WHERE status = :status AND customer_id > 'C000009' ORDER BY order_id DESC", status=status)
    assert rows, f"no seeded order in {status}"
    return rows[0][0]


def in_shop_time(moment: dt.datetime) -> str:
    return moment.astimezone(SHOP_TZ).replace(microsecond=0).isoformat()


def grant(crm: CrmServer, order_id: str, points: Any, key: str = "") -> Tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else {}
    status, body, _ = crm.call("POST", f"/api/orders/{order_id}/late-compensation", {"points": points}, headers=headers)
    return status, body


# ---------------------------------------------------------------------------------- urges
def test_urge_is_filed_once_while_open(crm: CrmServer) -> None:
    order_id = late_orders(crm)[0]
    order = crm.ok(f"/api/orders/{order_id}")
    due = in_shop_time(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2, minutes=7))
    status, urge = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": due})
    assert status == 201, urge
    assert urge["order_id"] == order_id and urge["customer_id"] == order["customer_id"]
    assert urge["target"] == "carrier" and urge["target_label"] == "承运商"
    assert urge["carrier"] == order["shipment"]["carrier"] and urge["carrier_name"] == order["shipment"]["carrier_name"]
    assert urge["tracking_number"] == order["shipment"]["tracking_number"]
    assert urge["answer_due_at"] == due and ISO_TIME.match(urge["created_at"]) and urge["open"] is True
    later = in_shop_time(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=5))
    status, again = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": later})
    assert status == 200 and again == urge
    status, without_body = crm.post(f"/api/orders/{order_id}/urge")
    assert status == 200 and without_body == urge
    listed = crm.ok(f"/api/orders/{order_id}/urges")
    assert listed["total"] == 1 and listed["items"] == [urge]


def test_urge_before_shipping_goes_to_the_warehouse_with_the_default_window(crm: CrmServer) -> None:
    order_id = order_in(crm, "awaiting_shipment")
    status, urge = crm.post(f"/api/orders/{order_id}/urge", {})
    assert status == 201, urge
    assert urge["target"] == "warehouse" and urge["target_label"] == "仓库"
    assert urge["carrier"] is None and urge["carrier_name"] is None and urge["tracking_number"] is None
    created, due = (dt.datetime.fromisoformat(urge[name]) for name in ("created_at", "answer_due_at"))
    assert due - created == dt.timedelta(hours=2)


def test_urge_refusals(crm: CrmServer) -> None:
    order_id = late_orders(crm)[1]
    now = dt.datetime.now(dt.timezone.utc)
    for due in (in_shop_time(now - dt.timedelta(minutes=1)), in_shop_time(now + dt.timedelta(days=8))):
        status, body = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": due})
        assert_error(status, body, 422, "invalid_argument")
    for bad in ("2026-11-23T16:30:00", "16:30", 1700000000, "x" * 50):
        status, body = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": bad})
        assert_error(status, body, 400, "invalid_argument")
    status, body = crm.post(f"/api/orders/{order_id}/urge", raw=b"{oops")
    assert_error(status, body, 400, "invalid_argument")
    assert crm.ok(f"/api/orders/{order_id}/urges")["total"] == 0
    for done in ("delivered", "cancelled", "pending_payment"):
        status, body = crm.post(f"/api/orders/{order_in(crm, done)}/urge", {})
        assert_error(status, body, 409, "not_allowed")
        assert re.search(r"[\u4e00-\u9fff]", body["error"]["message"])
    assert_error(*crm.post("/api/orders/999999999999/urge", {}), 404, "not_found")
    assert_error(*crm.post("/api/orders/12345/urge", {}), 400, "invalid_argument")
    assert_error(*crm.get("/api/orders/999999999999/urges"), 404, "not_found")
    assert_error(*crm.get(f"/api/orders/{order_id}/urges?limit=0"), 400, "invalid_argument")


# --------------------------------------------------------------------------- compensation
def test_late_compensation_is_granted_once_and_written_to_the_ledger(crm: CrmServer) -> None:
    order_id = late_orders(crm)[2]
    order = crm.ok(f"/api/orders/{order_id}")
    customer_id = order["customer_id"]
    before = crm.ok(f"/api/customers/{customer_id}/points")["balance"]
    key = uuid.uuid4().hex
    status, granted = grant(crm, order_id, 1000, key)
    assert status == 201, granted
    late = (TODAY - dt.date.fromisoformat(order["promised_date"])).days
    assert granted["order_id"] == order_id and granted["customer_id"] == customer_id
    assert granted["points"] == 1000 and granted["days_late"] == late >= 1
    assert granted["balance"] == before + 1000 and ISO_TIME.match(granted["granted_at"])
    assert granted["reason"] == f"订单延误补偿（订单 {order_id}，超出承诺送达日 {late} 天）"
    ledger = crm.ok(f"/api/customers/{customer_id}/points/ledger?limit=1")["items"]
    assert ledger[0]["entry_id"] == granted["ledger_entry_id"]
    assert (ledger[0]["delta"], ledger[0]["reason"], ledger[0]["order_id"]) == (1000, granted["reason"], order_id)
    assert ledger[0]["expires_on"] == f"{TODAY.year + 1}-12-31"
    # A retry with the same key is the same grant; anything else is refused.
    assert grant(crm, order_id, 1000, key) == (200, granted)
    assert_error(*grant(crm, order_id, 1000, uuid.uuid4().hex), 409, "conflict")
    assert_error(*grant(crm, order_id, 500, key), 409, "conflict")
    assert_error(*grant(crm, late_orders(crm)[3], 1000, key), 409, "conflict")
    assert crm.ok(f"/api/orders/{order_id}/late-compensation") == granted
    assert crm.ok(f"/api/customers/{customer_id}/points")["balance"] == before + 1000
    ledger = all_pages(crm, f"/api/customers/{customer_id}/points/ledger")
    assert sum(entry["delta"] for entry in ledger) == crm.ok(f"/api/customers/{customer_id}")["points_balance"]


def test_late_compensation_refusals(crm: CrmServer) -> None:
    on_time = query(
        crm,
        f"SELECT order_id FROM orders WHERE status IN {IN_FLIGHT} AND promised_date >= :today AND customer_id > 'C000009' ORDER BY order_id",
        today=TODAY,
    )[0][0]
    for order_id in (on_time, order_in(crm, "cancelled"), order_in(crm, "pending_payment")):
        status, body = grant(crm, order_id, 500, uuid.uuid4().hex)
        assert_error(status, body, 409, "not_allowed")
        assert "不符合延误补偿条件" in body["error"]["message"]
        assert_error(*crm.get(f"/api/orders/{order_id}/late-compensation"), 404, "not_found")
    late = late_orders(crm)[4]
    assert_error(*grant(crm, late, 500), 400, "invalid_argument")
    assert_error(*grant(crm, late, 500, "k" * 129), 400, "invalid_argument")
    for points in (0, -5, "500", 1.5, True, 100001, None):
        assert_error(*grant(crm, late, points, uuid.uuid4().hex), 400, "invalid_argument")
    status, body, _ = crm.call("POST", f"/api/orders/{late}/late-compensation", raw=b"[]", headers={"Idempotency-Key": "k"})
    assert_error(status, body, 400, "invalid_argument")
    assert_error(*grant(crm, "999999999999", 500, uuid.uuid4().hex), 404, "not_found")
    assert_error(*crm.get("/api/orders/999999999999/late-compensation"), 404, "not_found")
    assert_error(*crm.get(f"/api/orders/{late}/late-compensation"), 404, "not_found")


def test_late_compensation_signed_late_counts_until_signing(crm: CrmServer) -> None:
    """An order signed for after its promised date was late by the days until it was signed for."""
    rows = query(crm, "SELECT order_id FROM orders WHERE status = 'delivered' AND customer_id > 'C000009' ORDER BY order_id DESC")
    for (order_id,) in rows:
        order = crm.ok(f"/api/orders/{order_id}")
        if order["is_late"] and order["promised_date"]:
            break
    else:
        pytest.skip("no delivered order was signed for late in this seed")
    status, granted = grant(crm, order_id, 500, uuid.uuid4().hex)
    assert status == 201, granted
    signed = dt.datetime.fromisoformat(order["signed_at"]).date()
    assert granted["days_late"] == (signed - dt.date.fromisoformat(order["promised_date"])).days


async def _grant_many(crm: CrmServer, order_id: str, keys: List[str]) -> List[Tuple[int, Dict[str, Any]]]:
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as session:

        async def one(key: str) -> Tuple[int, Dict[str, Any]]:
            url = f"{crm.base_url}/api/orders/{order_id}/late-compensation"
            async with session.post(url, json={"points": 500}, headers={"Idempotency-Key": key}) as response:
                return response.status, await response.json()

        return list(await asyncio.gather(*(one(key) for key in keys)))


def test_concurrent_grants_pay_once(crm: CrmServer) -> None:
    order_id = late_orders(crm)[5]
    customer_id = crm.ok(f"/api/orders/{order_id}")["customer_id"]
    before = crm.ok(f"/api/customers/{customer_id}/points")["balance"]
    results = asyncio.run(_grant_many(crm, order_id, [uuid.uuid4().hex for _ in range(8)]))
    assert sorted(status for status, _ in results) == [201] + [409] * 7
    assert all(body["error"]["code"] == "conflict" for status, body in results if status == 409)
    assert crm.ok(f"/api/customers/{customer_id}/points")["balance"] == before + 500


async def _urge_many(crm: CrmServer, order_id: str, count: int) -> List[Tuple[int, Dict[str, Any]]]:
    async with aiohttp.ClientSession(headers={"X-API-Key": API_KEY}) as session:

        async def one() -> Tuple[int, Dict[str, Any]]:
            async with session.post(f"{crm.base_url}/api/orders/{order_id}/urge", json={}) as response:
                return response.status, await response.json()

        return list(await asyncio.gather(*(one() for _ in range(count))))


def test_concurrent_urges_file_one(crm: CrmServer) -> None:
    order_id = late_orders(crm)[6]
    results = asyncio.run(_urge_many(crm, order_id, 8))
    assert sorted(status for status, _ in results) == [200] * 7 + [201]
    assert len({body["urge_id"] for _, body in results}) == 1
    assert crm.ok(f"/api/orders/{order_id}/urges")["total"] == 1
