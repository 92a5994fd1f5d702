"""Cancelling and re-addressing orders as plain functions: policy per state, refund timing,
wording, and reading a new receiver from what the shopper typed."""

from __future__ import annotations

from datetime import date
from typing import Any, Dict, Optional

import pytest
import yaml

import bot.texts
from actions import order_change_rules as rules
from bot.shop_calendar import ShopCalendar, add_working_days

TODAY = date(2026, 11, 22)  # a Sunday


def order(status: str, **extra: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "order_id": "880000020002",
        "status": status,
        "placed_at": "2026-11-21T21:05:00+08:00",
        "paid_at": "2026-11-21T21:06:00+08:00",
        "paid_fen": 23700,
        "payment_method": "wallet",
        "receiver_name": "李娜",
        "receiver_phone": "13987654321",
        "address": "北京市海淀区中关村大街27号书香小区5栋1单元602室",
        "items": [{"product_name": "平凡的世界（全三册）", "quantity": 1}, {"product_name": "乐扣乐扣 玻璃保鲜盒 6件套", "quantity": 1}],
        "shipment": None,
    }
    base.update(extra)
    return base


SHIPPED = {"carrier_name": "京东物流", "tracking_number": "JD0880000020001", "events": []}


@pytest.mark.parametrize(
    ("status", "cancel", "address"),
    [
        ("pending_payment", True, True),
        ("awaiting_shipment", True, True),
        ("shipped", False, False),
        ("in_transit", False, False),
        ("out_for_delivery", False, False),
        ("delivered", False, False),
        ("completed", False, False),
        ("cancelled", False, False),
    ],
)
def test_policy_per_state(status: str, cancel: bool, address: bool) -> None:
    bare = {"status": status}
    assert rules.can_cancel(bare) is cancel
    assert rules.can_change_address(bare) is address


def test_the_crms_flags_win_over_the_status() -> None:
    assert rules.can_cancel({"status": "awaiting_shipment", "cancellable": False}) is False
    assert rules.can_change_address({"status": "in_transit", "address_editable": True}) is True


def test_open_orders_are_the_unsigned_ones_newest_first() -> None:
    orders = [order(status, order_id=str(index)) for index, status in enumerate(
        ["awaiting_shipment", "in_transit", "completed", "cancelled", "pending_payment", "delivered", "out_for_delivery"])]
    assert [item["order_id"] for item in rules.open_orders(orders)] == ["0", "1", "4", "6"]


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2026, 11, 22), 0, date(2026, 11, 22)),
        (date(2026, 11, 22), 3, date(2026, 11, 25)),
        (date(2026, 11, 22), 7, date(2026, 12, 1)),
        (date(2026, 11, 27), 1, date(2026, 11, 30)),
        (date(2026, 11, 28), 1, date(2026, 11, 30)),
    ],
)
def test_add_working_days(start: date, days: int, expected: date) -> None:
    assert add_working_days(start, days, ShopCalendar()) == expected  # Saturday and Sunday off, no holidays


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"paid_at": None}, "这个订单还没有付款，取消后不会产生任何费用。"),
        ({"payment_method": "balance"}, "实付 ¥237.00 会立即退回您的账户余额。"),
        ({"payment_method": "points"}, "支付的 23,700 积分会立即退回您的积分账户。"),
        ({"payment_method": "wallet"}, "实付 ¥237.00 将原路退回您的在线钱包，预计 1–3 个工作日到账，最晚 11月25日（周三）。"),
        ({"payment_method": "bank_card"}, "实付 ¥237.00 将原路退回您的银行卡，预计 3–7 个工作日到账，最晚 12月1日（周二）。"),
    ],
)
def test_refund_promise_per_payment_method(changes: Dict[str, Any], expected: str) -> None:
    assert rules.refund_promise(order("awaiting_shipment", **changes), TODAY) == expected


