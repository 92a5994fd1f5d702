"""Deterministic extraction of the identifiers shoppers paste: order numbers, tracking numbers,
mobile phones, phone tails and amounts.

Runs on normalised text (half-width digits). Digits split by single spaces or dashes
("2026 1115 0023", "138-1234-5678") are joined when the whole group forms an identifier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional

ORDER_ID = re.compile(r"^\d{12}$")
MOBILE_PHONE = re.compile(r"^1[3-9]\d{9}$")
TRACKING_PATTERNS = {
    "SF": re.compile(r"(?<![A-Za-z0-9])(SF)[ -]?(\d{12})(?!\d)", re.IGNORECASE),
    "JD": re.compile(r"(?<![A-Za-z0-9])(JD)[ -]?(\d{13})(?!\d)", re.IGNORECASE),
    "YT": re.compile(r"(?<![A-Za-z0-9])(YT)[ -]?(\d{13})(?!\d)", re.IGNORECASE),
}
_DIGIT_RUN = re.compile(r"(?<![A-Za-z0-9.])\d+(?:[ -]\d+)*(?![0-9.])")
_PHONE_TAIL_CONTEXT = re.compile(r"(尾号|后四位|后4位|末四位|末4位|后四个数|后4个数|手机号后|电话后)[是为:：\s]*$")
_AMOUNT = re.compile(
    r"(?:[¥￥]|RMB\s?)(\d+(?:\.\d{1,2})?)|(\d+(?:\.\d{1,2})?)\s?(?:元|块钱|块)", re.IGNORECASE
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


def _tracking(text: str) -> List[PatternEntity]:
    found = []
    for carrier, pattern in TRACKING_PATTERNS.items():
        for match in pattern.finditer(text):
            found.append(PatternEntity("tracking_number", carrier + match.group(2), match.start(), match.end()))
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
        joined = re.sub(r"[ -]", "", run.group(0))
        kind = _classify_digits(joined, text, run.start())
        candidates = []
        if kind and (kind != "phone_last4" or joined == run.group(0)):
            candidates.append(PatternEntity(kind, joined, run.start(), run.end()))
        else:
            for part in re.finditer(r"\d+", run.group(0)):
                start = run.start() + part.start()
                part_kind = _classify_digits(part.group(0), text, start)
                if part_kind:
                    candidates.append(PatternEntity(part_kind, part.group(0), start, start + len(part.group(0))))
        entities.extend(c for c in candidates if not _overlaps(c, entities))
    for match in _AMOUNT.finditer(text):
        value = match.group(1) or match.group(2)
        candidate = PatternEntity("amount", value, match.start(), match.end())
        if not _overlaps(candidate, entities):
            entities.append(candidate)
    return sorted(entities, key=lambda entity: entity.start)
