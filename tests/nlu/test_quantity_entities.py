"""Quantities in shoppers' words and the Chinese numerals they are written with (no model, no training)."""

from __future__ import annotations

from typing import List, Optional

import pytest

from bot.nlu.numerals import parse_number
from bot.nlu.quantities import find_quantities, quantity_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2", 2), ("12", 12), ("一", 1), ("两", 2), ("俩", 2), ("三", 3), ("十", 10), ("十二", 12),
        ("二十", 20), ("二十五", 25), ("一百", 100), ("一百零五", 105), ("两百", 200), ("三千", 3000),
        ("二〇二六", 2026), ("", None), ("十十", None), ("几", None), ("2个", None),
    ],
)
def test_parse_number(text: str, value: Optional[int]) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    ("text", "quantities"),
    [
        # the normaliser has already written 两件 / 一个 / 三双 as 2件 / 1个 / 3双
        ("保温饭盒多买了2个,取消掉", ["2个"]),
        ("我要退1件", ["1件"]),
        ("一共4个", ["4个"]),
        ("三盒蛋白粉发出来没", ["三盒"]),
        ("睡衣起球严重,要退两套", ["两套"]),
        ("换1双运动鞋", ["1双"]),
        ("买了十二瓶水", ["十二瓶"]),
        ("一箱牛奶", ["一箱"]),
        ("退2件卫衣和3条裤子", ["2件", "3条"]),
        ("买了10斤车厘子", ["10斤"]),
        # not quantities of goods
        ("第2个订单", []),
        ("不是这个订单,是上1个", []),
        ("能不能送到另1个地方", []),
        ("1个快递走了一星期", []),
        ("买了2个月了", []),
        ("等了3个小时", []),
        ("我需要1个真人帮我处理", []),
        ("耳机有杂音,换1个", []),
        ("积分能不能抵一部分货款", []),
        ("满99包邮吗", []),
        ("物流一条更新都没有", []),
        ("刚下单第二天就降了20块", []),
        ("大了一码", []),
        ("订单202611150023", []),
        ("我要退货", []),
    ],
)
def test_find_quantities(text: str, quantities: List[str]) -> None:
    found = find_quantities(text)
    assert [mention.text for mention in found] == quantities
    for mention in found:
        assert text[mention.start:mention.end] == mention.text


@pytest.mark.parametrize(("text", "value"), [("2件", 2), ("两双", 2), ("十二瓶", 12), ("三盒", 3), ("件", None)])
def test_quantity_value(text: str, value: Optional[int]) -> None:
    assert quantity_value(text) == value
