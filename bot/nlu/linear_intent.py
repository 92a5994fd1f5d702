"""A regularised linear intent classifier over the pipeline's sparse features.

The shop's training data is a few thousand short messages over some thirty intents, featurised as
word and character n-gram counts. On such data a multinomial logistic regression with a tuned
regularisation (:mod:`bot.nlu.linear_model`) generalises better to new phrasings than DIET's
feed-forward head, which learns to be certain about rare words (a place name made 「地址改成广州…」
out-of-scope with confidence 1.0). This component sets ``intent`` and ``intent_ranking``; the
entities come from the deterministic extractors.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.linear_model import LinearComponent, sentence_features, softmax

__all__ = ["LinearIntentClassifier", "sentence_features", "softmax"]

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(LinearComponent, IntentClassifier):
    """Multinomial logistic regression on the sentence features; sets intent and its ranking."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """C is the inverse regularisation strength (chosen by cross-validation on the training data)."""
        return {**LinearComponent.get_default_config(), "ranking_length": LABEL_RANKING_LENGTH}

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the regression on every example that has an intent."""
        examples = [example for example in training_data.intent_examples if example.get(INTENT) and example.get(TEXT)]
        return self.fit_examples(examples, [example.get(INTENT) for example in examples])

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets the intent and the ranking of the most likely intents."""
        if self.model is None or not self.model.classes:
            return messages
        length = int(self._config["ranking_length"])
        for message in messages:
            if not message.get(TEXT):
                continue
            ranked = self.model.ranking(message)
            if not ranked:
                continue
            ranking = [{"name": name, "confidence": confidence} for name, confidence in ranked]
            if length > 0:
                ranking = ranking[:length]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages
