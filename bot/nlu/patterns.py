"""Deterministic extraction of the identifiers shoppers paste: order numbers, tracking numbers,
mobile phones, phone tails and amounts.

Runs on normalised text (half-width digits: full-width and spoken digits are already converted);
digits of other scripts (Arabic-Indic, Devanagari, ...) are not read as identifiers.
Digits split by single spaces or dashes ("2026 1115 0023", "138-1234-5678", "SF 8812 3456 7788")
are joined when consecutive groups form an identifier; a run holding two identifiers
("138 1234 5678 2026 1115 0023") gives both. Values are canonical: digits only, carrier prefix in
upper case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

ORDER_ID = re.compile(r"^[0-9]{12}$")
MOBILE_PHONE = re.compile(r"^1[3-9][0-9]{9}$")
MAX_DIGITS = 12
"""Most digits of an identifier read from digit groups (an order number; phones have 11)."""
# Carrier prefix and how many digits its tracking numbers have (the CRM's formats).
TRACKING_DIGITS = {"SF": 12, "JD": 13, "YT": 13}
# A carrier prefix followed by digits, possibly in groups split by single spaces or dashes
# ("SF 8812 3456 7788", "jd-0001-2345-6789-0").
_TRACKING_RUN = re.compile(r"(?<![A-Za-z0-9])(SF|JD|YT)[ -]?([0-9]+(?:[ -][0-9]+)*)(?![0-9])", re.IGNORECASE)
_DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9.])[0-9]+(?:[ -][0-9]+)*(?![0-9.])")
_PHONE_TAIL_CONTEXT = re.compile(r"(尾号|后四位|后4位|末四位|末4位|后四个数|后4个数|手机号后|电话后)[是为:：\s]*$")
# An amount's digits start where a run of digits starts (trying every later digit of a long run
# that has no unit after it took quadratic time).
_AMOUNT = re.compile(
    r"(?:[¥￥]|RMB\s?)([0-9]+(?:\.[0-9]{1,2})?)|(?<![0-9])([0-9]+(?:\.[0-9]{1,2})?)\s?(?:元|块钱|块)", re.IGNORECASE
)


@dataclass(frozen=True)
class PatternEntity:
    """One extracted identifier: entity type, canonical value and its span in the text."""

    entity: str
    value: str
    start: int
    end: int

    def as_rasa(self, extractor: str) -> Dict[str, object]:
        """The entity as Rasa's message data expects it."""
        return {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
            "confidence_entity": 1.0,
            "extractor": extractor,
        }


def _classify_digits(digits: str, text: str, start: int) -> Optional[str]:
    if ORDER_ID.match(digits):
        return "order_id"
    if MOBILE_PHONE.match(digits):
        return "phone"
    if len(digits) == 4:
        before = text[max(0, start - 8):start]
        if _PHONE_TAIL_CONTEXT.search(before) or text.strip() == digits:
            return "phone_last4"
    return None


def _digit_groups(run: str, offset: int) -> List[Tuple[str, int, int]]:
    """The digit groups of a run like "2026 1115 0023" as (digits, start, end) in the text."""
    return [(part.group(0), offset + part.start(), offset + part.end()) for part in re.finditer(r"[0-9]+", run)]


def _tracking(text: str) -> List[PatternEntity]:
    found = []
    for match in _TRACKING_RUN.finditer(text):
        carrier = match.group(1).upper()
        wanted = TRACKING_DIGITS[carrier]
        digits = ""
        for group, _start, end in _digit_groups(match.group(2), match.start(2)):
            digits += group
            if len(digits) >= wanted:
                # Groups after the number (a phone pasted next to it) are not part of it.
                if len(digits) == wanted:
                    found.append(PatternEntity("tracking_number", carrier + digits, match.start(), end))
                break
    return found


def _overlaps(span: PatternEntity, taken: List[PatternEntity]) -> bool:
    return any(span.start < other.end and other.start < span.end for other in taken)


def extract_identifiers(text: str) -> List[PatternEntity]:
    """All identifiers in a normalised message, in text order.

    Args:
        text: normalised text (see :func:`bot.nlu.normalize.normalize`).

    Returns:
        Entities of type order_id, tracking_number, phone, phone_last4 and amount.
    """
    entities = _tracking(text)
    for run in _DIGIT_RUN.finditer(text):
        groups = _digit_groups(run.group(0), run.start())
        index = 0
        while index < len(groups):
            # The longest stretch of groups starting here that forms an identifier; a phone
            # tail is only ever one group of four digits written together. No identifier has more
            # than MAX_DIGITS digits: longer stretches are not tried (a run of a thousand one-digit
            # groups would otherwise take a second).
            limit, digits = index, 0
            while limit < len(groups) and digits + len(groups[limit][0]) <= MAX_DIGITS:
                digits += len(groups[limit][0])
                limit += 1
            for stop in range(limit, index, -1):
                joined = "".join(group for group, _, _ in groups[index:stop])
                kind = _classify_digits(joined, text, groups[index][1])
                if kind and (kind != "phone_last4" or stop == index + 1):
                    candidate = PatternEntity(kind, joined, groups[index][1], groups[stop - 1][2])
                    if not _overlaps(candidate, entities):
                        entities.append(candidate)
                    index = stop
                    break
            else:
                index += 1
    for match in _AMOUNT.finditer(text):
        value = match.group(1) or match.group(2)
        candidate = PatternEntity("amount", value, match.start(), match.end())
        if not _overlaps(candidate, entities):
            entities.append(candidate)
    return sorted(entities, key=lambda entity: entity.start)
