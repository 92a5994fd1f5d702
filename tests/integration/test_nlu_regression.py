"""The trained model on a sample of the held-out file, and the normalisation promise of the NLU."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict

import pytest

from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

SAMPLE = PROJECT_ROOT / "tests" / "nlu" / "regression_sample.yml"
# A regression guard below what the current model reaches on this sample (0.97); the target
# (intent macro-F1 >= 0.95 on the whole held-out file) is measured by `make eval-nlu`.
MIN_SAMPLE_ACCURACY = 0.92


@pytest.fixture(scope="module")
def parse(trained_model: Path, rasa_patched: Dict[str, str]):
    """parse(text) → Rasa's parse result, with the trained model loaded in this process."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(trained_model))
    loop = asyncio.new_event_loop()

    def run(text: str) -> Dict[str, Any]:
        return loop.run_until_complete(agent.parse_message(text))

    yield run
    loop.close()


def test_fullwidth_traditional_order_question(parse) -> None:
    result = parse("１２３４５６７８９０１２ 这个单號到哪裡了")
    assert result["intent"]["name"] == "track_order"
    order_ids = [entity["value"] for entity in result["entities"] if entity["entity"] == "order_id"]
    assert order_ids == ["123456789012"]


def test_spaced_tracking_number_and_phone(parse) -> None:
    result = parse("查下运单 ＳＦ ８８１２ ３４５６ ７７８８，电话138 1234 5678")
    found = {(entity["entity"], entity["value"]) for entity in result["entities"]}
    assert {("tracking_number", "SF881234567788"), ("phone", "13812345678")} <= found


@pytest.mark.parametrize("text", ["查一下我的单子", "查查我那个单子", "我那单子现在到哪了"])
def test_tracking_with_danzi_is_not_cancelling(parse, text: str) -> None:
    assert parse(text)["intent"]["name"] == "track_order"


def test_product_mention_ignores_case(parse) -> None:
    result = parse("我买的T恤太小了想退")
    assert any(entity["entity"] == "product" and entity["value"].lower() == "t恤" for entity in result["entities"])


def test_product_mention_is_found(parse) -> None:
    result = parse("那双耐克跑鞋想退")
    assert result["intent"]["name"] in ("return_request", "inform")
    assert any(entity["entity"] == "product" and "耐克" in entity["value"] for entity in result["entities"])


def test_regression_sample_accuracy(parse) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    examples = load_data(str(SAMPLE)).intent_examples
    assert len(examples) >= 40
    misses = []
    for example in examples:
        expected = example.get("intent")
        predicted = parse(example.get("text"))["intent"]["name"]
        if predicted != expected:
            misses.append(f"{example.get('text')!r}: expected {expected}, got {predicted}")
    accuracy = 1 - len(misses) / len(examples)
    assert accuracy >= MIN_SAMPLE_ACCURACY, "\n".join(misses)
