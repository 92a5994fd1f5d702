"""spaCy finds product mentions (「那双耐克跑鞋」, 「阿迪的鞋子」, 「螃蟹」) against the shop's catalogue.

A blank Chinese spaCy pipeline segments with jieba (the same global jieba, with the shop
dictionary, that Rasa's JiebaTokenizer uses); a ``PhraseMatcher`` built from the catalogue's brand
and product-type aliases marks brands and types, and a brand followed by a type within one token
(「耐克跑鞋」, 「耐克的跑鞋」) becomes one mention. No model is downloaded: the patterns come from
``catalogue.yml``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise
from typing import Any, Dict, List, NamedTuple, Optional, Pattern, Tuple

import spacy
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from bot.nlu.catalogue import Catalogue, default_catalogue
from bot.nlu.entity_spans import Mention, MentionExtractor

ENTITY = "product"
MAX_GAP_TOKENS = 1
# 「手机尾号5678」「手机号」「手机 139…」「收件人手机改成…」: the phone number, not a bought phone.
_PHONE_NUMBER_AFTER = re.compile(r"\s*(?:号|尾|后[四4]位|末[四4]位|[0-9]|改成|换成|改为|换为)")
_PHONE_WORDS = ("手机", "电话")


class MentionPipeline(NamedTuple):
    """The spaCy pipeline, its matcher, and the aliases that are always kept as one token."""

    nlp: Language
    matcher: PhraseMatcher
    whole_words: Optional[Pattern[str]]


@lru_cache(maxsize=1)
def _pipeline() -> MentionPipeline:
    return build_pipeline(default_catalogue())


def _is_mixed(alias: str) -> bool:
    return any("a" <= char <= "z" for char in alias) and any("\u4e00" <= char <= "\u9fff" for char in alias)


def build_pipeline(catalogue: Catalogue) -> MentionPipeline:
    """A blank zh pipeline with jieba segmentation and a matcher of brands and product types.

    Aliases mixing Latin letters and Chinese characters (「t恤」, 「u盘」, 「e卡」) are matched as one
    token whatever their case: jieba's segmentation of them depends on case (its dictionary knows
    「T恤」, so 「T恤」 is one token but 「t恤」 two, and 「u盘坏了」 may become 「u / 盘坏 / 了」), so
    :func:`make_doc` keeps every case-insensitive occurrence of such an alias as one token.
    """
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    brands: Dict[str, List[Any]] = {}
    types: Dict[str, List[Any]] = {}
    mixed = []
    for alias, label, _canonical in catalogue.alias_table():
        if _is_mixed(alias):
            mixed.append(alias)
            pattern = Doc(nlp.vocab, words=[alias], spaces=[False])
        else:
            pattern = nlp.make_doc(alias)
        (brands if label == "BRAND" else types).setdefault(label, []).append(pattern)
    matcher.add("BRAND", brands.get("BRAND", []))
    matcher.add("TYPE", types.get("TYPE", []))
    whole_words = None
    if mixed:
        # Longest first (the alias table is sorted so); a Latin start may not continue a Latin word.
        alternatives = "|".join(re.escape(alias) for alias in mixed)
        whole_words = re.compile(rf"(?<![a-z0-9])(?:{alternatives})", re.IGNORECASE)
    return MentionPipeline(nlp, matcher, whole_words)


def make_doc(text: str, pipeline: MentionPipeline) -> Doc:
    """The jieba segmentation of ``text``, with each mixed alias occurrence as exactly one token."""
    doc = pipeline.nlp.make_doc(text)
    if pipeline.whole_words is None:
        return doc
    occurrences = [(match.start(), match.end()) for match in pipeline.whole_words.finditer(text)]
    if not occurrences:
        return doc
    cuts = {token.idx for token in doc} | {token.idx + len(token.text) for token in doc} | {0, len(text)}
    for start, end in occurrences:
        cuts = {cut for cut in cuts if not start < cut < end} | {start, end}
    ordered = sorted(cuts)
    words = [text[a:b] for a, b in pairwise(ordered) if text[a:b].strip()]
    words, spaces = spacy.util.get_words_and_spaces(words, text)
    return Doc(pipeline.nlp.vocab, words=words, spaces=spaces)


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


def find_mentions(text: str, pipeline: Optional[MentionPipeline] = None) -> List[Tuple[int, int, str]]:
    """Product mentions in ``text`` as (start, end, surface text), in order.

    「手机」 naming the shopper's number (「手机尾号5678」, 「手机号改成…」) is no product.

    Args:
        text: a normalised message.
        pipeline: the spaCy pipeline and matcher; the shipped catalogue's when omitted.
    """
    pipeline = pipeline or _pipeline()
    matcher = pipeline.matcher
    doc = make_doc(text, pipeline)
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
        if span.text in _PHONE_WORDS and _PHONE_NUMBER_AFTER.match(text, span.end_char):
            continue
        result.append((span.start_char, span.end_char, span.text))
    return result


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class ProductMentionExtractor(MentionExtractor):
    """Adds ``product`` entities found by the spaCy catalogue matcher."""

    entity = ENTITY

    def __init__(self, config: Dict[str, Any], model_storage: Optional[ModelStorage] = None,
                 resource: Optional[Resource] = None) -> None:
        super().__init__(config, model_storage, resource)
        # built once, at model load (not on the first message)
        self._pipeline = _pipeline()

    def find(self, text: str) -> List[Mention]:
        """The product mentions of a normalised text (see :func:`find_mentions`)."""
        return [Mention(start, end, surface) for start, end, surface in find_mentions(text, self._pipeline)]
