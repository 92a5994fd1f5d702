"""What a shopper's message means to the return flow: a reason, a quantity, a position, an order,
whether the item is still sealed. Plain functions over the NLU's intent, text and entities.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Tuple

from actions.return_policy import ReturnPolicy
from actions.return_state import PACKAGE_OPENED, PACKAGE_SEALED
from bot.nlu.dates import find_dates
from bot.nlu.normalize import normalize
from bot.nlu.numerals import NUMERAL, parse_number
from bot.nlu.quantities import find_quantities, quantity_value

_REASON_KEYWORDS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("damaged_on_arrival", ("收到就", "收到时", "收到已", "到的时候", "碎了", "破损", "摔坏", "压坏", "漏液", "烂了",
                            "死了", "不新鲜", "损坏", "坏的")),
    ("not_as_described", ("描述", "不符", "图片", "色差", "不一样", "货不对板", "假货", "不是正品", "发错", "材质不对")),
    ("wrong_size", ("尺码", "尺寸", "码数", "偏大", "偏小", "太大", "太小", "不合身", "穿不上", "太紧", "大了", "小了",
                    "不合适")),
    ("quality_issue", ("质量", "瑕疵", "开胶", "故障", "坏了", "失灵", "不能用", "用不了", "杂音", "掉色", "开线", "起球",
                       "异味", "充不进", "开不了机", "过期")),
    ("no_longer_wanted", ("不想要", "不要了", "不喜欢", "不需要", "买多", "拍错", "用不上", "改主意", "没用了", "不合心意",
                          "七天无理由", "无理由")),
    ("other", ("其他原因", "其它原因", "别的原因")),
)
_OTHER_ORDER = re.compile(r"(不是|换|另|别的|其他|其它)[^，。,.!！?？]{0,6}(订单|单子|一单|那单|这单|个单)|另一个|另外一个|别的订单|其他订单")
_ALL_ITEMS = re.compile(r"全部|都退|全退|都要退|都换|全换|所有|一起退|都不要")
_SEALED = re.compile(r"(没|未|还没|没有|不曾)(有)?(拆|开封|打开|开过|用过|使用|穿过)|全新|包装完好|吊牌还在|原封")
_OPENED = re.compile(r"拆(了|过|封|开)|开封|打开(了|过)|用过|试用|用了|穿过|洗过|试过")
_ORDINAL = re.compile(rf"第\s*([0-9]+|{NUMERAL}+)\s*(个|单|件|项|笔|条)?")


def reason_code(value: Optional[str], policy: ReturnPolicy) -> Optional[str]:
    """A reason code from an entity value or free text (None when nothing fits)."""
    if not value:
        return None
    text = value.strip()
    if text in policy.reason_labels:
        return text
    for code, label in policy.reason_labels.items():
        if text == label or text in label.split("（")[0]:
            return code
    for code, words in _REASON_KEYWORDS:
        if code in policy.reason_labels and any(word in text for word in words):
            return code
    return None


def parse_quantity(value: Optional[str]) -> Optional[int]:
    """12 from 「十二瓶」, 2 from 「2件」, 「两双」; None when there is no number.

    The NLU's own reading of a quantity (:func:`bot.nlu.quantities.quantity_value`), after the
    NLU's normalisation (full-width digits are ASCII digits).
    """
    if not value:
        return None
    return quantity_value(normalize(value).text)


def parse_ordinal(text: str) -> Optional[int]:
    """0-based position named in 「第二个」, 「最新的那个」 (0), 「最后一个」 (-1)."""
    match = _ORDINAL.search(text)
    if match:
        raw = match.group(1)
        number = parse_number(raw) or 0
        return number - 1 if number > 0 else None
    if "最后" in text:
        return -1
    if re.search(r"最新|最近的?那", text):
        return 0
    return None


@dataclass(frozen=True)
class Answer:
    """What the shopper's latest message says, as far as the flow is concerned.

    Attributes:
        intent: the intent name.
        text: the message text.
        order_id: an order number in it.
        products: product mentions in it.
        reason: a reason code an entity names.
        text_reason: a reason code the words of the message suggest (used where a reason is expected).
        quantity: a quantity it names.
        all_items: 「全部都退」.
        ordinal: a position (「第二个」), 0-based.
        other_order: 「不是这个订单，是另一个」.
        package: ``sealed`` / ``opened`` when it says whether the item was opened.
        sign_day: the date expression naming the sign-for day (「昨天收到的」: 「昨天」), as written;
            :func:`bot.nlu.dates.resolve_date` reads it against the shop's today.
    """

    intent: str = ""
    text: str = ""
    order_id: Optional[str] = None
    products: Tuple[str, ...] = ()
    reason: Optional[str] = None
    text_reason: Optional[str] = None
    quantity: Optional[int] = None
    all_items: bool = False
    ordinal: Optional[int] = None
    other_order: bool = False
    package: Optional[str] = None
    sign_day: Optional[str] = None


def read_answer(intent: str, text: str, entities: Mapping[str, Sequence[str]], policy: ReturnPolicy) -> Answer:
    """Interpret one message.

    Args:
        intent: the intent name.
        text: the message text (a button payload's text is its title or payload).
        entities: entity name → values found in the message.
        policy: the return policy (reason codes).
    """
    is_payload = text.startswith("/")
    plain = "" if is_payload else text
    products = tuple(str(value) for value in entities.get("product", []) if value)
    reason = None
    for value in entities.get("return_reason", []):
        reason = reason_code(str(value), policy)
        if reason:
            break
    quantity = next((parse_quantity(str(value)) for value in entities.get("quantity", []) if parse_quantity(str(value))), None)
    if quantity is None and plain:
        found = find_quantities(normalize(plain).text)
        quantity = quantity_value(found[0].text) if found else None
    package = None
    if plain and _SEALED.search(plain):
        package = PACKAGE_SEALED
    elif plain and _OPENED.search(plain):
        package = PACKAGE_OPENED
    dates = [str(value) for value in entities.get("date", []) if value]
    if not dates and plain:
        dates = [mention.text for mention in find_dates(normalize(plain).text)]
    order_ids = [str(value) for value in entities.get("order_id", []) if value]
    return Answer(
        intent=intent,
        text=text,
        order_id=order_ids[0] if order_ids else None,
        products=products,
        reason=reason,
        text_reason=reason_code(plain, policy) if plain else None,
        quantity=quantity,
        all_items=bool(_ALL_ITEMS.search(plain)) or any("全部" in product for product in products),
        ordinal=parse_ordinal(plain) if plain else None,
        other_order=bool(plain and _OTHER_ORDER.search(plain)),
        package=package,
        sign_day=dates[0] if dates else None,
    )

