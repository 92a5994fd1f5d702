"""The return conversation as plain functions (``actions/return_flow.py``) on synthetic orders: what
an answer means, which question follows, and the cases the demo data does not have."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Dict, List, Optional

import pytest

from actions import refund_status
from actions import return_flow as flow
from actions import return_policy as rp

POLICY = rp.default_policy()
TODAY = date(2026, 11, 22)


def line(line_id: int, name: str, category: str, unit: int, quantity: int = 1, returned: int = 0, brand: str = "") -> Dict[str, Any]:
    return {"line_id": line_id, "product_name": name, "brand": brand or name.split()[0], "category": category,
            "quantity": quantity, "unit_price_fen": unit, "returned_quantity": returned,
            "no_reason_returnable": category not in ("fresh_food", "personal_care", "underwear", "gift_card")}


def order(order_id: str, items: List[Dict[str, Any]], days_ago: Optional[int] = 2, status: str = "delivered",
          coupon: int = 0, method: str = "wallet") -> Dict[str, Any]:
    subtotal = sum(item["unit_price_fen"] * item["quantity"] for item in items)
    signed = (TODAY - timedelta(days=days_ago)).isoformat() + "T10:00:00+08:00" if days_ago is not None else None
    return {"order_id": order_id, "customer_id": "C1", "status": status, "items": items, "coupon_discount_fen": coupon,
            "shipping_fee_fen": 0, "paid_fen": subtotal - coupon, "has_shipping_insurance": False, "payment_method": method,
            "placed_at": (TODAY - timedelta(days=9)).isoformat() + "T10:00:00+08:00", "signed_at": signed}


TEA = order("880000000101", [line(1, "西湖龙井 茶叶礼盒", "home", 5000, quantity=5, brand="西湖"),
                             line(2, "海飞丝 去屑洗发水 750ml", "personal_care", 5900)])
SHOES = order("880000000102", [line(1, "耐克 Air Zoom 跑鞋", "shoes", 89900), line(2, "阳澄湖大闸蟹 礼盒装 8只", "fresh_food", 39800)],
              days_ago=1)
OLD = order("880000000103", [line(1, "索尼 WH-1000XM5 降噪耳机", "electronics", 249900)], days_ago=40)
MOVING = order("880000000104", [line(1, "优衣库 摇粒绒外套", "apparel", 19900)], days_ago=None, status="in_transit")


def data(*orders: Dict[str, Any], returns: tuple = (), anonymous: bool = False) -> flow.FlowData:
    return flow.FlowData(TODAY, POLICY, tuple(orders), tuple(returns), anonymous)


def answer(text: str = "", intent: str = "inform", **entities: Any) -> flow.Answer:
    values = {name: value if isinstance(value, list) else [value] for name, value in entities.items()}
    return flow.read_answer(intent, text, values, POLICY)


def state(**values: Any) -> flow.FlowState:
    return flow.FlowState(**values)


# --------------------------------------------------------------------------- reading answers
@pytest.mark.parametrize(
    ("text", "reason"),
    [("尺码偏小", "wrong_size"), ("收到就碎了", "damaged_on_arrival"), ("有色差，跟图片不一样", "not_as_described"),
     ("用两天就坏了", "quality_issue"), ("买多了不想要了", "no_longer_wanted"), ("其他原因", "other"), ("随便", None)],
)
def test_reasons_in_words(text: str, reason: Optional[str]) -> None:
    assert flow.reason_code(text, POLICY) == reason


@pytest.mark.parametrize(
    ("value", "quantity"),
    [("2件", 2), ("3件", 3), ("３件", 3), ("两双", 2), ("两件", 2), ("俩", 2), ("一个", 1), ("3", 3), ("十", 10),
     ("十二瓶", 12), ("二十一个", 21), ("一百零五盒", 105), ("12瓶", 12), ("些", None), ("", None), (None, None)],
)
def test_quantities(value: Optional[str], quantity: Optional[int]) -> None:
    assert flow.parse_quantity(value) == quantity


@pytest.mark.parametrize(
    ("text", "quantity"),
    [("退十二瓶", 12), ("其中二十一个坏了", 21), ("退两件", 2), ("3件都退", 3), ("用了一个月就坏了", None), ("换一个", None)],
)
def test_quantities_in_words(text: str, quantity: Optional[int]) -> None:
    assert answer(text).quantity == quantity


@pytest.mark.parametrize(("text", "position"), [("第二个", 1), ("第1单", 0), ("最后一个", -1), ("最新的那个", 0), ("这个", None)])
def test_ordinals(text: str, position: Optional[int]) -> None:
    assert flow.parse_ordinal(text) == position


@pytest.mark.parametrize("text", ["不是这个订单，是另一个", "不是这单", "换一个订单", "是别的订单", "另一个"])
def test_another_order(text: str) -> None:
    assert answer(text).other_order


def test_a_button_payload_is_not_read_as_words() -> None:
    parsed = answer('/inform{"product":"全部商品"}', product="全部商品")
    assert parsed.all_items and parsed.text_reason is None and parsed.quantity is None


# ------------------------------------------------------------------------------ questions
def test_several_recent_orders_are_offered_newest_first_as_buttons() -> None:
    turn = flow.advance(state(), answer("我要退货", "return_request"), data(TEA, SHOES, OLD, MOVING), activation=True)
    assert turn.state.order_id is None
    assert [button["payload"] for button in turn.reply.buttons] == [
        '/inform{"order_id":"880000000102"}', '/inform{"order_id":"880000000101"}']
    assert turn.reply.buttons[0]["title"] == "11月21日签收 耐克 Air Zoom 跑鞋 等 2 件 ¥1297.00"


def test_an_ordinal_picks_among_the_offered_orders() -> None:
    turn = flow.advance(state(), answer("第二个"), data(TEA, SHOES))
    assert turn.state.order_id == TEA["order_id"]


@pytest.mark.parametrize("text", ["昨天收到的那个", "昨儿签收的", "11月21号到的那单", "21号收到的"])
def test_a_sign_for_day_picks_the_order(text: str) -> None:
    turn = flow.advance(state(), answer(text), data(TEA, SHOES))
    assert turn.state.order_id == SHOES["order_id"]


def test_a_sign_for_day_no_order_has_picks_none() -> None:
    turn = flow.advance(state(), answer("大前天收到的"), data(TEA, SHOES))
    assert turn.state.order_id is None


def test_a_product_in_another_order_switches_to_it() -> None:
    current = state(order_id=TEA["order_id"])
    turn = flow.advance(current, answer("不对，是那双耐克跑鞋", product="耐克跑鞋"), data(TEA, SHOES))
    assert (turn.state.order_id, turn.state.lines) == (SHOES["order_id"], ((1, 1),))
    assert "已为您改为这个订单" in turn.reply.text


def test_all_items_takes_every_unit_left() -> None:
    turn = flow.advance(state(order_id=TEA["order_id"]), answer('/inform{"product":"全部商品"}', product="全部商品"), data(TEA))
    assert turn.state.lines == ((1, 5), (2, 1))


def test_a_quantity_returns_part_of_a_line_and_the_summary_reflects_it() -> None:
    at_confirm = state(order_id=TEA["order_id"], lines=((1, 5),), reason="no_longer_wanted", package="not_required")
    turn = flow.advance(at_confirm, answer("只退2件", quantity="2件"), data(TEA))
    assert turn.state.lines == ((1, 2),)
    assert "×2" in turn.reply.text and "¥100.00" in turn.reply.text


def test_more_units_than_are_left_is_explained() -> None:
    at_confirm = state(order_id=TEA["order_id"], lines=((1, 5),), reason="no_longer_wanted", package="not_required")
    turn = flow.advance(at_confirm, answer("退6件", quantity="6件"), data(TEA))
    assert turn.state.lines == ((1, 5),)
    assert "最多还可以申请 5 件" in turn.reply.text


def test_units_already_in_a_return_are_not_offered() -> None:
    partly = order("880000000105", [line(1, "西湖龙井 茶叶礼盒", "home", 5000, quantity=5, returned=3)])
    turn = flow.advance(state(), answer("我要退货", "return_request"), data(partly), activation=True)
    assert turn.state.lines == ((1, 2),)


# ------------------------------------------------------------------------ sealed question
def test_shampoo_without_a_quality_problem_asks_whether_it_is_sealed() -> None:
    at_reason = state(order_id=TEA["order_id"], lines=((2, 1),))
    turn = flow.advance(at_reason, answer("不想要了", return_reason="no_longer_wanted"), data(TEA))
    assert (turn.state.reason, turn.state.package) == ("no_longer_wanted", None)
    assert "拆封" in turn.reply.text
    assert [button["payload"] for button in turn.reply.buttons] == ["/affirm", "/deny"]


@pytest.mark.parametrize(("text", "intent", "eligible"), [("还没拆", "inform", True), ("是的", "affirm", True),
                                                          ("已经拆了", "inform", False), ("不是", "deny", False)])
def test_the_sealed_answer_decides(text: str, intent: str, eligible: bool) -> None:
    at_package = state(order_id=TEA["order_id"], lines=((2, 1),), reason="no_longer_wanted")
    turn = flow.advance(at_package, answer(text, intent), data(TEA))
    if eligible:
        assert turn.state.package == flow.PACKAGE_SEALED and "确认提交吗" in turn.reply.text
    else:
        assert turn.state.reason is None and "拆封后不支持七天无理由退货" in turn.reply.text


# ------------------------------------------------------------------------------ refusals
def test_a_mixed_return_keeps_the_allowed_items_and_says_why_the_rest_cannot_go() -> None:
    at_reason = state(order_id=SHOES["order_id"], lines=((1, 1), (2, 1)))
    turn = flow.advance(at_reason, answer("不想要了", return_reason="no_longer_wanted"), data(SHOES))
    assert turn.state.lines == ((1, 1),)
    assert "生鲜商品" in turn.reply.text and "以下只为您申请其他商品的退货" in turn.reply.text
    assert "确认提交吗" in turn.reply.text


def test_a_refusal_offers_a_human_who_decides_a_contested_verdict() -> None:
    only_fresh = state(order_id=SHOES["order_id"], lines=((2, 1),))
    turn = flow.advance(only_fresh, answer("不想要了", return_reason="no_longer_wanted"), data(SHOES))
    assert "生鲜商品" in turn.reply.text
    assert {"title": "转人工", "payload": '/human_agent{"handoff_reason":"policy_undecided"}'} in turn.reply.buttons


def test_an_order_past_the_quality_window_is_refused_when_named() -> None:
    turn = flow.advance(state(), answer("880000000103", order_id=OLD["order_id"]), data(TEA, OLD))
    assert turn.state.order_id is None
    assert "质量问题 15 天包退换" in turn.reply.text and '/inform{"order_id":"880000000101"}' in [b["payload"] for b in turn.reply.buttons]


def test_an_order_on_its_way_is_refused_when_named() -> None:
    turn = flow.advance(state(), answer("880000000104", order_id=MOVING["order_id"]), data(TEA, MOVING))
    assert "当前状态为「运输中」，签收后才能申请退货" in turn.reply.text


def test_an_unknown_order_number_counts_as_not_understood() -> None:
    turn = flow.advance(state(), answer("880000009999", order_id="880000009999"), data(TEA, SHOES))
    assert turn.state.invalid == 1
    assert "没有找到订单 880000009999" in turn.reply.text


# --------------------------------------------------------------------------- the exchange
def test_an_exchange_can_become_a_return() -> None:
    at_reason = state(kind=flow.KIND_EXCHANGE, order_id=SHOES["order_id"], lines=((1, 1),))
    exchange = flow.advance(at_reason, answer("偏大", return_reason="wrong_size"), data(SHOES))
    assert exchange.end and "7天无理由换货" in exchange.reply.text
    to_return = exchange.reply.buttons[-1]["payload"]
    assert to_return.startswith("/return_request")
    restarted = flow.advance(state(), answer(to_return, "return_request", order_id=SHOES["order_id"],
                                             product=["耐克 Air Zoom 跑鞋"], return_reason="wrong_size"),
                             data(SHOES, TEA), activation=True)
    assert (restarted.state.kind, restarted.state.lines, restarted.state.reason) == (flow.KIND_RETURN, ((1, 1),), "wrong_size")
    assert "确认提交吗" in restarted.reply.text


# ------------------------------------------------------------------------------ anonymous
def test_an_anonymous_shopper_continues_with_the_order_they_proved() -> None:
    turn = flow.advance(state(), answer("我要退货", "return_request"), data(SHOES, anonymous=True), activation=True)
    assert turn.state.order_id == SHOES["order_id"]


def test_an_anonymous_shopper_whose_order_is_not_returnable_is_asked_for_another() -> None:
    turn = flow.advance(state(), answer("我要退货", "return_request"), data(MOVING, anonymous=True), activation=True)
    assert turn.state.order_id is None
    assert "签收后才能申请退货" in turn.reply.text and "订单号和收货手机号后四位" in turn.reply.text


# ------------------------------------------------------------------------ refund status
def test_refund_status_picks_the_return_a_product_mention_means() -> None:
    returns = [
        {"return_id": "R0000000002", "order_id": "1", "status": "approved", "status_label": "已同意，待取件",
         "items": [{"product_name": "索尼 WH-1000XM5 降噪耳机", "quantity": 1}], "refund_fen": 100, "refund_method": "wallet",
         "refund_expected_by": "2026-11-27"},
        {"return_id": "R0000000001", "order_id": "2", "status": "received", "status_label": "商家已收货",
         "items": [{"product_name": "耐克 Air Zoom 跑鞋", "quantity": 1}], "refund_fen": 200, "refund_method": "bank_card",
         "refund_expected_by": "2026-11-20"},
    ]
    reply = refund_status.describe_returns(returns, "您的账户", ["跑鞋"], TODAY, POLICY)
    assert "R0000000001" in reply.text and "R0000000002" not in reply.text
    assert "已经超时" in reply.text and reply.buttons == [{"title": "转人工", "payload": "/human_agent"}]
    both = refund_status.describe_returns(returns, "您的账户", [], TODAY, POLICY)
    assert "R0000000001" in both.text and "R0000000002" in both.text and "11月27日" in both.text


def test_a_product_button_still_matches_after_the_nlu_drops_spaces() -> None:
    two_teas = order("880000000106", [line(1, "西湖龙井 茶叶礼盒", "home", 5000), line(2, "西湖龙井 茶叶礼盒 特级", "home", 9000)])
    turn = flow.advance(state(order_id=two_teas["order_id"]), answer('/inform{"product":"西湖龙井茶叶礼盒特级"}', product="西湖龙井茶叶礼盒特级"),
                        data(two_teas))
    assert turn.state.lines == ((2, 1),)


@pytest.mark.parametrize(
    ("text", "intent", "kind"),
    [("换一个订单", "exchange_request", flow.KIND_RETURN), ("还是换货吧", "exchange_request", flow.KIND_EXCHANGE),
     ("能换个尺码吗", "exchange_request", flow.KIND_EXCHANGE), ("换一件", "exchange_request", flow.KIND_RETURN)],
)
def test_a_return_becomes_an_exchange_only_when_asked_for(text: str, intent: str, kind: str) -> None:
    turn = flow.advance(state(order_id=TEA["order_id"]), answer(text, intent), data(TEA, SHOES))
    assert turn.state.kind == kind


# ------------------------------------------------------------------------- texts as data
def test_the_flow_words_its_questions_from_the_responses_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reworded response in data/responses/returns.yml shows in the flow's reply, with its values filled."""
    import bot.texts

    reworded = {**bot.texts._responses(), "utter_return_ask_lines": [{"text": "{heading}：请选择您要{kind}的商品。"}],
                "utter_return_kind_return": [{"text": "退货退款"}]}
    monkeypatch.setattr(bot.texts, "_responses", lambda: reworded)
    turn = flow.resume(state(order_id=TEA["order_id"]), data(TEA))
    assert turn.reply.text == "我们接着刚才的退货退款申请：订单 880000000101（11月20日（周五）签收）：请选择您要退货退款的商品。"
    assert [button["title"] for button in turn.reply.buttons] == ["西湖龙井 茶叶礼盒 ×5", "海飞丝 去屑洗发水 750ml", "全部商品"]


def test_an_anonymous_shopper_who_gives_nothing_twice_is_offered_a_human() -> None:
    ask = flow.Reply(flow.ask_anonymous_order("退货"))
    first = flow.verifying(state(), ask, locked=False, activation=True, gave_something=False)
    assert first.state.invalid == 0 and first.reply.text.startswith("好的，我来帮您办理退货。\n为了保护您的隐私")
    second = flow.verifying(first.state, ask, locked=False, activation=False, gave_something=False)
    assert second.state.invalid == 1 and not second.reply.buttons
    third = flow.verifying(second.state, ask, locked=False, activation=False, gave_something=False)
    assert third.reply.text.endswith("由人工客服为您办理。") and {"title": "转人工", "payload": "/human_agent"} in third.reply.buttons
    locked = flow.verifying(second.state, flow.Reply("locked"), locked=True, activation=False, gave_something=False)
    assert locked.end and locked.reply.text == "locked" and not locked.reply.buttons
