"""The masking rules of :mod:`bot.pii`: what is masked, what agents keep (order and tracking numbers)."""

from __future__ import annotations

import time

import pytest

from bot.pii import mask_card, mask_email, mask_id_number, mask_name, mask_phone, mask_text, mask_value

MASKED = [
    # mobile phones: together, spaced, dashed, with +86, full-width
    ("手机13812345678", "手机138****5678"),
    ("电话 138 1234 5678 谢谢", "电话 138****5678 谢谢"),
    ("138-1234-5678", "138****5678"),
    ("+86 138 1234 5678", "+86 138****5678"),
    ("+8613812345678", "+86 138****5678"),
    ("0086-13812345678", "0086 138****5678"),
    ("１３８１２３４５６７８", "138****5678"),
    ("打我电话19912345678或者17712345678", "打我电话199****5678或者177****5678"),
    ("座机 021-12345678", "座机 021****5678"),
    ("座机 (0571) 8888-1234", "座机 057*****1234"),
    # phone tails, as the NLU reads them
    ("尾号5678", "尾号****"),
    ("手机后四位是 5678", "手机后四位是 ****"),
    ("5678", "****"),
    # ID numbers: first 3 and last 4
    ("身份证110101199003071234", "身份证110***********1234"),
    ("身份证 11010119900307123X", "身份证 110***********123X"),
    # bank cards: last 4, separators kept
    ("卡号6222021234567890123", "卡号***************0123"),
    ("卡号 6222 0212 3456 7890", "卡号 **** **** **** 7890"),
    ("退到 6222-0212-3456-7890 这张卡", "退到 ****-****-****-7890 这张卡"),
    # emails
    ("邮箱 zhangsan@example.com", "邮箱 z***@example.com"),
    ("发票发到 li.na+shop@mail.example.com.cn 吧", "发票发到 l***@mail.example.com.cn 吧"),
    # addresses: province, city and district stay
    ("北京市朝阳区建国路88号3单元502", "北京市朝阳区****"),
    ("我家在建国路88号3单元502，快递一直没到", "我家在****，快递一直没到"),
    ("上海市浦东新区世纪大道100号", "上海市浦东新区****"),
    ("上海市浦东新区成山路100弄5号", "上海市浦东新区****"),
    ("江苏省苏州市吴中区木渎镇金山路12号", "江苏省苏州市吴中区****"),
    ("四川省成都市双流县东升街道", "四川省成都市双流县****"),
    ("浙江省杭州市西湖区文三路", "浙江省杭州市西湖区****"),
    ("广东省东莞市虎门镇", "广东省东莞市****"),
    ("上海市南京东路100号", "上海市****"),
    ("我住在阳光小区5栋2单元301", "我住在****"),
    ("5栋2单元301室", "****"),
    ("阳光村3组12号", "****"),
    ("地址：北京市海淀区中关村大街1号，电话13911111111", "地址：北京市海淀区****，电话139****1111"),
    ("北京市朝阳区建国路88号 13812345678", "北京市朝阳区**** 138****5678"),
    # labelled names
    ("收货人：王芳，手机 13911111111", "收货人：王*，手机 139****1111"),
    ("当前：收货人 李娜，手机 139****4321，地址 北京市海淀区", "当前：收货人 李*，手机 139****4321，地址 北京市海淀区"),
    ("姓名：欧阳娜娜", "姓名：欧***"),
]


@pytest.mark.parametrize("text, masked", MASKED)
def test_personal_data_is_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize("text, masked", MASKED)
def test_masking_masked_text_changes_nothing(text: str, masked: str) -> None:
    assert mask_text(masked) == masked


KEPT = [
    # order numbers (12 digits: the CRM's 88… and date-like ids), together, spaced, dashed
    "订单880000010001号",
    "我的订单 880000010001 到哪了",
    "订单号是 2026 1115 0023",
    "202611150023",
    "8800-0001-0001 这个单子",
    "两个订单 880000010001 和 880000020003",
    "880000010001 5678",
    "881385012345",
    # tracking numbers: SF + 12, JD + 13, YT + 13 digits
    "SF880000010001",
    "运单 sf 8812 3456 7788",
    "JD0001234567890",
    "jd-0001-2345-6789-0",
    "YT1381234567890",
    "YT 1234 5678 9012 3",
    # what the summary shows the agent
    "  · 880000010001 运输中，承诺 11月20日 送达，已超时；耐克 Air Zoom 跑鞋；实付 ¥569.00，顺丰速运 SF880000010001",
    "（23:44）您的订单 880000010001 运输中（顺丰速运 SF880000010001），承诺 2 天前送达，非常抱歉已经晚了。",
    "2026-11-23T14:35+08:00",
    # words that look like address parts but are not addresses; names are never guessed
    "11月3号发货的",
    "我在路上",
    "一路顺风",
    "市区路况不好",
    "我们村的快递点",
    "小米路由器 AX3000",
    "北京市朝阳区",
    "我叫张三丰",
    "退款 1380 元什么时候到",
    "我的快递到哪了",
    "",
]


@pytest.mark.parametrize("text", KEPT)
def test_order_and_tracking_numbers_and_plain_words_are_kept(text: str) -> None:
    assert mask_text(text) == text


