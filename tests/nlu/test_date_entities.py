"""Dates in shoppers' words: which spans are dates, and which days they mean (no model, no training)."""

from __future__ import annotations

from datetime import date
from typing import List, Optional, Tuple

import pytest

from bot.nlu.dates import DateRange, find_dates, resolve_date

# Thursday 3 December 2026.
TODAY = date(2026, 12, 3)


@pytest.mark.parametrize(
    ("text", "dates"),
    [
        ("我昨天拍的蓝牙耳机出库了没", ["昨天"]),
        ("上周五下单的床垫现在在哪里", ["上周五"]),
        ("我双十一那天买的东西到哪了", ["双十一那天"]),
        ("11月3号退的羽毛球拍,钱还没回来", ["11月3号"]),
        ("十一月三号买的", ["十一月三号"]),
        ("2026年11月3日下的单", ["2026年11月3日"]),
        ("三天前", ["三天前"]),
        ("两周前买的", ["两周前"]),
        ("半个月前申请的退款", ["半个月前"]),
        ("前两天买的", ["前两天"]),
        ("这个月初下的单", ["这个月初"]),
        ("上个月赚的积分到账没", ["上个月"]),
        ("月初买的冰箱还没送", ["月初"]),
        ("昨天晚上下的单", ["昨天晚上"]),
        ("大前天就该到了", ["大前天"]),
        ("上礼拜买的婴儿车还没发", ["上礼拜"]),
        ("这周二下的单", ["这周二"]),
        ("上上周收到的吹风机", ["上上周"]),
        ("星期天下的单", ["星期天"]),
        ("上周末买的", ["上周末"]),
        ("周日要送的那单改到公司", ["周日"]),
        ("15号下的单", ["15号"]),
        ("去年双十一买的", ["去年双十一"]),
        ("618买的", ["618"]),
        ("今天之内给我发出去", ["今天"]),
        ("周日下的单周一发吗", ["周日", "周一"]),
        # not dates
        ("售后天数怎么算", []),
        ("订单202611150023到哪了", []),
        ("3号线地铁站旁边", []),
        ("地址改成中山路8号", []),
        ("雪地靴偏小,换大一号", []),
        ("7日内可以退吗", []),
        ("618元的那个", []),
        ("32号", []),
        ("好的明儿见", []),
        ("一周内能到吗", []),
        ("三个月", []),
        ("买了2盒月饼", []),
        ("我要退货", []),
    ],
)
def test_find_dates(text: str, dates: List[str]) -> None:
    found = find_dates(text)
    assert [mention.text for mention in found] == dates
    for mention in found:
        assert text[mention.start:mention.end] == mention.text


def _day(month: int, day: int, year: int = 2026) -> Tuple[date, date]:
    return date(year, month, day), date(year, month, day)


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("今天", _day(12, 3)),
        ("昨天", _day(12, 2)),
        ("昨天晚上", _day(12, 2)),
        ("昨晚", _day(12, 2)),
        ("前天", _day(12, 1)),
        ("大前天", _day(11, 30)),
        ("明天", _day(12, 4)),
        ("大后天", _day(12, 6)),
        ("三天前", _day(11, 30)),
        ("3天后", _day(12, 6)),
        ("两周前", _day(11, 19)),
        ("一个月前", _day(11, 3)),
        ("半个月前", _day(11, 18)),
        ("前两天", (date(2026, 12, 1), date(2026, 12, 2))),
        # weeks run Monday to Sunday; 3 December 2026 is a Thursday
        ("上周五", _day(11, 27)),
        ("上上周三", _day(11, 18)),
        ("这周二", _day(12, 1)),
        ("本周六", _day(12, 5)),
        ("下周一", _day(12, 7)),
        ("上周", (date(2026, 11, 23), date(2026, 11, 29))),
        ("上个星期", (date(2026, 11, 23), date(2026, 11, 29))),
        ("上周末", (date(2026, 11, 28), date(2026, 11, 29))),
        ("周二", _day(12, 1)),
        ("周五", _day(11, 27)),
        ("星期天", _day(11, 29)),
        ("礼拜四", _day(12, 3)),
        ("上个月", (date(2026, 11, 1), date(2026, 11, 30))),
        ("这个月初", (date(2026, 12, 1), date(2026, 12, 10))),
        ("上个月底", (date(2026, 11, 21), date(2026, 11, 30))),
        ("月初", (date(2026, 12, 1), date(2026, 12, 10))),
        ("下个月", (date(2027, 1, 1), date(2027, 1, 31))),
        ("11月3号", _day(11, 3)),
        ("十一月三号", _day(11, 3)),
        ("12月3日", _day(12, 3)),
        ("12月25号", _day(12, 25, 2025)),
        ("2026年12月25日", _day(12, 25)),
        ("去年11月11号", _day(11, 11, 2025)),
        ("11月", (date(2026, 11, 1), date(2026, 11, 30))),
        ("3号", _day(12, 3)),
        ("15号", _day(11, 15)),
        ("31号", _day(10, 31)),
        ("双十一那天", _day(11, 11)),
        ("双十二", _day(12, 12, 2025)),
        ("去年双十一", _day(11, 11, 2025)),
        ("国庆", (date(2026, 10, 1), date(2026, 10, 7))),
    ],
)
def test_resolve_date_prefers_the_past(expression: str, days: Tuple[date, date]) -> None:
    assert resolve_date(expression, TODAY) == DateRange(*days)


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("周二", _day(12, 8)),
        ("周四", _day(12, 3)),
        ("15号", _day(12, 15)),
        ("1号", _day(1, 1, 2027)),
        ("11月3号", _day(11, 3, 2027)),
        ("双十二", _day(12, 12)),
        ("这周二", _day(12, 1)),
    ],
)
def test_resolve_date_looking_ahead(expression: str, days: Tuple[date, date]) -> None:
    assert resolve_date(expression, TODAY, prefer_past=False) == DateRange(*days)


@pytest.mark.parametrize(
    ("expression", "reference", "days"),
    [
        ("上个月", date(2026, 1, 15), (date(2025, 12, 1), date(2025, 12, 31))),
        ("一个月前", date(2026, 3, 31), _day(2, 28)),
        ("上周日", date(2026, 3, 1), _day(2, 22)),
        ("周日", date(2026, 3, 1), _day(3, 1)),
        ("30号", date(2026, 3, 1), _day(1, 30)),
        ("2月29号", date(2028, 3, 1), _day(2, 29, 2028)),
    ],
)
def test_resolve_date_across_months_and_years(expression: str, reference: date, days: Tuple[date, date]) -> None:
    assert resolve_date(expression, reference) == DateRange(*days)


@pytest.mark.parametrize("expression", ["2月30号", "几天前", "随便哪天", "", "13月1号"])
def test_resolve_date_names_no_day(expression: str) -> None:
    result: Optional[DateRange] = resolve_date(expression, TODAY)
    assert result is None


def test_every_found_date_resolves() -> None:
    text = "上周五下的单,昨天晚上说派送,11月3号付的款,双十一那天也买了,三天前催过,这个月初到现在"
    for mention in find_dates(text):
        assert resolve_date(mention.text, TODAY) is not None, mention.text


def test_a_single_day_is_a_day() -> None:
    assert resolve_date("昨天", TODAY).is_day  # type: ignore[union-attr]
    assert not resolve_date("上周", TODAY).is_day  # type: ignore[union-attr]
