"""spaCy catalogue matcher: product mentions in shoppers' words, and their order lines."""

import pytest

from bot.nlu.catalogue import match_items, parse_mention
from bot.nlu.product_mentions import find_mentions

ITEMS = [
    {"line_id": 1, "product_name": "耐克 Air Zoom 跑鞋", "brand": "耐克", "category": "shoes"},
    {"line_id": 2, "product_name": "华为 FreeBuds Pro 3 无线耳机", "brand": "华为", "category": "electronics"},
    {"line_id": 3, "product_name": "阳澄湖大闸蟹 礼盒装 8只", "brand": "阳澄湖", "category": "fresh_food"},
    {"line_id": 4, "product_name": "优衣库 摇粒绒外套", "brand": "优衣库", "category": "apparel"},
    {"line_id": 5, "product_name": "优衣库 纯棉圆领T恤", "brand": "优衣库", "category": "apparel"},
]


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("那双耐克跑鞋想退", ["耐克跑鞋"]),
        ("阿迪的鞋子也是", ["阿迪的鞋子"]),
        ("螃蟹坏了", ["螃蟹"]),
        ("耳机和华为手机都有问题", ["耳机", "华为手机"]),
        ("nike跑鞋开胶了", ["nike跑鞋"]),
        ("索尼降噪耳机没声音", ["索尼降噪耳机"]),
        ("我买的T恤太小了", ["T恤"]),
        ("那件t恤洗了就缩水", ["t恤"]),
        ("优衣库T恤想换", ["优衣库T恤"]),
        ("NIKE跑鞋开胶了", ["NIKE跑鞋"]),
        ("u盘坏了", ["u盘"]),
        ("E卡退不了", ["E卡"]),
        ("nba球衣", []),
        ("我要退货", []),
        ("我的快递到哪了", []),
    ],
)
def test_find_mentions(text, mentions):
    found = find_mentions(text)
    assert [surface for _, _, surface in found] == mentions
    for start, end, surface in found:
        assert text[start:end] == surface


@pytest.mark.parametrize(
    ("mention", "lines"),
    [
        ("耐克跑鞋", [1]),
        ("那双鞋", [1]),
        ("Nike的鞋", [1]),
        ("耳机", [2]),
        ("华为", [2]),
        ("HUAWEI耳机", [2]),
        ("螃蟹", [3]),
        ("外套", [4]),
        ("衣服", [4, 5]),
        ("T恤", [5]),
        ("t恤", [5]),
        ("优衣库的T恤", [5]),
        ("阿迪跑鞋", []),
        ("手机", []),
        ("FreeBuds", [2]),
        ("随便什么", []),
    ],
)
def test_match_items(mention, lines):
    assert [item["line_id"] for item in match_items(ITEMS, mention)] == lines


def test_parse_mention_prefers_longest_alias():
    mention = parse_mention("索尼降噪耳机")
    assert (mention.brand, mention.product_type) == ("索尼", "耳机")
