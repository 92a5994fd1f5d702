"""A regularised linear intent classifier over the pipeline's sparse features.

The shop's training data is a few thousand short messages over some thirty intents, featurised as
word and character n-gram counts. On such data a multinomial logistic regression with a tuned
regularisation generalises better to new phrasings than DIET's feed-forward head, which learns to
be certain about rare words (a place name made 「地址改成广州…」 out-of-scope with confidence
1.0). DIET still recognises the entities; this component sets ``intent`` and ``intent_ranking``.

Training fits scikit-learn's ``LogisticRegression`` (classes weighted by their frequency, so the
large out_of_scope and faq classes do not dominate); the model stores only its weights (numpy
arrays and the class names, no pickle) and predicts from the weights of the message's non-zero
features and a softmax.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Type

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers import LABEL_RANKING_LENGTH
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
CLASSES_FILE = "classes.json"


def sentence_features(message: Message, width: Optional[int] = None) -> scipy.sparse.csr_matrix:
    """The message's sentence-level features (sparse and dense side by side) as one row."""
    sparse, dense = message.get_sparse_features(TEXT)[1], message.get_dense_features(TEXT)[1]
    parts = []
    if sparse is not None:
        parts.append(scipy.sparse.csr_matrix(sparse.features))
    if dense is not None:
        parts.append(scipy.sparse.csr_matrix(dense.features))
    if not parts:
        return scipy.sparse.csr_matrix((1, width or 0))
    return scipy.sparse.hstack(parts).tocsr()


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """Multinomial logistic regression on the sentence features; sets intent and its ranking."""

    @classmethod
    def required_components(cls) -> List[Type]:
        """Needs featurised messages."""
        return [Featurizer]

    @staticmethod
    def required_packages() -> List[str]:
        """scikit-learn for training (prediction is numpy)."""
        return ["sklearn"]

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """C is the inverse regularisation strength (chosen by cross-validation on the training data)."""
        return {"C": 10.0, "max_iter": 3000, "ranking_length": LABEL_RANKING_LENGTH}

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        classes: Optional[List[str]] = None,
        coef: Optional[np.ndarray] = None,
        intercept: Optional[np.ndarray] = None,
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.classes = classes or []
        self.coef: Optional[np.ndarray] = None
        self.intercept: Optional[np.ndarray] = None
        self._weights: Optional[np.ndarray] = None
        """The weights as (features, classes), contiguous: the rows of a message's features are read."""
        if coef is not None and intercept is not None:
            self._use(coef, intercept)

    def _use(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        """Take trained weights: ``coef`` as (classes, features), as stored, and its transpose for prediction."""
        self.coef = coef
        self.intercept = intercept
        self._weights = np.ascontiguousarray(coef.T)

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        """Creates an untrained classifier."""
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        """Fits the regression on every example that has an intent."""
        from sklearn.linear_model import LogisticRegression

        examples = [example for example in training_data.intent_examples if example.get(INTENT) and example.get(TEXT)]
        if not examples:
            logger.debug("no intent examples: %s stays untrained", self.__class__.__name__)
            return self._resource
        features = scipy.sparse.vstack([sentence_features(example) for example in examples]).tocsr()
        labels = [example.get(INTENT) for example in examples]
        model = LogisticRegression(
            C=float(self._config["C"]), max_iter=int(self._config["max_iter"]), class_weight="balanced",
            solver="lbfgs", multi_class="multinomial",
        )
        model.fit(features, labels)
        self.classes = [str(name) for name in model.classes_]
        self._use(np.asarray(model.coef_, dtype=np.float32), np.asarray(model.intercept_, dtype=np.float32))
        self.persist()
        return self._resource

    def persist(self) -> None:
        """Stores the weights and class names."""
        if self.coef is None or self.intercept is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            np.savez(directory / WEIGHTS_FILE, coef=self.coef, intercept=self.intercept)
            (directory / CLASSES_FILE).write_text(json.dumps(self.classes, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        """Loads the weights; an untrained classifier when there are none."""
        try:
            with model_storage.read_from(resource) as directory:
                weights = np.load(directory / WEIGHTS_FILE, allow_pickle=False)
                classes = json.loads((directory / CLASSES_FILE).read_text(encoding="utf-8"))
                return cls(config, model_storage, resource, classes, weights["coef"], weights["intercept"])
        except (ValueError, FileNotFoundError):
            logger.debug("no trained %s in the model", cls.__name__)
            return cls(config, model_storage, resource)

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets the intent and the ranking of the most likely intents."""
        if self._weights is None or self.intercept is None or not self.classes:
            return messages
        width = self._weights.shape[0]
        for message in messages:
            if not message.get(TEXT):
                continue
            features = sentence_features(message, width)
            if features.shape[1] != width:
                continue
            # only the rows of the message's few non-zero features: far cheaper than a sparse-dense product
            scores = features.data @ self._weights[features.indices] + self.intercept
            probabilities = softmax(scores[np.newaxis, :])[0]
            order = np.argsort(-probabilities)
            ranking = [{"name": self.classes[index], "confidence": float(probabilities[index])} for index in order]
            length = int(self._config["ranking_length"])
            if length > 0:
                ranking = ranking[:length]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages
