"""What must hold of the normaliser and the identifier patterns for any text (the fuzz properties)."""

from __future__ import annotations

import re
import time
from typing import List

from bot.nlu.normalize import normalize, remap_span
from bot.nlu.patterns import extract_identifiers

SLOW_S = 1.0
"""A text that takes longer than this to normalise and extract from (twice) counts as a hang (the channels take 2000 characters)."""

_ASCII_DIGITS = re.compile(r"[0-9]+")
_TRACKING_VALUE = re.compile(r"(SF|JD|YT)[0-9]+")
_AMOUNT_VALUE = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")
VALUE_SHAPES = {"order_id": _ASCII_DIGITS, "phone": _ASCII_DIGITS, "phone_last4": _ASCII_DIGITS, "tracking_number": _TRACKING_VALUE,
                "amount": _AMOUNT_VALUE}


def normalizer_problems(text: str) -> List[str]:
    """Broken promises of :func:`bot.nlu.normalize.normalize` for ``text`` (empty: none).

    It returns a str whose every character maps, in order, onto a character of ``text``; the
    text has no surrounding spaces; an annotated span of the original lands inside the new text.
    Exceptions propagate (the caller counts them).
    """
    problems = []
    result = normalize(text)
    if not isinstance(result.text, str):
        return [f"text is {type(result.text).__name__}"]
    if len(result.origin) != len(result.text):
        problems.append(f"origin has {len(result.origin)} entries for {len(result.text)} characters")
    if any(not 0 <= index < len(text) for index in result.origin):
        problems.append("origin points outside the original text")
    if list(result.origin) != sorted(result.origin):
        problems.append("origin not in order")
    if result.text != result.text.strip():
        problems.append("surrounding whitespace left")
    if text and result.text:
        start, end = remap_span(result, 0, len(text))
        if not (0 <= start <= end <= len(result.text)):
            problems.append(f"remapped span {start}-{end} outside {len(result.text)} characters")
        if result.origin:
            back = result.span_to_original(0, len(result.text))
            if not (0 <= back[0] <= back[1] <= len(text)):
                problems.append(f"span back to the original {back} outside {len(text)} characters")
    return problems


def pattern_problems(text: str) -> List[str]:
    """Broken promises of :func:`bot.nlu.patterns.extract_identifiers` for ``text`` (empty: none).

    Entities are in text order, do not overlap, have spans inside the text covering what they
    were read from, and canonical values (ASCII digits, upper-case carrier prefix).
    """
    problems = []
    entities = extract_identifiers(text)
    previous_end = 0
    for entity in entities:
        if not (0 <= entity.start < entity.end <= len(text)):
            problems.append(f"{entity.entity} span {entity.start}-{entity.end} outside {len(text)} characters")
            continue
        if entity.start < previous_end:
            problems.append(f"{entity.entity} at {entity.start} overlaps the entity before it")
        previous_end = max(previous_end, entity.end)
        shape = VALUE_SHAPES.get(entity.entity)
        if shape is None:
            problems.append(f"unknown entity {entity.entity}")
        elif not isinstance(entity.value, str) or shape.fullmatch(entity.value) is None:
            problems.append(f"{entity.entity} value {entity.value!r} is not canonical")
        covered = text[entity.start:entity.end]
        digits = "".join(re.findall(r"\d", covered))
        if entity.entity in ("order_id", "phone", "phone_last4") and digits != entity.value:
            problems.append(f"{entity.entity} value {entity.value!r} is not the digits of {covered!r}")
    return problems


def nlu_problems(text: str) -> List[str]:
    """Both components as the NLU pipeline runs them: the patterns read the normalised text; too slow counts."""
    started = time.perf_counter()
    problems = normalizer_problems(text)
    normalized = normalize(text).text
    problems += pattern_problems(normalized)
    problems += [f"raw text: {problem}" for problem in pattern_problems(text)]
    elapsed = time.perf_counter() - started
    if elapsed > SLOW_S:
        problems.append(f"took {elapsed:.2f} s for {len(text)} characters")
    return problems


def component_problems(text: str) -> List[str]:
    """The Rasa components on a message with an entity annotated over the whole text (as in training data)."""
    from rasa.shared.nlu.constants import ENTITIES, TEXT
    from rasa.shared.nlu.training_data.message import Message

    from bot.nlu.components import ChineseTextNormalizer, ShopPatternExtractor

    if not text:
        return []
    problems = []
    message = Message(data={TEXT: text, ENTITIES: [{"entity": "product", "start": 0, "end": len(text), "value": text}]})
    ChineseTextNormalizer._normalize_message(message)
    ShopPatternExtractor().process([message])
    new_text = message.get(TEXT)
    if not isinstance(new_text, str):
        return [f"message text is {type(new_text).__name__}"]
    for entity in message.get(ENTITIES) or []:
        if not (0 <= entity["start"] < entity["end"] <= len(new_text)):
            problems.append(f"entity {entity['entity']} span {entity['start']}-{entity['end']} outside {len(new_text)} characters")
    return problems
