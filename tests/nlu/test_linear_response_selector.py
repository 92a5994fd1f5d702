"""The linear FAQ/chitchat selector: trains on the sub-intents, writes Rasa's response_selector output."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_RESPONSE_KEY, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_response_selector import LinearResponseSelector

VOCABULARY = ["发票", "开", "运费", "包邮", "名字", "叫", "快递"]
RESPONSES = {
    "utter_faq/invoice": [{"text": "可以开电子发票"}],
    "utter_faq/shipping_fee": [{"text": "满 99 元包邮"}],
    "utter_chitchat/ask_name": [{"text": "我是小商"}],
}


def featurised(text: str, intent: Optional[str] = None, response_key: Optional[str] = None) -> Message:
    """A message with count features over a tiny vocabulary, as the count vectorizers would make."""
    counts = np.array([[float(text.count(word)) for word in VOCABULARY]])
    data = {TEXT: text}
    if intent:
        data[INTENT] = intent
    if response_key:
        data[INTENT_RESPONSE_KEY] = response_key
    message = Message(data=data)
    message.add_features(Features(scipy.sparse.coo_matrix(counts), "sentence", TEXT, "test"))
    return message


def training_data() -> TrainingData:
    examples: List[Message] = []
    for text in ("能开发票吗", "发票怎么开", "开个发票", "要发票"):
        examples.append(featurised(text, "faq", "faq/invoice"))
    for text in ("运费多少", "包邮吗", "怎么才包邮", "运费谁出"):
        examples.append(featurised(text, "faq", "faq/shipping_fee"))
    for text in ("你叫什么名字", "你叫啥", "名字是什么", "怎么称呼你的名字"):
        examples.append(featurised(text, "chitchat", "chitchat/ask_name"))
    for text in ("快递到哪了", "查快递"):
        examples.append(featurised(text, "track_order"))
    return TrainingData(training_examples=examples, responses=RESPONSES)


def classified(text: str, intent: str) -> Message:
    message = featurised(text)
    message.set(INTENT, {"name": intent, "confidence": 0.9}, add_to_output=True)
    return message


@pytest.fixture()
def context() -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name="linear_response_selector")


def test_selects_the_sub_intent_in_rasa_format(tmp_path: Path, context: ExecutionContext) -> None:
    selector = LinearResponseSelector.create({"ranking_length": 2}, LocalModelStorage(tmp_path), Resource("selector"), context)
    selector.train(training_data())
    [message] = selector.process([classified("发票能开吗", "faq")])
    output = message.as_dict(only_output_properties=True)["response_selector"]
    assert output["all_retrieval_intents"] == ["chitchat", "faq"]
    prediction = output["default"]["response"]
    assert prediction["intent_response_key"] == "faq/invoice"
    assert prediction["utter_action"] == "utter_faq/invoice"
    assert prediction["responses"] == RESPONSES["utter_faq/invoice"]
    assert 0.5 < prediction["confidence"] <= 1.0
    ranking = output["default"]["ranking"]
    assert [set(label) for label in ranking] == [{"confidence", "intent_response_key"}] * 2
    assert ranking[0] == {"confidence": prediction["confidence"], "intent_response_key": "faq/invoice"}
    assert ranking[0]["confidence"] >= ranking[1]["confidence"]


def test_survives_save_and_load(tmp_path: Path, context: ExecutionContext) -> None:
    storage, resource = LocalModelStorage(tmp_path), Resource("selector")
    trained = LinearResponseSelector.create({}, storage, resource, context)
    trained.train(training_data())
    [first] = trained.process([classified("你叫什么", "chitchat")])
    loaded = LinearResponseSelector.load({}, storage, resource, context)
    [again] = loaded.process([classified("你叫什么", "chitchat")])
    assert again.get("response_selector") == first.get("response_selector")
    assert again.get("response_selector")["default"]["response"]["intent_response_key"] == "chitchat/ask_name"


def test_other_intents_pass_untouched(tmp_path: Path, context: ExecutionContext) -> None:
    selector = LinearResponseSelector.create({}, LocalModelStorage(tmp_path), Resource("selector"), context)
    selector.train(training_data())
    [message] = selector.process([classified("快递到哪了", "track_order")])
    assert message.get("response_selector") is None


def test_untrained_selector_leaves_messages_alone(tmp_path: Path, context: ExecutionContext) -> None:
    selector = LinearResponseSelector.load({}, LocalModelStorage(tmp_path), Resource("missing"), context)
    [message] = selector.process([classified("发票能开吗", "faq")])
    assert message.get("response_selector") is None


def test_sentence_row_is_rasas_combined_sentence_features() -> None:
    from bot.nlu.linear_model import sentence_features

    message = Message(data={TEXT: "发票能开吗"})
    message.add_features(Features(scipy.sparse.coo_matrix(np.array([[1.0, 0.0, 2.0]])), "sentence", TEXT, "words"))
    message.add_features(Features(scipy.sparse.coo_matrix(np.eye(4)), "sequence", TEXT, "words"))
    message.add_features(Features(scipy.sparse.coo_matrix(np.array([[0.0, 3.0]])), "sentence", TEXT, "chars"))
    message.add_features(Features(np.array([[0.5, 0.0]]), "sentence", TEXT, "dense"))
    message.add_features(Features(scipy.sparse.coo_matrix(np.array([[9.0]])), "sentence", "response", "words"))
    sparse, dense = message.get_sparse_features(TEXT)[1], message.get_dense_features(TEXT)[1]
    expected = np.hstack([sparse.features.toarray(), dense.features])
    assert np.array_equal(sentence_features(message).toarray(), expected)
