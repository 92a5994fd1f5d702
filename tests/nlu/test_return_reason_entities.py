"""Return reasons from the training data's phrases, and how the deterministic extractors add entities."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.dates import DateExtractor
from bot.nlu.entity_spans import Mention
from bot.nlu.quantities import QuantityExtractor
from bot.nlu.return_reasons import compile_vocabulary, find_reasons, reason_vocabulary


def _example(text: str, intent: str, entities: List[Dict[str, Any]]) -> Message:
    return Message(data={"text": text, "intent": intent, "entities": entities})


@pytest.fixture
def training_data() -> TrainingData:
    annotated = _example("尺码不对,我要退", "return_request",
                         [{"entity": "return_reason", "start": 0, "end": 4, "value": "wrong_size"}])
    traditional = _example("質量問題,要退", "return_request",
                           [{"entity": "return_reason", "start": 0, "end": 4, "value": "quality_issue"}])
    other = _example("三盒到了没", "track_order", [{"entity": "quantity", "start": 0, "end": 2, "value": "三盒"}])
    synonyms = {"有异味": "quality_issue", "码数不对": "wrong_size", "三盒": "3盒", "收到就坏了": "damaged_on_arrival"}
    return TrainingData(training_examples=[annotated, traditional, other], entity_synonyms=synonyms)


def test_vocabulary_holds_annotated_phrases_and_synonyms_of_their_codes(training_data: TrainingData) -> None:
    assert reason_vocabulary(training_data) == {
        "尺码不对": "wrong_size", "质量问题": "quality_issue", "有异味": "quality_issue", "码数不对": "wrong_size",
    }


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("床垫有异味,要退", [Mention(2, 5, "有异味", "quality_issue")]),
        ("有质量问题", [Mention(1, 5, "质量问题", "quality_issue")]),
        ("码数不对,尺码不对", [Mention(0, 4, "码数不对", "wrong_size"), Mention(5, 9, "尺码不对", "wrong_size")]),
        ("我要退货", []),
    ],
)
def test_find_reasons(training_data: TrainingData, text: str, reasons: List[Mention]) -> None:
    vocabulary = reason_vocabulary(training_data)
    assert find_reasons(text, vocabulary) == reasons
    assert find_reasons(text, vocabulary, compile_vocabulary(vocabulary)) == reasons


def test_the_longest_phrase_wins() -> None:
    vocabulary = {"太小": "wrong_size", "太小了一码": "wrong_size", "坏了": "quality_issue"}
    assert [m.text for m in find_reasons("鞋太小了一码,鞋带坏了", vocabulary)] == ["太小了一码", "坏了"]


def test_no_vocabulary_finds_nothing() -> None:
    assert find_reasons("尺码不对", {}) == []


def _parsed(text: str, intent: str, entities: List[Dict[str, Any]]) -> Message:
    return Message(data={"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities})


def test_extractors_add_entities_in_rasa_format() -> None:
    message = _parsed("上周五买的三盒蛋白粉", "track_order", [])
    QuantityExtractor.create({**QuantityExtractor.get_default_config()}, None, None, None).process([message])  # type: ignore[arg-type]
    DateExtractor.create({**DateExtractor.get_default_config()}, None, None, None).process([message])  # type: ignore[arg-type]
    assert message.get("entities") == [
        {"entity": "quantity", "value": "三盒", "start": 5, "end": 7, "confidence_entity": 1.0, "extractor": "QuantityExtractor"},
        {"entity": "date", "value": "上周五", "start": 0, "end": 3, "confidence_entity": 1.0, "extractor": "DateExtractor"},
    ]


def test_extractors_leave_spans_another_extractor_found() -> None:
    order = {"entity": "order_id", "value": "202611150023", "start": 0, "end": 12, "extractor": "ShopPatternExtractor"}
    message = _parsed("202611150023", "track_order", [order])
    DateExtractor.create(DateExtractor.get_default_config(), None, None, None).process([message])  # type: ignore[arg-type]
    assert message.get("entities") == [order]


@pytest.mark.parametrize("intent", ["out_of_scope", "chitchat"])
def test_extractors_ignore_out_of_scope_and_chitchat(intent: str) -> None:
    message = _parsed("明天会降温吗", intent, [])
    DateExtractor.create(DateExtractor.get_default_config(), None, None, None).process([message])  # type: ignore[arg-type]
    assert message.get("entities") == []


def test_ignored_intents_are_configurable() -> None:
    message = _parsed("明天会降温吗", "out_of_scope", [])
    DateExtractor.create({"ignored_intents": []}, None, None, None).process([message])  # type: ignore[arg-type]
    assert [entity["value"] for entity in message.get("entities")] == ["明天"]
