"""Return reasons as shoppers write them (「尺码不对」「有异味」「收到就坏了」), valued with the policy's code.

The vocabulary is the training data's: every annotated ``return_reason`` span and every synonym of
a return-reason code (``data/nlu/synonyms.yml``), normalised as messages are. :func:`find_reasons`
marks the longest phrase at each place of a normalised message (case-insensitive, leftmost first);
the entity's value is the code (``quality_issue``, ``wrong_size`` …) that ``EntitySynonymMapper``
used to give DIET's spans, and that the return flow reads.

:class:`ReturnReasonExtractor` learns the vocabulary in training (no statistics, a few
milliseconds) and stores it as JSON in the model.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Dict, List, Mapping, Optional, Pattern

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.entity_spans import Mention, MentionExtractor
from bot.nlu.normalize import normalize

logger = logging.getLogger(__name__)

ENTITY = "return_reason"
VOCABULARY_FILE = "return_reasons.json"


def reason_vocabulary(training_data: TrainingData, entity: str = ENTITY) -> Dict[str, str]:
    """Phrase (normalised, lower case) → code, from the annotated spans and the synonyms of their codes.

    Args:
        training_data: the NLU training data (its examples may be normalised already).
        entity: the entity type whose annotations give the codes.

    Returns:
        Every phrase once; where two codes claim a phrase, the annotation seen first wins.
    """
    vocabulary: Dict[str, str] = {}
    codes = set()
    for example in training_data.nlu_examples:
        text = example.get(TEXT) or ""
        for annotation in example.get(ENTITIES) or []:
            if annotation.get("entity") == entity and annotation.get("value"):
                code = str(annotation["value"])
                codes.add(code)
                vocabulary.setdefault(normalize(text[annotation["start"]:annotation["end"]]).text.lower(), code)
    for phrase, code in sorted(training_data.entity_synonyms.items()):
        if code in codes:
            vocabulary.setdefault(normalize(phrase).text.lower(), str(code))
    vocabulary.pop("", None)
    return vocabulary


def compile_vocabulary(vocabulary: Mapping[str, str]) -> Optional[Pattern[str]]:
    """One pattern of every phrase, longest first (so the longest phrase at a place wins)."""
    if not vocabulary:
        return None
    return re.compile("|".join(re.escape(phrase) for phrase in sorted(vocabulary, key=lambda p: (-len(p), p))))


def find_reasons(text: str, vocabulary: Mapping[str, str], pattern: Optional[Pattern[str]] = None) -> List[Mention]:
    """The return reasons in a normalised message, in order, each valued with its code.

    Args:
        text: the message after :func:`bot.nlu.normalize.normalize`.
        vocabulary: phrase → code (see :func:`reason_vocabulary`).
        pattern: :func:`compile_vocabulary` of ``vocabulary`` (compiled here when omitted).
    """
    pattern = pattern or compile_vocabulary(vocabulary)
    if pattern is None:
        return []
    # Lower-casing keeps every character's position in these texts (Chinese and ASCII letters).
    lowered = text.lower() if len(text.lower()) == len(text) else text
    return [Mention(match.start(), match.end(), text[match.start():match.end()], vocabulary[match.group(0)])
            for match in pattern.finditer(lowered)]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class ReturnReasonExtractor(MentionExtractor):
    """Adds ``return_reason`` entities from the training data's reason phrases, valued with their code."""

    entity = ENTITY

    def __init__(self, config: Dict[str, Any], model_storage: Optional[ModelStorage] = None,
                 resource: Optional[Resource] = None, vocabulary: Optional[Dict[str, str]] = None) -> None:
        super().__init__(config, model_storage, resource)
        self.vocabulary: Dict[str, str] = vocabulary or {}
        self._pattern = compile_vocabulary(self.vocabulary)

    def train(self, training_data: TrainingData) -> Resource:
        """Collects the reason phrases of the training data and stores them."""
        assert self._model_storage is not None and self._resource is not None, "created by Rasa's training"
        self.vocabulary = reason_vocabulary(training_data)
        self._pattern = compile_vocabulary(self.vocabulary)
        with self._model_storage.write_to(self._resource) as directory:
            (directory / VOCABULARY_FILE).write_text(json.dumps(self.vocabulary, ensure_ascii=False, sort_keys=True), encoding="utf-8")
        return self._resource

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> ReturnReasonExtractor:
        """Loads the phrases; an extractor that finds nothing when the model has none."""
        try:
            with model_storage.read_from(resource) as directory:
                vocabulary = json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8"))
        except (ValueError, FileNotFoundError):
            logger.debug("no trained %s in the model", cls.__name__)
            vocabulary = {}
        return cls(config, model_storage, resource, vocabulary)

    def find(self, text: str) -> List[Mention]:
        """The return reasons of a normalised text (see :func:`find_reasons`)."""
        return find_reasons(text, self.vocabulary, self._pattern)
