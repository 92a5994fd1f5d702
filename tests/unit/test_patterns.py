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


def test_spans_point_at_the_identifier():
    text = normalize("查下 202611150023 谢谢").text
    (entity,) = extract_identifiers(text)
    assert text[entity.start:entity.end] == "202611150023"
