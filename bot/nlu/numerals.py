"""Chinese numerals as shoppers write them in quantities and dates: 两, 三, 十二, 二十五, 一百零五.

Pure functions, no state: :func:`parse_number` reads ASCII digits or a Chinese numeral up to the
thousands; :data:`NUMERAL` is the regular-expression class of the characters a numeral is made of.
"""

from __future__ import annotations

from typing import Optional

DIGITS = {"零": 0, "〇": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4,
          "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
UNITS = {"十": 10, "百": 100, "千": 1000}
NUMERAL = "[零〇一幺二两俩三四五六七八九十百千]"
"""One character of a Chinese numeral (a regular-expression class)."""
NUMBER = rf"(?:[0-9]+|{NUMERAL}+)"
"""ASCII digits or a Chinese numeral (a regular expression)."""


def parse_number(text: str) -> Optional[int]:
    """The value of ``text``: ASCII digits or a Chinese numeral; None when it is neither.

    Args:
        text: e.g. ``"12"``, ``"两"``, ``"十二"``, ``"二十五"``, ``"一百零五"``, ``"两千"``.

    Returns:
        The number; None for an empty string, other characters, or a malformed numeral such as
        ``"十十"``.
    """
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    if any(char not in DIGITS and char not in UNITS for char in text):
        return None
    if all(char in DIGITS for char in text):
        # digit by digit: 二〇二六 is 2026
        return int("".join(str(DIGITS[char]) for char in text)) if len(text) > 1 else DIGITS[text]
    total = 0
    pending: Optional[int] = None
    last_unit = 10_000
    for char in text:
        if char in DIGITS:
            if pending is not None and pending != 0:
                return None
            pending = DIGITS[char]
        else:
            unit = UNITS[char]
            if unit >= last_unit:
                return None
            total += (pending or 1) * unit
            pending = None
            last_unit = unit
    return total + (pending or 0)
