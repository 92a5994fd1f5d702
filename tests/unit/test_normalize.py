"""Text normalisation: what shoppers type and what jieba then sees."""

import pytest

from bot.nlu.normalize import normalize, remap_span


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("１２３４５６７８９０１２ 这个单號到哪裡了", "123456789012 这个单号到哪里了"),
        ("訂單退貨", "订单退货"),
        ("转人工！！！", "转人工!"),
        ("退款啥时候到账啊？？？", "退款啥时候到账啊?"),
        ("亲 我的快递咋还没到", "亲我的快递咋还没到"),
        ("我的快递😀到哪了", "我的快递到哪了"),
        ("太慢了😡", "太慢了生气"),
        ("订单号 二零二六一一一五零零二三", "订单号 202611150023"),
        ("退了一百二十块钱", "退了120块钱"),
        ("七天无理由退货", "七天无理由退货"),
        ("十分感谢", "十分感谢"),
        ("给五分", "给5分"),
        ("等了一分钟", "等了一分钟"),
        ("买了两件", "买了2件"),
        ("看一下物流", "看一下物流"),
        ("我要退货 Nike 跑鞋", "我要退货 Nike 跑鞋"),
        ("等了好久。。。", "等了好久…"),
        ("  前后空格  ", "前后空格"),
        ("", ""),
    ],
)
def test_normalize(typed: str, normalized: str) -> None:
    assert normalize(typed).text == normalized


@pytest.mark.parametrize("typed", ["１２３ 訂單😡 退款一百块！！", "亲 我的快递", "abc ＡＢＣ", "😀😀"])
def test_every_character_maps_back_to_the_original(typed: str) -> None:
    result = normalize(typed)
    assert len(result.origin) == len(result.text)
    assert all(0 <= index < len(typed) for index in result.origin)
    assert list(result.origin) == sorted(result.origin)


def test_entity_span_moves_with_the_text() -> None:
    typed = "亲 我那双 耐克跑鞋想退！！"
    result = normalize(typed)
    start = typed.index("耐克跑鞋")
    new_start, new_end = remap_span(result, start, start + 4)
    assert result.text[new_start:new_end] == "耐克跑鞋"
    assert result.span_to_original(new_start, new_end) == (start, start + 4)


def test_span_of_removed_characters_is_empty() -> None:
    result = normalize("好😀")
    assert remap_span(result, 1, 2) == (0, 0)


def test_training_entity_value_follows_rewritten_text():
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.components import ChineseTextNormalizer

    message = Message(data={
        "text": "买了两件 质量问题",
        "entities": [
            {"entity": "quantity", "value": "两件", "start": 2, "end": 4},
            {"entity": "return_reason", "value": "quality_issue", "start": 5, "end": 9},
        ],
    })
    ChineseTextNormalizer._normalize_message(message)
    assert message.get("text") == "买了2件质量问题"
    quantity, reason = message.get("entities")
    assert (quantity["value"], quantity["start"], quantity["end"]) == ("2件", 2, 4)
    assert (reason["value"], message.get("text")[reason["start"]:reason["end"]]) == ("quality_issue", "质量问题")
