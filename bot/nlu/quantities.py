"""Quantities of goods: a number and a measure word, 2件, 两双, 三盒, 一箱, 12瓶, 10斤.

:func:`find_quantities` marks them in a normalised message (the normaliser already wrote 两件 as
2件; other numerals stay as typed: 三盒). The entity's value is the quantity as written, which the
actions read (``parse_quantity`` in the return flow); :func:`quantity_value` is its number.
Ordinals (第二个), time spans (一个月, 两个小时), sizes (大一码), amounts of money (20块) and 「换一个」
(exchange it, not a count) are not quantities.
"""

from __future__ import annotations

import re
from typing import List, Optional

from rasa.engine.recipes.default_recipe import DefaultV1Recipe

from bot.nlu.entity_spans import Mention, MentionExtractor
from bot.nlu.numerals import NUMBER, parse_number

ENTITY = "quantity"
MEASURE_WORDS = ("件", "个", "双", "箱", "盒", "瓶", "条", "台", "只", "套", "份", "支", "提", "张", "袋", "罐",
                 "斤", "包", "本", "对", "副", "部", "把", "桶", "听", "卷", "片", "顶")
# Words after a measure word that make it something else than a count of goods: a time span
# (一个月), a person or place (1个客服, 另1个地方), a part (一部分), free shipping (99包邮), a
# tracking update (一条更新).
_NOT_GOODS_AFTER = {
    "个": r"月|多月|星期|礼拜|小时|钟头|工作日|人|真人|客服|问题|事|意思|地址|地方|收件|号|账号|电话|订单|单子|包裹|快递|型号|公众号",
    "部": r"分",
    "包": r"邮|裹",
    "条": r"更新|信息|消息|记录|短信|评论|评价|物流",
}
_MEASURE = "|".join(
    rf"{re.escape(word)}(?!{_NOT_GOODS_AFTER[word]})" if word in _NOT_GOODS_AFTER else re.escape(word)
    for word in sorted(MEASURE_WORDS, key=len, reverse=True)
)
# Not after an ordinal or a pointer (第二个, 上1个, 另1个, 同1个, 这两件) and not inside a longer number.
_QUANTITY = re.compile(
    rf"(?<![0-9.第前后这那哪每几上下另同])(?P<number>{NUMBER})(?P<measure>{_MEASURE})(?![0-9])"
)
# 「换一个」「再来一个」: a replacement, not a count.
_REPLACEMENT = re.compile(r"(?:换|再来|重新发|补发)(?:1|一)个$")


def quantity_value(text: str) -> Optional[int]:
    """The number of a quantity as written: 2 for 「2件」, 「两双」; None when it has no number.

    Args:
        text: a quantity as :func:`find_quantities` marks it.
    """
    match = re.match(rf"({NUMBER})", text)
    return parse_number(match.group(1)) if match else None


def find_quantities(text: str) -> List[Mention]:
    """The quantities of goods in a normalised message, in order.

    Args:
        text: the message after :func:`bot.nlu.normalize.normalize`.

    Returns:
        (start, end, text) of each, e.g. 「三盒」 in 「三盒蛋白粉发出来没」; only exact counts from 1 to
        9999 (not 「几件」).
    """
    found = []
    for match in _QUANTITY.finditer(text):
        if match.group("measure") == "个" and _is_replacement(text, match):
            continue
        value = parse_number(match.group("number"))
        if value is None or not 1 <= value <= 9999:
            continue
        found.append(Mention(match.start(), match.end(), match.group(0)))
    return found


def _is_replacement(text: str, match: re.Match[str]) -> bool:
    return _REPLACEMENT.search(text[:match.end()]) is not None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class QuantityExtractor(MentionExtractor):
    """Adds ``quantity`` entities: a number and a measure word, valued as written."""

    entity = ENTITY

    def find(self, text: str) -> List[Mention]:
        """The quantities of a normalised text (see :func:`find_quantities`)."""
        return find_quantities(text)
