"""Identifiers extracted by pattern: table of what shoppers paste and what must come out."""

import pytest

from bot.nlu.normalize import normalize
from bot.nlu.patterns import extract_identifiers


def found(text: str):
    return [(entity.entity, entity.value) for entity in extract_identifiers(normalize(text).text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("１２３４５６７８９０１２ 这个单號到哪裡了", [("order_id", "123456789012")]),
        ("订单202611150023 手机13812345678", [("order_id", "202611150023"), ("phone", "13812345678")]),
        ("单号 2026 1115 0023", [("order_id", "202611150023")]),
        ("单号2026-1115-0023到哪了", [("order_id", "202611150023")]),
        ("顺丰sf123456789012到哪了", [("tracking_number", "SF123456789012")]),
        ("JD1234567890123 这个包裹", [("tracking_number", "JD1234567890123")]),
        ("圆通 YT 1234567890123", [("tracking_number", "YT1234567890123")]),
        ("尾号5678", [("phone_last4", "5678")]),
        ("手机后四位是 5678", [("phone_last4", "5678")]),
        ("5678", [("phone_last4", "5678")]),
        ("202611150023 尾号5678", [("order_id", "202611150023"), ("phone_last4", "5678")]),
        ("电话 138-1234-5678", [("phone", "13812345678")]),
        ("查下运单 SF 8812 3456 7788", [("tracking_number", "SF881234567788")]),
        ("ＳＦ８８１２　３４５６　７７８８到哪了", [("tracking_number", "SF881234567788")]),
        ("jd-0001-2345-6789-0 这个", [("tracking_number", "JD0001234567890")]),
        ("yt１２３４５６７８９０１２３的物流", [("tracking_number", "YT1234567890123")]),
        ("SF123456789012 13812345678", [("tracking_number", "SF123456789012"), ("phone", "13812345678")]),
        ("电话138 1234 5678 订单2026 1115 0023", [("phone", "13812345678"), ("order_id", "202611150023")]),
        ("手机号：１３９　１２３４　５６７８", [("phone", "13912345678")]),
        ("手机号是一三八一二三四五六七八", [("phone", "13812345678")]),
        ("订单号二零二六一一一五零零二三", [("order_id", "202611150023")]),
        ("SF 1234 5678 901", []),
        ("2026-11-15 下的单", []),
        ("退了120块钱", [("amount", "120")]),
        ("¥99.5 啥时候退", [("amount", "99.5")]),
        ("退款一百块", [("amount", "100")]),
        ("买了2025年的日历", []),
        ("12345678901", []),
        ("1234567890123", []),
        ("SF12345", []),
        ("我的快递到哪了", []),
    ],
)
def test_extract_identifiers(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "surface"),
    [
        ("查下 202611150023 谢谢", "202611150023"),
        ("单号 2026 1115 0023 到哪了", "2026 1115 0023"),
        ("运单 SF 8812 3456 7788 呢", "SF 8812 3456 7788"),
        ("电话 138-1234-5678", "138-1234-5678"),
    ],
)
def test_spans_cover_spaced_identifiers(text, surface):
    normalized = normalize(text).text
    (entity,) = extract_identifiers(normalized)
    assert normalized[entity.start:entity.end] == surface


def test_spans_point_at_the_identifier():
    text = normalize("查下 202611150023 谢谢").text
    (entity,) = extract_identifiers(text)
    assert text[entity.start:entity.end] == "202611150023"
