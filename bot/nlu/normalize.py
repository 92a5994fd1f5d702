"""Normalise how shoppers really type before jieba sees the text.

Full-width forms become half-width, traditional characters simplified (OpenCC), Chinese numerals
become digits where they carry numbers (spoken order numbers, amounts, quantities), runs of
punctuation collapse, emoji disappear (angry ones become the word 生气 so complaints stay
visible), and spaces between Chinese characters go. Every normalised character keeps the index of
the original character it came from, so annotated entity spans can be moved onto the new text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, List, Tuple

import cn2an
import opencc

ANGRY_EMOJI = frozenset("😡🤬😠💢👿😤🖕")
ANGRY_WORD = "生气"
CHINESE_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3",
                  "四": "4", "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
# Chinese numerals followed by a unit where the number matters to the flows.
_NUMERAL_WITH_UNIT = re.compile(r"([零〇一二两三四五六七八九十百千万]+)(?=(?:块钱|块|元|件|个|积分|双|单))")
# Ratings: 「五分」 → 5分, but not 「十分感谢」 (very) or 「一分钟」.
_RATING = re.compile(r"(?<![零〇一二两三四五六七八九十百千万])([一二三四五])(?=分(?![钟之]))")
# Four or more spoken digits in a row: order numbers and phone tails read out digit by digit.
_SPOKEN_DIGITS = re.compile(r"[零〇一幺二三四五六七八九]{4,}")
_REPEATED_PUNCTUATION = re.compile(r"([!?,.~…])\1+")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
_SPACE_BETWEEN_CJK = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
_SPACES = re.compile(r"\s+")
_ELLIPSIS = re.compile(r"(?:。{2,}|\.{3,}|…+)")


@dataclass(frozen=True)
class Normalized:
    """Normalised text and, per character, the index of the original character it came from."""

    text: str
    origin: Tuple[int, ...]

    def span_to_original(self, start: int, end: int) -> Tuple[int, int]:
        """Map a [start, end) span of the normalised text back onto the original text."""
        if start >= end or not self.origin:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return (
        0x1F000 <= code <= 0x1FAFF
        or 0x2600 <= code <= 0x27BF
        or code in (0xFE0F, 0x200D, 0x20E3)
        or unicodedata.category(char) == "So"
    )


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def _rewrite(text: str, origin: List[int], pattern: re.Pattern[str], replace: Callable[[re.Match[str]], str]) -> Tuple[str, List[int]]:
    """Apply ``pattern`` and keep the origin map: replaced text maps onto its match's first origin."""
    pieces: List[str] = []
    new_origin: List[int] = []
    last = 0
    for match in pattern.finditer(text):
        pieces.append(text[last:match.start()])
        new_origin.extend(origin[last:match.start()])
        replacement = replace(match)
        if replacement == match.group(0):
            new_origin.extend(origin[match.start():match.end()])
        elif len(replacement) == match.end() - match.start():
            new_origin.extend(origin[match.start():match.end()])
        else:
            first = origin[match.start()] if match.start() < len(origin) else (origin[-1] if origin else 0)
            last_origin = origin[match.end() - 1] if match.end() > match.start() else first
            new_origin.extend([first] * max(len(replacement) - 1, 0) + ([last_origin] if replacement else []))
        pieces.append(replacement)
        last = match.end()
    pieces.append(text[last:])
    new_origin.extend(origin[last:])
    return "".join(pieces), new_origin


def _simplify(text: str) -> str:
    converted = _t2s().convert(text)
    if len(converted) == len(text):
        return converted
    return "".join(_t2s().convert(char) or char for char in text)


def _numeral_to_digits(match: re.Match[str]) -> str:
    try:
        return str(cn2an.cn2an(match.group(1), "smart"))
    except (ValueError, KeyError):
        return match.group(0)


def normalize(text: str) -> Normalized:
    """Normalise one message; see the module docstring for what changes.

    Args:
        text: the shopper's message as typed.

    Returns:
        The normalised text with its map back onto ``text``.
    """
    chars: List[str] = []
    origin: List[int] = []
    for index, char in enumerate(text):
        if char in ANGRY_EMOJI:
            replacement = ANGRY_WORD
        elif _is_emoji(char) or "\ud800" <= char <= "\udfff":
            # a lone surrogate is no character (OpenCC cannot even encode it): it goes like the
            # U+FFFD symbol the channels put in its place
            replacement = ""
        else:
            replacement = unicodedata.normalize("NFKC", char)
            if replacement == "\u3000":
                replacement = " "
        chars.append(replacement)
        origin.extend([index] * len(replacement))
    current = "".join(chars)
    simplified = _simplify(current)
    if len(simplified) == len(current):
        current = simplified
    current, origin = _rewrite(current, origin, _SPOKEN_DIGITS, lambda m: "".join(CHINESE_DIGITS[c] for c in m.group(0)))
    current, origin = _rewrite(current, origin, _NUMERAL_WITH_UNIT, _numeral_to_digits)
    current, origin = _rewrite(current, origin, _RATING, lambda m: CHINESE_DIGITS[m.group(1)])
    current, origin = _rewrite(current, origin, _ELLIPSIS, lambda m: "…")
    current, origin = _rewrite(current, origin, _REPEATED_PUNCTUATION, lambda m: m.group(1))
    current, origin = _rewrite(current, origin, _SPACE_BETWEEN_CJK, lambda m: "")
    current, origin = _rewrite(current, origin, _SPACES, lambda m: " ")
    stripped = current.strip()
    offset = len(current) - len(current.lstrip())
    origin = origin[offset:offset + len(stripped)]
    return Normalized(stripped, tuple(origin))


def remap_span(normalized: Normalized, start: int, end: int) -> Tuple[int, int]:
    """Move an original [start, end) span onto the normalised text (the smallest covering span)."""
    new_start = None
    new_end = None
    for position, source in enumerate(normalized.origin):
        if start <= source < end:
            if new_start is None:
                new_start = position
            new_end = position + 1
    if new_start is None or new_end is None:
        return 0, 0
    return new_start, new_end
