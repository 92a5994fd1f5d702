"""Keep the parse results of short messages per loaded model.

Understanding a message (tokenizer, featurizers, classifiers, entity extractors) costs several ms
of CPU and depends on nothing but the message's text: the project's NLU components read neither
the tracker nor the metadata. At a sales peak thousands of shoppers write the same short messages
(「在吗」, 「你好」, 「转人工」, 「我的快递到哪了」), so this patch keeps the parse results of up to
``NLU_CACHE_SIZE`` messages of at most :data:`NLU_CACHE_MAX_CHARS` characters per model in memory
(least recently used first out), and hands out copies. The cache lives and dies with the loaded
model, in the server's memory only. ``NLU_CACHE_SIZE=0`` keeps the patch but caches nothing.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

from bot.rasa_patches import RASA_VERSION, Patch

TARGET = "rasa.core.processor:MessageProcessor._parse_message_with_graph"

NLU_CACHE_MAX_CHARS = 64
"""Longer messages are rarely repeated word for word: they are parsed every time."""


class ParseCache:
    """Least-recently-used store of parse results keyed by message text.

    Args:
        size: how many results are kept; 0 disables the cache.
    """

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Tuple[str, bool], Dict[str, Any]] = OrderedDict()

    def key(self, text: Optional[str], only_output_properties: bool) -> Optional[Tuple[str, bool]]:
        """The cache key of a message, or None when it is not cached (too long, empty, cache off)."""
        if not self.size or not text or len(text) > NLU_CACHE_MAX_CHARS:
            return None
        return text, only_output_properties

    def get(self, key: Tuple[str, bool]) -> Optional[Dict[str, Any]]:
        """A copy of the stored result, or None."""
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return copy.deepcopy(found)

    def put(self, key: Tuple[str, bool], parse_data: Dict[str, Any]) -> None:
        """Store a copy of a result, dropping the least recently used beyond the size."""
        self._entries[key] = copy.deepcopy(parse_data)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def parse_cache_of(processor: Any) -> ParseCache:
    """The parse cache of one loaded model (created on first use)."""
    cache = getattr(processor, "_shop_parse_cache", None)
    if cache is None:
        from bot.settings import load_settings

        cache = ParseCache(load_settings().nlu_cache_size)
        processor._shop_parse_cache = cache
    return cache


def apply(patch: Patch) -> None:
    from rasa.core.processor import MessageProcessor

    parse_with_graph = patch.stock(TARGET)

    def _parse_message_with_graph(self: MessageProcessor, message: Any, tracker: Any,
                                  only_output_properties: bool = True) -> Dict[str, Any]:
        cache = parse_cache_of(self)
        key = cache.key(getattr(message, "text", None), only_output_properties)
        if key is not None:
            found = cache.get(key)
            if found is not None:
                return found
        parse_data = parse_with_graph(self, message, tracker, only_output_properties)
        if key is not None:
            cache.put(key, parse_data)
        return parse_data

    patch.replace(MessageProcessor, "_parse_message_with_graph", _parse_message_with_graph)


PATCH = Patch(
    name="parse_cache",
    rasa_version=RASA_VERSION,
    targets={TARGET: "0bd50a53b5c013af8458cbefe5dbcbd5c02c82a671a841b1947b3e8964e5c3d1"},
    apply=apply,
    saves="the whole NLU graph run for a short message seen before",
)
