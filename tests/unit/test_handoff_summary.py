"""The handoff summary and the decisions around it, from tracker events (pure functions)."""

from __future__ import annotations

from datetime import date
from typing import Any, Dict, List
from zoneinfo import ZoneInfo

import pytest

from actions.handoff_summary import (
    ShopperFacts,
    build_summary,
    consecutive_fallbacks,
    determine_reason,
    intents,
    is_angry,
    mentioned_order_ids,
    parse_rating,
    render_summary,
    wanted,
)
from bot.pii import mask_name

TZ = ZoneInfo("Asia/Shanghai")
T0 = 1795300000.0  # 2026-11-22 in the shop's timezone


def user(text: str, intent: str, at: float, entities: List[Dict[str, Any]] = ()) -> Dict[str, Any]:
    return {"event": "user", "text": text, "timestamp": at, "parse_data": {"intent": {"name": intent}, "entities": list(entities)}}


def bot(text: str, at: float) -> Dict[str, Any]:
    return {"event": "bot", "text": text, "timestamp": at}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name}


LATE_ORDER = {
    "order_id": "880000010001", "customer_id": "C000001", "status": "in_transit", "status_label": "运输中",
    "promised_date": "2026-11-20", "is_late": True, "paid_fen": 56900,
    "items": [{"product_name": "耐克 Air Zoom 跑鞋", "quantity": 1}],
    "shipment": {"carrier": "SF", "carrier_name": "顺丰速运", "tracking_number": "SF880000010001", "events": []},
}

EVENTS = [
    action("action_listen"),
    user("我的快递到哪了", "track_order", T0),
    action("action_track_order"),
    bot("您的订单 880000010001 运输中，承诺 11月20日 送达，非常抱歉已经晚了 2 天。", T0 + 1),
    user("怎么还没到！！", "urge_delivery", T0 + 60),
    action("action_track_order"),
    bot("订单 880000010001 最新物流：11月22日 09:12【上海转运中心】快件延误。", T0 + 61),
    user("转人工", "human_agent", T0 + 120),
]


def test_summary_of_a_signed_customer_with_a_late_order():
    facts = ShopperFacts("C000001", "signed", {"name": "张伟", "phone": "13812345678", "tier": "L4", "tier_name": "金牌会员"}, [LATE_ORDER])
    summary = build_summary(EVENTS, facts, "requested", "顾客要求人工", date(2026, 11, 22))
    who = summary["who"]
    assert who == {"name": "张*", "phone": "138****5678", "customer_id": "C000001", "verified": True,
                   "verification": "已验证（商城登录）", "tier": "L4", "tier_name": "金牌会员"}
    assert summary["wanted"] == ["查询物流", "催促配送", "要求人工客服"]
    (order,) = summary["orders"]
    assert order["late"] and order["status_label"] == "运输中" and order["paid"] == "¥569.00" and order["tracking_number"] == "SF880000010001"
    assert summary["bot_told"][0]["text"].startswith("您的订单 880000010001")
    assert summary["mood"] == "情绪激动"
    assert [t["from"] for t in summary["last_turns"]] == ["shopper", "bot", "shopper", "bot", "shopper"]

    text = render_summary(summary, TZ)
    assert text.splitlines()[0] == "【转人工摘要】"
    assert "顾客：张*（138****5678），L4 金牌会员，已验证（商城登录），客户号 C000001" in text
    assert "转人工原因：顾客要求人工（顾客情绪激动，请先安抚）" in text
    assert "顾客诉求：查询物流 → 催促配送 → 要求人工客服" in text
    assert "880000010001 运输中，承诺 11月20日 送达，已超时；耐克 Air Zoom 跑鞋；实付 ¥569.00，顺丰速运 SF880000010001" in text
    assert "机器人已告知：" in text and "最近对话：" in text and "顾客" in text
    assert "13812345678" not in text and "张伟" not in text


def test_summary_of_an_anonymous_shopper_says_unverified():
    summary = build_summary([user("人工", "human_agent", T0)], ShopperFacts(None, "none"), "requested", "顾客要求人工", date(2026, 11, 22))
    assert summary["who"]["verified"] is False and summary["who"]["phone"] == ""
    text = render_summary(summary, TZ)
    assert "顾客：匿名顾客，未验证身份" in text and "涉及订单" not in text


def test_summary_when_the_crm_did_not_answer():
    facts = ShopperFacts("C000001", "signed", crm_unavailable=True)
    text = render_summary(build_summary(EVENTS, facts, "requested", "顾客要求人工", date(2026, 11, 22)), TZ)
    assert "订单系统暂时无法查询" in text


