"""Which order a shopper means and how its status is told."""

from datetime import date

import pytest

from actions.order_tracking import choose_order, describe_order, is_late, order_button

TODAY = date(2026, 11, 22)


def make_order(order_id: str, status: str, **extra):
    order = {
        "order_id": order_id,
        "customer_id": "C000001",
        "status": status,
        "placed_at": "2026-11-18T10:05:00+08:00",
        "promised_date": "2026-11-24",
        "signed_at": None,
        "paid_fen": 56900,
        "items": [{"line_id": 1, "product_name": "耐克 Air Zoom 跑鞋", "quantity": 1}],
        "shipment": None,
    }
    order.update(extra)
    return order


SHIPMENT = {
    "carrier": "SF",
    "carrier_name": "顺丰速运",
    "tracking_number": "SF123456789012",
    "events": [
        {"time": "2026-11-20T09:00:00+08:00", "location": "杭州转运中心", "description": "快件已揽收"},
        {"time": "2026-11-21T14:32:00+08:00", "location": "上海浦东转运中心", "description": "快件已发往上海静安营业部"},
    ],
}


@pytest.mark.parametrize(
    ("statuses", "expected_order", "expected_candidates"),
    [
        ([], None, []),
        (["delivered"], "000000000001", []),
        (["delivered", "in_transit"], "000000000002", []),
        (["in_transit", "awaiting_shipment"], None, ["000000000001", "000000000002"]),
        (["cancelled", "completed"], "000000000001", []),
        (["out_for_delivery", "shipped", "in_transit"], None, ["000000000001", "000000000002", "000000000003"]),
    ],
)
def test_choose_order(statuses, expected_order, expected_candidates):
    orders = [make_order(f"{index + 1:012d}", status) for index, status in enumerate(statuses)]
    choice = choose_order(orders)
    assert (choice.order or {}).get("order_id") == expected_order
    assert [order["order_id"] for order in choice.candidates] == expected_candidates


def test_choose_order_by_tracking_number_case_insensitive():
    orders = [make_order("000000000001", "in_transit"), make_order("000000000002", "in_transit", shipment=SHIPMENT)]
    assert choose_order(orders, "sf123456789012").order["order_id"] == "000000000002"
    assert choose_order(orders, "SF999999999999").order is None


@pytest.mark.parametrize(
    ("status", "promised", "late"),
    [
        ("in_transit", "2026-11-21", True),
        ("in_transit", "2026-11-22", False),
        ("out_for_delivery", "2026-11-20", True),
        ("awaiting_shipment", "2026-11-01", True),
        ("delivered", "2026-11-01", False),
        ("cancelled", "2026-11-01", False),
        ("pending_payment", "2026-11-01", False),
    ],
)
def test_is_late(status, promised, late):
    assert is_late(make_order("000000000001", status, promised_date=promised), TODAY) is late


def test_describe_in_transit_order_gives_every_fact():
    text = describe_order(make_order("202611180001", "in_transit", shipment=SHIPMENT), TODAY)
    assert "202611180001" in text
    assert "运输中" in text
    assert "顺丰速运" in text and "SF123456789012" in text
    assert "11月21日 14:32【上海浦东转运中心】快件已发往上海静安营业部" in text
    assert "预计11月24日（周二）前送达" in text
    assert "¥569.00" in text


def test_describe_late_order_apologises_with_days_overdue():
    text = describe_order(make_order("202611180001", "in_transit", promised_date="2026-11-20", shipment=SHIPMENT), TODAY)
    assert "非常抱歉" in text
    assert "11月20日（周五）" in text
    assert "超出 2 天" in text
    assert "转人工" in text


def test_describe_delivered_order_gives_sign_time():
    order = make_order("202611180001", "delivered", signed_at="2026-11-21T18:03:00+08:00", shipment=SHIPMENT)
    text = describe_order(order, TODAY)
    assert "已签收" in text and "签收时间：11月21日 18:03" in text
    assert "预计" not in text


def test_order_button_payload_carries_the_order_id():
    order = make_order("202611180001", "in_transit")
    order["items"].append({"line_id": 2, "product_name": "袜子", "quantity": 2})
    button = order_button(order)
    assert button == {
        "title": "11月18日 耐克 Air Zoom 跑鞋 等 3 件 ¥569.00",
        "payload": '/track_order{"order_id":"202611180001"}',
    }
