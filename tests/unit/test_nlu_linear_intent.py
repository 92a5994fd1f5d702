"""The linear intent classifier: trains on sentence features, survives a save and load, ranks intents."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import pytest
import scipy.sparse

pytest.importorskip("rasa")

from rasa.engine.graph import ExecutionContext, GraphSchema  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.engine.storage.resource import Resource  # noqa: E402
from rasa.shared.nlu.constants import INTENT, TEXT  # noqa: E402
from rasa.shared.nlu.training_data.features import Features  # noqa: E402
from rasa.shared.nlu.training_data.message import Message  # noqa: E402
from rasa.shared.nlu.training_data.training_data import TrainingData  # noqa: E402

from bot.nlu.linear_intent import LinearIntentClassifier, softmax  # noqa: E402

VOCABULARY = ["快递", "到", "哪", "退货", "积分", "多少"]


def featurised(text: str, intent: str | None = None) -> Message:
    """A message with count features over a tiny vocabulary, as the count vectorizers would make."""
    counts = np.array([[float(text.count(word)) for word in VOCABULARY]])
    message = Message(data={TEXT: text, **({INTENT: intent} if intent else {})})
    message.add_features(Features(scipy.sparse.coo_matrix(counts), "sentence", TEXT, "test"))
    return message


def training_data() -> TrainingData:
    examples: List[Message] = []
    for text in ("快递到哪了", "我的快递到哪", "快递呢", "查快递"):
        examples.append(featurised(text, "track_order"))
    for text in ("我要退货", "退货怎么弄", "申请退货", "想退货"):
        examples.append(featurised(text, "return_request"))
    for text in ("积分多少", "我有多少积分", "查积分", "积分余额"):
        examples.append(featurised(text, "points_balance"))
    return TrainingData(training_examples=examples)


@pytest.fixture()
def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name="linear_intent")


def test_trains_predicts_and_reloads(tmp_path: Path, context: ExecutionContext) -> None:
    storage = LocalModelStorage(tmp_path)
    resource = Resource("linear_intent")
    classifier = LinearIntentClassifier.create({"ranking_length": 2}, storage, resource, context)
    classifier.train(training_data())
    [message] = classifier.process([featurised("我的快递到哪了")])
    assert message.get(INTENT)["name"] == "track_order"
    ranking = message.get("intent_ranking")
    assert len(ranking) == 2 and ranking[0]["confidence"] >= ranking[1]["confidence"]

    loaded = LinearIntentClassifier.load({"ranking_length": 2}, storage, resource, context)
    [again] = loaded.process([featurised("我的快递到哪了")])
    assert again.get(INTENT)["name"] == "track_order"
    assert again.get(INTENT)["confidence"] == pytest.approx(message.get(INTENT)["confidence"], rel=1e-5)
    [points] = loaded.process([featurised("积分还有多少")])
    assert points.get(INTENT)["name"] == "points_balance"


def test_untrained_classifier_leaves_messages_alone(tmp_path: Path, context: ExecutionContext) -> None:
    storage = LocalModelStorage(tmp_path)
    classifier = LinearIntentClassifier.load({}, storage, Resource("missing"), context)
    [message] = classifier.process([featurised("快递到哪了")])
    assert message.get(INTENT) is None


def test_softmax_rows_sum_to_one() -> None:
    probabilities = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.allclose(probabilities[1], [0.25, 0.75])
