"""Rasa graph components: the text normaliser (runs before jieba) and the identifier extractor."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.normalize import normalize, remap_span
from bot.nlu.patterns import extract_identifiers

ORIGINAL_TEXT = "original_text"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class ChineseTextNormalizer(GraphComponent):
    """Rewrites a message's text into normalised form; the tracker keeps what the shopper typed."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ChineseTextNormalizer:
        """Creates the component (it has no state)."""
        return cls()

    @staticmethod
    def _normalize_message(message: Message) -> None:
        text = message.get(TEXT)
        if not text:
            return
        normalized = normalize(text)
        if normalized.text == text:
            return
        entities = message.get(ENTITIES) or []
        moved = []
        for entity in entities:
            start, end = remap_span(normalized, entity["start"], entity["end"])
            if end > start:
                moved_entity = {**entity, "start": start, "end": end}
                # A value that was just the annotated text follows the text's new form (两件 → 2件);
                # an explicit value (a synonym such as quality_issue) stays as annotated.
                if entity.get("value") == text[entity["start"]:entity["end"]]:
                    moved_entity["value"] = normalized.text[start:end]
                moved.append(moved_entity)
        message.set(ORIGINAL_TEXT, text, add_to_output=False)
        message.set(TEXT, normalized.text)
        if entities:
            message.set(ENTITIES, moved)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """Normalises every training example and moves its entity spans along."""
        for example in training_data.training_examples:
            self._normalize_message(example)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        """Normalises incoming messages."""
        for message in messages:
            self._normalize_message(message)
        return messages


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class ShopPatternExtractor(GraphComponent, EntityExtractorMixin):
    """Adds order_id, tracking_number, phone, phone_last4 and amount entities found by pattern."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ShopPatternExtractor:
        """Creates the component (it has no state)."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Appends the identifiers of each message to its entities."""
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            found = [entity.as_rasa(self.__class__.__name__) for entity in extract_identifiers(text)]
            if found:
                message.set(ENTITIES, (message.get(ENTITIES) or []) + found, add_to_output=True)
        return messages