@pytest.mark.parametrize(
    ("status", "extra", "facts"),
    [
        ("in_transit", {"shipment": SHIPPED}, ["已经发货", "运输中", "京东物流 运单号 JD0880000020001", "拒收", "无理由退货", "转人工"]),
        ("out_for_delivery", {"shipment": SHIPPED}, ["派送中", "拒收"]),
        ("delivered", {"signed_at": "2026-11-19T16:20:00+08:00"}, ["已经签收（11月19日 16:20 签收）", "7 天内", "我要退货"]),
        ("cancelled", {"cancelled_at": "2026-11-20T09:00:00+08:00"}, ["已于 11月20日 09:00 取消", "不需要再操作"]),
    ],
)
def test_cancel_refusal_explains_and_offers_alternatives(status: str, extra: Dict[str, Any], facts: list) -> None:
    text = rules.cancel_refusal(order(status, **extra))
    assert text.startswith("订单 880000020002（平凡的世界（全三册） 等 2 件）")
    for fact in facts:
        assert fact in text, (fact, text)


@pytest.mark.parametrize(
    ("status", "facts"),
    [
        ("shipped", ["已经发货", "无法在线修改", "改派", "转人工", "拒收"]),
        ("completed", ["已经签收，无法再修改收货地址"]),
        ("cancelled", ["已经取消，不需要修改地址"]),
    ],
)
def test_address_refusal(status: str, facts: list) -> None:
    text = rules.address_refusal(order(status, shipment=SHIPPED if status == "shipped" else None))
    for fact in facts:
        assert fact in text, (fact, text)


def test_cancel_confirmation_and_result() -> None:
    question = rules.confirm_cancel_text(order("awaiting_shipment"), TODAY)
    assert question.startswith("请确认是否取消订单 880000020002（平凡的世界（全三册） 等 2 件，实付 ¥237.00，待发货）？")
    assert "最晚 11月25日（周三）" in question
    done = rules.cancelled_text(order("cancelled", cancelled_at="2026-11-22T15:40:00+08:00", paid_at=None), TODAY)
    assert done == "订单 880000020002 已为您取消（取消时间 11月22日 15:40）。这个订单还没有付款，取消后不会产生任何费用。"


def test_order_choice_button() -> None:
    button = rules.order_choice_button(order("awaiting_shipment"), "cancel_order")
    assert button == {
        "title": "11月21日 平凡的世界（全三册） 等 2 件 ¥237.00 待发货",
        "payload": '/cancel_order{"order_id":"880000020002"}',
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [("不是这个订单，是另一个", True), ("换一个订单", True), ("是别的那单", True), ("不是这单", True), ("对，就是这个", False), ("确认", False)],
)
def test_wants_another_order(text: str, expected: bool) -> None:
    assert rules.wants_another_order(text) is expected


@pytest.mark.parametrize(
    ("text", "name", "phone", "address", "keep"),
    [
        ("王芳 13900001111 上海市浦东新区张江路100号3号楼502室", "王芳", "13900001111", "上海市浦东新区张江路100号3号楼502室", False),
        ("王芳，139-0000-1111，上海市浦东新区 张江路100号", "王芳", "13900001111", "上海市浦东新区张江路100号", False),
        ("收件人：王芳 电话：13900001111 地址：上海市浦东新区张江路100号", "王芳", "13900001111", "上海市浦东新区张江路100号", False),
        ("收件人王芳电话13900001111地址上海市浦东新区张江路100号", "王芳", "13900001111", "上海市浦东新区张江路100号", False),
        ("北京市海淀区中关村大街27号5栋602室 李娜 13987654321", "李娜", "13987654321", "北京市海淀区中关村大街27号5栋602室", False),
        ("欧阳娜娜 １３９００００１１１１ 北京市朝阳区建国路88号", "欧阳娜娜", "13900001111", "北京市朝阳区建国路88号", False),
        ("王女士 13612345678 深圳市南山区科技园南区8栋", "王女士", "13612345678", "深圳市南山区科技园南区8栋", False),
        ("新地址是广州市天河区体育西路 191号 中石化大厦B座 2801", None, None, "广州市天河区体育西路191号中石化大厦B座2801", False),
        ("帮我把地址改成北京市朝阳区建国路88号", None, None, "北京市朝阳区建国路88号", False),
        ("改成杭州市西湖区文三路1号，收件人不变，电话不变", None, None, "杭州市西湖区文三路1号", True),
        ("收货人改成李四", "李四", None, None, False),
        ("电话改为 13700001234", None, "13700001234", None, False),
        ("张三", "张三", None, None, False),
        ("13900001111", None, "13900001111", None, False),
        ("好的", None, None, None, False),
        ("嗯嗯", None, None, None, False),
        ("收件人是小王", "小王", None, None, False),
        ("不是这个订单，是另一个", None, None, None, False),
        ("地址写错了，能改吗", None, None, None, False),
        ("订单202611150023的地址要改", None, None, None, False),
        ("送到菜鸟驿站", None, None, None, False),
        ("12345678901", None, None, None, False),
    ],
)
def test_parse_receiver(text: str, name: Optional[str], phone: Optional[str], address: Optional[str], keep: bool) -> None:
    assert rules.parse_receiver(text) == rules.ReceiverDraft(name=name, phone=phone, address=address, keep_current=keep)