def test_order_verified_shopper_gets_the_orders_masked_phone():
    order = {**LATE_ORDER, "receiver_phone": "15011112222", "receiver_name": "王芳"}
    summary = build_summary(EVENTS, ShopperFacts(None, "order", None, [order]), "requested", "x", date(2026, 11, 22))
    assert summary["who"]["phone"] == "150****2222" and summary["who"]["name"] == "王*"
    assert summary["who"]["verification"] == "已验证（订单号+手机尾号）"


def test_order_ids_come_from_entities_slots_and_the_bots_words():
    events = [user("查 202611150023", "track_order", T0, [{"entity": "order_id", "value": "202611150023"}]),
              bot("订单 880000010001 已签收", T0 + 1)]
    assert mentioned_order_ids(events, {"verified_order_id": "880000020002", "order_id": None}) == ["880000010001", "202611150023", "880000020002"]


@pytest.mark.parametrize(
    "events, expected",
    [
        ([user("a", "nlu_fallback", T0)], 1),
        ([user("a", "nlu_fallback", T0), bot("?", T0), user("b", "nlu_fallback", T0)], 2),
        ([user("a", "nlu_fallback", T0), user("ok", "track_order", T0), user("b", "nlu_fallback", T0)], 1),
        ([user("a", "nlu_fallback", T0), user("b", "nlu_fallback", T0), action("action_handoff"), user("c", "nlu_fallback", T0)], 1),
        ([user("hi", "greet", T0)], 0),
    ],
)
def test_consecutive_fallbacks(events, expected):
    assert consecutive_fallbacks(events) == expected


@pytest.mark.parametrize(
    "intent, text, slot, failed, fallbacks, expected",
    [
        ("human_agent", "转人工", None, 0, 0, "requested"),
        ("complaint", "我要投诉快递员", None, 0, 0, "complaint"),
        ("complaint", "你们就是骗子！！", None, 0, 0, "angry"),
        ("human_agent", "气死我了，转人工", None, 0, 0, "angry"),
        ("nlu_fallback", "asdf", None, 0, 2, "fallback"),
        ("human_agent", "转人工", None, 2, 0, "flow_failed"),
        ("human_agent", "转人工", "policy_undecided", 0, 0, "policy_undecided"),
        ("human_agent", "转人工", "made_up", 0, 0, "requested"),
    ],
)
def test_reasons(intent, text, slot, failed, fallbacks, expected):
    assert determine_reason(intent, text, slot, failed, fallbacks) == expected


def test_wanted_and_intents_skip_small_talk_and_repeats():
    events = [user("你好", "greet", T0), user("快递", "track_order", T0), user("快递呢", "track_order", T0), user("运费", "faq/shipping_fee", T0)]
    assert wanted(events) == ["查询物流", "运费咨询"]
    assert intents(events) == ["greet", "track_order", "faq"]


def test_wanted_names_the_topic_the_bot_could_not_settle():
    """An FAQ the bot answered is named by its topic (the response selector's key), a product question
    as such, so the agent reads what the shopper asked about before the handoff."""
    invoice = user("你好，发票怎么开", "faq", T0)
    invoice["parse_data"]["response_selector"] = {"default": {"response": {"intent_response_key": "faq/invoice"}}}
    unknown = user("这个问题", "faq", T0)
    events = [invoice, user("这件是纯棉的吗", "product_question", T0), unknown, user("转人工", "human_agent", T0)]
    assert wanted(events) == ["发票咨询", "商品咨询（材质、尺码、库存、用法）", "常见问题咨询", "要求人工客服"]


@pytest.mark.parametrize(
    "values, expected",
    [
        (["5"], 5), ([None, "5分"], 5), ([None, "差评 1分"], 1), ([None, "还行，打个四分"], 4), ([None, "一般般吧 3星"], 3),
        ([None, "★★★★★"], 5), ([None, "⭐⭐⭐⭐"], 4), ([None, "很不满意"], 1), ([None, "不太满意，2分"], 2), ([None, "给个好评"], 5),
        ([None, "满分好评"], 5), ([None, "评分：4"], 4), ([None, "我选5"], 5), ([None, "还可以吧，四星"], 4), ([None, "一般"], 3),
        ([None, "比较满意"], 4), ([None, "两分"], 2), ([None, "订单 202611150023"], None), ([None, "你好"], None), ([None, "10分"], None),
    ],
)
def test_ratings(values, expected):
    assert parse_rating(values) == expected


@pytest.mark.parametrize("name, masked", [("张伟", "张*"), ("欧阳娜娜", "欧***"), ("", ""), (None, ""), ("李", "*")])
def test_names_are_masked(name, masked):
    assert mask_name(name) == masked


def test_anger_markers():
    assert is_angry("😡😡😡 服务太烂") and is_angry("我要打12315") and not is_angry("我的快递到哪了")
