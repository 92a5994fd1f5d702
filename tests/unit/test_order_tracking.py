"""Which order a shopper means and how its status is told."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from actions.delivery_policy import Compensation
from actions.order_tracking import (
    COMPENSATION,
    URGE,
    LateHandling,
    choose_order,
    days_overdue,
    describe_full_track,
    describe_late_handling,
    describe_order,
    full_track_button,
    is_late,
    order_button,
    track_events,
)

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 14, 23, tzinfo=ZoneInfo("Asia/Shanghai"))


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
    assert text.endswith("非常抱歉，这个订单承诺11月20日（周五）送达，现已超出 2 天仍未签收。")


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


@pytest.mark.parametrize(
    ("status", "promised", "days"),
    [("in_transit", "2026-11-20", 2), ("in_transit", "2026-11-22", 0), ("delivered", "2026-11-01", 0), ("awaiting_shipment", "2026-11-21", 1)],
)
def test_days_overdue(status, promised, days):
    assert days_overdue(make_order("000000000001", status, promised_date=promised), TODAY) == days


def test_full_track_button_asks_for_that_order():
    assert full_track_button(make_order("202611180001", "in_transit")) == {
        "title": "查看完整物流",
        "payload": '/track_order_full{"order_id":"202611180001"}',
    }


def test_full_track_lists_every_event_oldest_first():
    shipment = dict(SHIPMENT, events=list(reversed(SHIPMENT["events"])))  # the CRM lists newest first
    text = describe_full_track(make_order("202611180001", "in_transit", shipment=shipment))
    assert text.splitlines() == [
        "订单 202611180001（耐克 Air Zoom 跑鞋）的完整物流：顺丰速运，运单号 SF123456789012，共 2 条，从早到晚：",
        "1. 11月20日 09:00【杭州转运中心】快件已揽收",
        "2. 11月21日 14:32【上海浦东转运中心】快件已发往上海静安营业部",
        "当前状态：运输中。",
    ]


def test_events_with_the_same_time_keep_the_carriers_order():
    same = "2026-11-21T14:32:00+08:00"
    events = [{"time": same, "location": "B", "description": "second"}, {"time": same, "location": "A", "description": "first"}]
    shipment = dict(SHIPMENT, events=events)
    assert [event["description"] for event in track_events(make_order("1", "in_transit", shipment=shipment))] == ["first", "second"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("awaiting_shipment", "订单 202611180001（耐克 Air Zoom 跑鞋）当前状态：待发货，还没有物流记录。发货后就能看到完整物流。"),
        ("cancelled", "订单 202611180001（耐克 Air Zoom 跑鞋）当前状态：已取消，还没有物流记录。"),
    ],
)
def test_full_track_without_a_shipment(status, expected):
    assert describe_full_track(make_order("202611180001", status)) == expected


URGE_NEW = {
    "target": "carrier", "carrier_name": "顺丰速运",
    "created_at": "2026-11-22T14:23:05+08:00", "answer_due_at": "2026-11-22T16:30:00+08:00",
}
GRANT = {"points": 1000, "balance": 40469, "granted_at": "2026-11-21T09:12:00+08:00"}
RULE = Compensation(days_late=2, base_points=500, multiplier=2)


@pytest.mark.parametrize(
    ("handling", "lines"),
    [
        (
            LateHandling(urge=URGE_NEW, urge_created=True, grant=GRANT, grant_created=True, compensation=RULE, tier_name="金牌会员",
                         relayed=True),
            [
                "我们已为您向顺丰速运催件，顺丰速运将在今天 16:30 前回复最新进度，回复会直接发到这个对话里告诉您。",
                "按延误补偿规则（超出 2 天补偿 500 积分，金牌会员双倍），已为您补偿 1,000 积分，已到账，当前积分 40,469。",
                "如需人工客服进一步跟进，请点“转人工”。",
            ],
        ),
        (
            LateHandling(urge=dict(URGE_NEW, created_at="2026-11-21T22:40:00+08:00", answer_due_at="2026-11-23T09:40:00+08:00"), grant=GRANT,
                         relayed=True),
            [
                "我们已于昨天 22:40 为您向顺丰速运催件，顺丰速运将在明天 09:40 前回复最新进度，回复会直接发到这个对话里告诉您。",
                "这个订单的延误补偿 1,000 积分已于昨天 09:12 发放到您的账户（每个订单补偿一次）。",
                "如需人工客服进一步跟进，请点“转人工”。",
            ],
        ),
        (
            LateHandling(urge=dict(URGE_NEW, target="warehouse", carrier_name=None), urge_created=True, failed=(COMPENSATION,), relayed=True),
            [
                "我们已为您催促仓库尽快发货，仓库将在今天 16:30 前回复发货时间，回复会直接发到这个对话里告诉您。",
                "抱歉，延误补偿这次没能在系统里办理成功，将由人工客服为您处理，请点“转人工”。",
            ],
        ),
        (  # the promise could not be recorded (Redis down): no word of the answer coming here
            LateHandling(urge=URGE_NEW, urge_created=True),
            ["我们已为您向顺丰速运催件，顺丰速运将在今天 16:30 前回复最新进度。", "如需人工客服进一步跟进，请点“转人工”。"],
        ),
        (
            LateHandling(grant=GRANT, grant_created=True, compensation=Compensation(3, 1000, 1), failed=(URGE,)),
            [
                "按延误补偿规则（超出 3 天补偿 1,000 积分），已为您补偿 1,000 积分，已到账，当前积分 40,469。",
                "抱歉，催件这次没能在系统里办理成功，将由人工客服为您处理，请点“转人工”。",
            ],
        ),
        (
            LateHandling(failed=(URGE, COMPENSATION)),
            ["抱歉，催件和延误补偿这次没能在系统里办理成功，将由人工客服为您处理，请点“转人工”。"],
        ),
    ],
)
def test_late_handling_says_what_was_done_with_times_and_amounts(handling, lines):
    assert describe_late_handling(handling, NOW).splitlines() == lines
