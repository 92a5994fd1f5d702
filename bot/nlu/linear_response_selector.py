"""The FAQ and chitchat answer: a linear classifier over the retrieval sub-intents.

For a message classified as a retrieval intent (``faq``, ``chitchat``), :class:`LinearResponseSelector`
picks the sub-intent (``faq/invoice``, ``chitchat/ask_name``) with the same regularised logistic
regression as the intent classifier (:mod:`bot.nlu.linear_model`), trained on the retrieval
intents' examples only; other messages pass untouched. It writes Rasa's ``response_selector``
output exactly as ``ResponseSelector`` does without a ``retrieval_intent`` (one selector for all
retrieval intents, under the key ``default``), so ``utter_faq`` / ``utter_chitchat`` answer with
``utter_faq/invoice`` and ``rasa test nlu`` evaluates the selection::

    "response_selector": {
        "all_retrieval_intents": ["chitchat", "faq"],
        "default": {
            "response": {"responses": [{"text": ...}], "confidence": 0.93,
                         "intent_response_key": "faq/invoice", "utter_action": "utter_faq/invoice"},
            "ranking": [{"confidence": 0.93, "intent_response_key": "faq/invoice"}, ...],
        },
    }

It trains in about a second, where the TensorFlow selector took most of a minute.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import (
    RESPONSE_SELECTOR_DEFAULT_INTENT,
    RESPONSE_SELECTOR_PREDICTION_KEY,
    RESPONSE_SELECTOR_PROPERTY_NAME,
    RESPONSE_SELECTOR_RANKING_KEY,
    RESPONSE_SELECTOR_RESPONSES_KEY,
    RESPONSE_SELECTOR_RETRIEVAL_INTENTS,
    RESPONSE_SELECTOR_UTTER_ACTION_KEY,
)
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RESPONSE_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data import util
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_model import LinearComponent, LinearModel

logger = logging.getLogger(__name__)

DEFAULT_RANKING_LENGTH = 10
"""Rasa's ``ResponseSelector`` default."""


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearResponseSelector(LinearComponent):
    """Picks the FAQ/chitchat sub-intent of retrieval-intent messages and its responses."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """C is the inverse regularisation strength; ``ranking_length`` 0 keeps every sub-intent."""
        return {**LinearComponent.get_default_config(), "ranking_length": DEFAULT_RANKING_LENGTH}

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: Optional[ModelStorage] = None,
        resource: Optional[Resource] = None,
        model: Optional[LinearModel] = None,
        retrieval_intents: Optional[List[str]] = None,
        responses: Optional[Dict[str, List[Dict[str, Any]]]] = None,
    ) -> None:
        super().__init__(config, model_storage, resource, model)
        self.retrieval_intents: List[str] = retrieval_intents or []
        self.responses: Dict[str, List[Dict[str, Any]]] = responses or {}

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the regression on the retrieval intents' examples, labelled with their sub-intent."""
        self.retrieval_intents = sorted(training_data.retrieval_intents)
        self.responses = {key: list(variations) for key, variations in training_data.responses.items()}
        examples = [example for example in training_data.intent_examples
                    if example.get(INTENT) in self.retrieval_intents and example.get(INTENT_RESPONSE_KEY) and example.get(TEXT)]
        return self.fit_examples(examples, [example.get(INTENT_RESPONSE_KEY) for example in examples])

    def extra_state(self) -> Dict[str, Any]:
        """The retrieval intents and every response, stored beside the weights."""
        return {"retrieval_intents": self.retrieval_intents, "responses": self.responses}

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets ``response_selector`` on messages classified as a retrieval intent."""
        if self.model is None:
            return messages
        for message in messages:
            if (message.get(INTENT) or {}).get(INTENT_NAME_KEY) not in self.retrieval_intents:
                continue
            ranking = self.model.ranking(message)
            if not ranking:
                continue
            self._set_prediction(message, ranking)
        return messages

    def _set_prediction(self, message: Message, ranking: List[Any]) -> None:
        key, confidence = ranking[0]
        utter_action = util.intent_response_key_to_template_key(key)
        length = int(self._config["ranking_length"])
        shown = ranking[:length] if length > 0 else ranking
        prediction = {
            RESPONSE_SELECTOR_PREDICTION_KEY: {
                RESPONSE_SELECTOR_RESPONSES_KEY: self.responses.get(utter_action) or [{TEXT: key}],
                PREDICTED_CONFIDENCE_KEY: confidence,
                INTENT_RESPONSE_KEY: key,
                RESPONSE_SELECTOR_UTTER_ACTION_KEY: utter_action,
            },
            RESPONSE_SELECTOR_RANKING_KEY: [{PREDICTED_CONFIDENCE_KEY: score, INTENT_RESPONSE_KEY: label} for label, score in shown],
        }
        properties = message.get(RESPONSE_SELECTOR_PROPERTY_NAME) or {}
        properties[RESPONSE_SELECTOR_RETRIEVAL_INTENTS] = self.retrieval_intents
        properties[RESPONSE_SELECTOR_DEFAULT_INTENT] = prediction
        message.set(RESPONSE_SELECTOR_PROPERTY_NAME, properties, add_to_output=True)
