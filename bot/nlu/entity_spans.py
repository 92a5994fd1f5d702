"""What the deterministic entity extractors share: a found mention, how it joins a message, and
the Rasa component around a pure finder function.

Each extractor (dates, quantities, return reasons, products) finds mentions in the normalised text
with a pure function. :class:`MentionExtractor` appends them to the message's entities in Rasa's
format, leaving out any that overlaps an entity found before (identifiers first, then the
extractors in pipeline order), and none at all for messages of the ``ignored_intents``: out of
scope and chitchat messages talk about no order, and the training data annotates no entity in them
(「明天会降温吗」 names no delivery day, 「电脑蓝屏怎么修」 no bought product).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence

from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_NAME_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.component_base import ConfiguredComponent

IGNORED_INTENTS = ("out_of_scope", "chitchat")
"""Intents whose messages get no date, quantity, return reason or product."""


class Mention(NamedTuple):
    """A span of the normalised text: [start, end), its text, and the entity value if not the text."""

    start: int
    end: int
    text: str
    value: Optional[str] = None


def as_entity(entity: str, mention: Mention, extractor: str) -> Dict[str, Any]:
    """The mention as one of Rasa's entities (value: the mention's value, else its text)."""
    return {
        "entity": entity,
        "value": mention.value if mention.value is not None else mention.text,
        "start": mention.start,
        "end": mention.end,
        "confidence_entity": 1.0,
        "extractor": extractor,
    }


def add_entities(message: Message, entity: str, finder: Callable[[str], Iterable[Mention]], extractor: str,
                 ignored_intents: Sequence[str] = ()) -> None:
    """Append ``finder``'s mentions of the message's text that overlap no entity already found.

    Args:
        message: a message whose text is normalised.
        entity: the entity type of the mentions.
        finder: the mentions of a text.
        extractor: the extractor's name, as Rasa records it.
        ignored_intents: a message classified as one of these gets nothing.
    """
    text = message.get(TEXT)
    if not text or (message.get(INTENT) or {}).get(INTENT_NAME_KEY) in ignored_intents:
        return
    existing: List[Dict[str, Any]] = message.get(ENTITIES) or []
    taken = [(int(other["start"]), int(other["end"])) for other in existing]
    found = []
    for mention in finder(text):
        if any(mention.start < end and start < mention.end for start, end in taken):
            continue
        found.append(as_entity(entity, mention, extractor))
        taken.append((mention.start, mention.end))
    if found:
        message.set(ENTITIES, existing + found, add_to_output=True)


class MentionExtractor(ConfiguredComponent, EntityExtractorMixin):
    """A Rasa entity extractor around a finder: subclasses name the ``entity`` and implement :meth:`find`."""

    entity = ""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        """``ignored_intents``: messages of these intents get no entity from this extractor."""
        return {"ignored_intents": list(IGNORED_INTENTS)}

    def find(self, text: str) -> List[Mention]:
        """The mentions in a normalised text."""
        raise NotImplementedError

    def process(self, messages: List[Message]) -> List[Message]:
        """Appends each message's mentions that no extractor before claimed."""
        ignored = tuple(self._config["ignored_intents"] or ())
        for message in messages:
            add_entities(message, self.entity, self.find, self.__class__.__name__, ignored)
        return messages