@pytest.mark.parametrize(
    "text, masked",
    [
        ("订单880000010001，手机13812345678", "订单880000010001，手机138****5678"),
        ("单号 SF880000010001 电话 138 1234 5678", "单号 SF880000010001 电话 138****5678"),
        ("订单 2026 1115 0023 寄到北京市朝阳区建国路88号", "订单 2026 1115 0023 寄到北京市朝阳区****"),
        ("13812345678 880000010001", "138****5678 880000010001"),
        ("订单880000010001 卡号6222021234567890", "订单880000010001 卡号************7890"),
    ],
)
def test_identifiers_next_to_personal_data(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_known_names_are_masked_where_they_occur() -> None:
    assert mask_text("张伟您好，张伟的订单已发货", names=["张伟", None, "", "李"]) == "张*您好，张*的订单已发货"
    assert mask_text("李先生您好", names=["李"]) == "李先生您好"


@pytest.mark.parametrize(
    "phone, masked",
    [("0086 138 1234 5678", "0086 138****5678"), ("(021) 1234-5678", "021****5678"), ("138****5678", "138****5678"),
     ("+86 138****5678", "+86 138****5678"), ("*****67", "*****67")],
)
def test_mask_phone_keeps_masked_numbers_as_they_are(phone: object, masked: str) -> None:
    """The rules themselves are pinned by tests/connectors/test_identity_signing.py (bot.identity re-exports this function)."""
    assert mask_phone(phone) == masked
    assert mask_phone(masked) == masked


@pytest.mark.parametrize(
    "name, masked", [("张伟", "张*"), ("张三丰", "张**"), ("欧阳娜娜", "欧***"), ("李", "*"), (" 王芳 ", "王*"), ("", ""), (None, "")]
)
def test_mask_name(name: object, masked: str) -> None:
    assert mask_name(name) == masked


def test_the_single_rules() -> None:
    assert mask_id_number("110101199003071234") == "110***********1234"
    assert mask_card("6222 0212 3456 7890 123") == "**** **** **** ***0 123"
    assert mask_email("Zhang@Example.com") == "Z***@Example.com"
    assert mask_email("not an email") == "not an email"


def test_mask_value_masks_every_string_of_a_summary() -> None:
    summary = {
        "who": {"name": "张*", "phone": "138****5678", "customer_id": "C000001", "verified": True},
        "orders": [{"order_id": "880000010001", "tracking_number": "SF880000010001", "paid": "¥569.00"}],
        "last_turns": [{"from": "shopper", "text": "改到北京市朝阳区建国路88号，电话13912345678", "at": 1.5}],
    }
    masked = mask_value(summary)
    assert masked["who"] == summary["who"] and masked["orders"] == summary["orders"]
    assert masked["last_turns"] == [{"from": "shopper", "text": "改到北京市朝阳区****，电话139****5678", "at": 1.5}]
    assert summary["last_turns"][0]["text"].endswith("13912345678")  # the input is not changed


@pytest.mark.parametrize("text", ["路" * 5000, "1" * 5000, "建国路88" * 1000, "8号" * 3000, "尾号1234 " * 600, "a@" * 3000])
def test_long_texts_are_masked_quickly(text: str) -> None:
    started = time.perf_counter()
    assert len(mask_text(text)) > 0
    assert time.perf_counter() - started < 1.0


def test_the_handoff_summary_quotes_the_conversation_masked() -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    from actions.handoff_summary import ShopperFacts, build_summary, render_summary

    def said(speaker: str, text: str, at: float) -> dict:
        event = {"event": speaker, "text": text, "timestamp": at}
        if speaker == "user":
            event["parse_data"] = {"intent": {"name": "change_address"}, "entities": []}
        return event

    events = [
        said("user", "订单880000010001 改到北京市朝阳区建国路88号3单元502，电话13912345678", 1795300000.0),
        said("bot", "张伟您好，收货人：王芳，手机号：139****5678，地址：北京市朝阳区建国路88号3单元502，确认修改吗？", 1795300001.0),
        said("user", "我的身份证是110101199003071234，快递单 SF880000010001" + "，麻烦快点" * 40 + "13812345678", 1795300002.0),
    ]
    order = {"order_id": "880000010001", "status": "in_transit", "paid_fen": 56900, "items": [], "receiver_name": "王芳",
             "shipment": {"carrier_name": "顺丰速运", "tracking_number": "SF880000010001"}}
    facts = ShopperFacts("C000001", "signed", {"name": "张伟", "phone": "13812345678", "tier": "L4", "tier_name": "金牌会员"}, [order])
    summary = build_summary(events, facts, "requested", "顾客要求人工", date(2026, 11, 22))
    turns = [turn["text"] for turn in summary["last_turns"]]
    assert turns[0] == "订单880000010001 改到北京市朝阳区****，电话139****5678"
    assert turns[1] == "张*您好，收货人：王*，手机号：139****5678，地址：北京市朝阳区****，确认修改吗？"
    assert turns[2].startswith("我的身份证是110***********1234，快递单 SF880000010001") and turns[2].endswith("…")
    assert summary["bot_told"][0]["text"] == turns[1]
    text = render_summary(summary, ZoneInfo("Asia/Shanghai"))
    for clear in ("13912345678", "13812345678", "建国路", "张伟", "王芳", "110101199003071234", "1381234"):
        assert clear not in text and clear not in str(summary)
    assert "880000010001" in text and "SF880000010001" in text
