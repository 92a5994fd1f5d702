"""A regularised multinomial logistic regression over the pipeline's sentence features.

:class:`LinearModel` is the model, :class:`LinearComponent` the Rasa component around one, shared
by the intent classifier (:mod:`bot.nlu.linear_intent`) and the FAQ/chitchat response
selector (:mod:`bot.nlu.linear_response_selector`). Training fits scikit-learn's
``LogisticRegression`` (Newton-CG; classes weighted by their frequency, so large classes do not dominate); the
model stores only its weights (numpy arrays and the class names, no pickle) and predicts from the
weights of the message's non-zero features and a softmax.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.component_base import ConfiguredComponent

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
CLASSES_FILE = "classes.json"


def sentence_row(message: Message) -> Tuple[np.ndarray, np.ndarray, int]:
    """The message's sentence-level features as one row: (columns, values, width).

    Sparse features first, then dense ones, each in the order the featurizers added them: the
    columns of ``message.get_sparse_features(TEXT)[1]`` and ``get_dense_features(TEXT)[1]`` side
    by side, read without combining every sequence feature as Rasa's getters do (a few
    milliseconds per message). A column may appear twice; its values add up.
    """
    columns: List[np.ndarray] = []
    values: List[np.ndarray] = []
    width = 0
    for dense in (False, True):
        for feature in message.features:
            if feature.attribute != TEXT or feature.type != FEATURE_TYPE_SENTENCE or feature.is_dense() != dense:
                continue
            if dense:
                row = np.asarray(feature.features, dtype=np.float64).reshape(-1)
                present = np.flatnonzero(row)
                columns.append(present + width)
                values.append(row[present])
                width += row.shape[0]
            else:
                matrix = feature.features.tocoo()
                columns.append(matrix.col.astype(np.int64) + width)
                values.append(matrix.data.astype(np.float64))
                width += matrix.shape[1]
    if not columns:
        return np.zeros(0, dtype=np.int64), np.zeros(0), 0
    return np.concatenate(columns), np.concatenate(values), width


def sentence_features(message: Message, width: Optional[int] = None) -> scipy.sparse.csr_matrix:
    """The message's sentence-level features (sparse and dense side by side) as one sparse row."""
    columns, values, found = sentence_row(message)
    matrix = scipy.sparse.csr_matrix((values, columns, np.array([0, len(columns)])), shape=(1, found or width or 0))
    matrix.sum_duplicates()
    return matrix


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    exponentials = np.exp(shifted)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


@dataclass
class LinearModel:
    """Class names and weights: ``coef`` as (classes, features), as stored, ``intercept`` per class."""

    classes: List[str]
    coef: np.ndarray
    intercept: np.ndarray
    _weights: np.ndarray = field(init=False, repr=False)
    """The weights as (features, classes), contiguous: the rows of a message's features are read."""

    def __post_init__(self) -> None:
        self._weights = np.ascontiguousarray(self.coef.T)

    @property
    def width(self) -> int:
        """How many features a message must have."""
        return int(self._weights.shape[0])

    @classmethod
    def fit(cls, messages: Sequence[Message], labels: Sequence[str], C: float, max_iter: int) -> LinearModel:
        """Fits the regression on the sentence features of ``messages``.

        Args:
            messages: featurised training messages.
            labels: each message's class.
            C: inverse regularisation strength.
            max_iter: most iterations of the solver.
        """
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        features = scipy.sparse.vstack([sentence_features(message) for message in messages]).tocsr()
        # Newton-CG reaches lbfgs's optimum in some twenty steps where lbfgs needs hundreds on these
        # unscaled counts (a third of the time); one BLAS thread is faster than two fighting over
        # two shared cores.
        model = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced", solver="newton-cg", multi_class="multinomial")
        with threadpool_limits(limits=1):
            model.fit(features, list(labels))
        return cls([str(name) for name in model.classes_], np.asarray(model.coef_, dtype=np.float32),
                   np.asarray(model.intercept_, dtype=np.float32))

    def ranking(self, message: Message) -> Optional[List[Tuple[str, float]]]:
        """Every class with its probability, most likely first; None when the features do not fit."""
        columns, values, width = sentence_row(message)
        if width != self.width:
            return None
        # only the rows of the message's few non-zero features: far cheaper than a sparse-dense product
        scores = values @ self._weights[columns] + self.intercept
        probabilities = softmax(scores[np.newaxis, :])[0]
        order = np.argsort(-probabilities)
        return [(self.classes[index], float(probabilities[index])) for index in order]

    def save(self, directory: Path) -> None:
        """Writes the weights and class names into ``directory``."""
        np.savez(directory / WEIGHTS_FILE, coef=self.coef, intercept=self.intercept)
        (directory / CLASSES_FILE).write_text(json.dumps(self.classes, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> LinearModel:
        """Reads what :meth:`save` wrote (``FileNotFoundError`` or ``ValueError`` when it is not there)."""
        weights = np.load(directory / WEIGHTS_FILE, allow_pickle=False)
        classes = json.loads((directory / CLASSES_FILE).read_text(encoding="utf-8"))
        return cls(classes, weights["coef"], weights["intercept"])


class LinearComponent(ConfiguredComponent):
    """A Rasa component around one :class:`LinearModel`: creation, training, storage and loading.

    Subclasses pick their training examples and labels (:meth:`fit_examples`), say what else they
    store beside the weights (:meth:`extra_state`, given back to ``__init__`` as keyword arguments
    on load) and use ``self.model`` in ``process``.
    """

    STATE_FILE = "state.json"

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
        return {"C": 10.0, "max_iter": 3000}

    def __init__(self, config: Dict[str, Any], model_storage: Optional[ModelStorage] = None,
                 resource: Optional[Resource] = None, model: Optional[LinearModel] = None) -> None:
        super().__init__(config, model_storage, resource)
        self.model = model

    def fit_examples(self, messages: Sequence[Message], labels: Sequence[str]) -> Resource:
        """Fits the model on ``messages`` (fewer than two labels leave it untrained) and stores it."""
        assert self._resource is not None, "created by Rasa's training"
        if len(set(labels)) < 2:
            logger.debug("fewer than two classes: %s stays untrained", self.__class__.__name__)
            return self._resource
        self.model = LinearModel.fit(messages, labels, C=float(self._config["C"]), max_iter=int(self._config["max_iter"]))
        self.persist()
        return self._resource

    def extra_state(self) -> Dict[str, Any]:
        """What the component stores beside the weights (JSON); nothing by default."""
        return {}

    def persist(self) -> None:
        """Stores the weights, the class names and the extra state."""
        if self.model is None or self._model_storage is None or self._resource is None:
            return
        with self._model_storage.write_to(self._resource) as directory:
            self.model.save(directory)
            extra = self.extra_state()
            if extra:
                (directory / self.STATE_FILE).write_text(json.dumps(extra, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearComponent:
        """Loads the weights and extra state; an untrained component when the model has none."""
        try:
            with model_storage.read_from(resource) as directory:
                model = LinearModel.load(directory)
                state_file = directory / cls.STATE_FILE
                extra = json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}
        except (ValueError, FileNotFoundError):
            logger.debug("no trained %s in the model", cls.__name__)
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, model, **extra)