def test_drafts_merge_and_keep_the_current_receiver() -> None:
    earlier = rules.ReceiverDraft(name="王芳", phone="13900001111")
    later = rules.ReceiverDraft(address="上海市浦东新区张江路100号")
    merged = later.merged_over(earlier)
    assert merged.missing() == []
    kept = rules.ReceiverDraft(address="上海市浦东新区张江路100号", keep_current=True).with_current(order("awaiting_shipment"))
    assert (kept.name, kept.phone) == ("李娜", "13987654321")
    assert rules.ReceiverDraft(phone="13900001111").missing() == ["收货人姓名", "详细地址"]


def test_phones_are_masked_in_every_reply() -> None:
    draft = rules.ReceiverDraft(name="王芳", phone="13900001111", address="上海市浦东新区张江路100号")
    texts = [
        rules.confirm_address_text(order("awaiting_shipment"), draft),
        rules.ask_receiver_text(order("awaiting_shipment"), rules.ReceiverDraft(phone="13900001111"), first_time=True),
        rules.address_changed_text(order("awaiting_shipment", receiver_phone="13900001111")),
        rules.describe_receiver("王芳", "13900001111", None),
    ]
    for text in texts:
        assert "13900001111" not in text and "13987654321" not in text
        assert "139****1111" in text or "139****4321" in text
    assert "手机号：139****1111" in texts[0]
    assert "当前：收货人 李娜，手机 139****4321，地址 北京市海淀区" in texts[1]
    assert "还需要新的收货人姓名、详细地址" in texts[1]


def test_refusals_quote_the_return_windows_of_the_return_policy(tmp_path, monkeypatch) -> None:
    policy = yaml.safe_load(bot.texts.RETURNS.read_text(encoding="utf-8"))
    policy["windows"].update(no_reason_days=10, quality_days=30)
    edited = tmp_path / "returns.yml"
    edited.write_text(yaml.safe_dump(policy, allow_unicode=True), encoding="utf-8")
    monkeypatch.setattr(bot.texts, "RETURNS", edited)
    bot.texts.fill_values.cache_clear()
    try:
        signed = rules.cancel_refusal(order("delivered", signed_at="2026-11-19T16:20:00+08:00"))
        shipped = rules.cancel_refusal(order("in_transit", shipment=SHIPPED))
    finally:
        bot.texts.fill_values.cache_clear()
    assert "签收后 10 天内可以申请无理由退货" in signed and "质量问题 30 天内可以退换" in signed
    assert "签收后 10 天内申请无理由退货" in shipped and "7 天" not in shipped


@pytest.mark.parametrize(
    ("status", "human"),
    [("awaiting_shipment", True), ("in_transit", True), ("out_for_delivery", True), ("delivered", False), ("completed", False),
     ("cancelled", False)],
)
def test_a_refusal_offers_a_human_by_the_orders_state(status: str, human: bool) -> None:
    assert rules.refusal_offers_human({"status": status}) is human
    text = rules.cancel_refusal(order(status, shipment=SHIPPED if status in rules.SHIPPED_STATUSES else None))
    assert ("转人工" in text) is human
