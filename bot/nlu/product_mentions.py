"""spaCy finds product mentions (「那双耐克跑鞋」, 「阿迪的鞋子」, 「螃蟹」) against the shop's catalogue.

A blank Chinese spaCy pipeline segments with jieba (the same global jieba, with the shop
dictionary, that Rasa's JiebaTokenizer uses); a ``PhraseMatcher`` built from the catalogue's brand
and product-type aliases marks brands and types, and a brand followed by a type within one token
(「耐克跑鞋」, 「耐克的跑鞋」) becomes one mention. No model is downloaded: the patterns come from
``catalogue.yml``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Tuple

import spacy
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from spacy.language import Language
from spacy.matcher import PhraseMatcher

from bot.nlu.catalogue import Catalogue, default_catalogue

ENTITY = "product"
MAX_GAP_TOKENS = 1


@lru_cache(maxsize=1)
def _pipeline() -> Tuple[Language, PhraseMatcher]:
    return build_pipeline(default_catalogue())


def build_pipeline(catalogue: Catalogue) -> Tuple[Language, PhraseMatcher]:
    """A blank zh pipeline with jieba segmentation and a matcher of brands and product types."""
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    brands: Dict[str, List[Any]] = {}
    types: Dict[str, List[Any]] = {}
    for alias, label, _canonical in catalogue.alias_table():
        (brands if label == "BRAND" else types).setdefault(label, []).append(nlp.make_doc(alias))
    matcher.add("BRAND", brands.get("BRAND", []))
    matcher.add("TYPE", types.get("TYPE", []))
    return nlp, matcher


@lru_cache(maxsize=1)
def _alias_sets() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    table = default_catalogue().alias_table()
    return (tuple(a for a, label, _ in table if label == "BRAND"), tuple(a for a, label, _ in table if label == "TYPE"))


def is_compound_mention(token_text: str) -> bool:
    """True for one jieba token that is a brand alias followed by a product-type alias (「耐克跑鞋」).

    The shop dictionary keeps such compounds as single tokens, which the phrase matcher's
    brand and type patterns cannot match on their own.
    """
    lowered = token_text.lower()
    brands, types = _alias_sets()
    return any(lowered.startswith(brand) and lowered[len(brand):] in types for brand in brands if len(lowered) > len(brand))


def find_mentions(text: str, pipeline: Tuple[Language, PhraseMatcher] | None = None) -> List[Tuple[int, int, str]]:
    """Product mentions in ``text`` as (start, end, surface text), in order.

    Args:
        text: a normalised message.
        pipeline: the spaCy pipeline and matcher; the shipped catalogue's when omitted.
    """
    nlp, matcher = pipeline or _pipeline()
    doc = nlp.make_doc(text)
    matches = list(matcher(doc))
    labels = {(start, end): doc.vocab.strings[match_id] for match_id, start, end in matches}
    candidates = [doc[start:end] for _match_id, start, end in matches]
    for token in doc:
        if is_compound_mention(token.text):
            candidates.append(doc[token.i:token.i + 1])
            labels[(token.i, token.i + 1)] = "PRODUCT"
    spans = spacy.util.filter_spans(candidates)
    mentions: List[Tuple[int, int]] = []
    previous_label = None
    for span in spans:
        label = labels.get((span.start, span.end))
        if (
            mentions
            and previous_label == "BRAND"
            and label == "TYPE"
            and span.start - mentions[-1][1] <= MAX_GAP_TOKENS
        ):
            mentions[-1] = (mentions[-1][0], span.end)
        else:
            mentions.append((span.start, span.end))
        previous_label = label
    result = []
    for start_token, end_token in mentions:
        span = doc[start_token:end_token]
        result.append((span.start_char, span.end_char, span.text))
    return result


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class ProductMentionExtractor(GraphComponent, EntityExtractorMixin):
    """Adds ``product`` entities found by the spaCy catalogue matcher."""

    def __init__(self) -> None:
        self._pipeline = _pipeline()

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ProductMentionExtractor:
        """Builds the matcher once, at model load (not on the first message)."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Appends product mentions not already found by another extractor."""
        for message in messages:
            text = message.get(TEXT)
            if not text:
                continue
            existing = message.get(ENTITIES) or []
            taken = [(entity["start"], entity["end"]) for entity in existing if entity.get("entity") == ENTITY]
            found = []
            for start, end, surface in find_mentions(text, self._pipeline):
                if any(start < other_end and other_start < end for other_start, other_end in taken):
                    continue
                found.append({"entity": ENTITY, "value": surface, "start": start, "end": end,
                              "confidence_entity": 1.0, "extractor": self.__class__.__name__})
            if found:
                message.set(ENTITIES, existing + found, add_to_output=True)
        return messages
