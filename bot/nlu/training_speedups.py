"""A fix to Rasa 3.6's training speed: token fingerprints without hashing the same values again.

While training, Rasa fingerprints the whole training data after every component that processes it
(for its training cache), and a message's fingerprint hashes each of its tokens again: several
passes over some 160,000 tokens, each token an MD5 of its text, offsets, lemma and data (the
regex featurizer's pattern matches), each of those an MD5 itself. That was most of the time
between the components. :func:`install` makes ``Token.fingerprint`` compute exactly Rasa's value
(``deep_container_fingerprint([text, start, end, lemma, data])``) from remembered hashes of the
plain values and data it is made of, and remember it on the token as long as the token's content
is what it was computed from. Data holding anything but dicts with string keys, lists and plain
values is fingerprinted by Rasa's own code.

Installed when the NLU components are imported (:mod:`bot.nlu.components`), so in every
``rasa train`` and ``rasa run`` of the project's model.
"""

from __future__ import annotations

import json
from functools import lru_cache
from hashlib import md5
from typing import Any, Callable, Optional

from rasa.nlu.tokenizers.tokenizer import Token

_MEMO = "_shop_fingerprint"
_stock_fingerprint: Optional[Callable[[Token], str]] = None
_PLAIN = (str, int, float, bool)


def _hash(text: str) -> str:
    """Rasa's ``get_text_hash``."""
    return md5(text.encode("utf-8")).hexdigest()  # nosec - a fingerprint, not a secret


def frozen(value: Any) -> Any:
    """A hashable copy of ``value`` (dicts with string keys, lists, plain values); None for anything else."""
    if isinstance(value, dict):
        items = []
        for key in sorted(value):
            if not isinstance(key, str):
                return None
            item = frozen(value[key])
            if item is None:
                return None
            items.append((key, item))
        return ("dict", tuple(items))
    if isinstance(value, list):
        elements = tuple(frozen(element) for element in value)
        return None if any(element is None for element in elements) else ("list", elements)
    if value is None or isinstance(value, _PLAIN):
        return ("plain", type(value).__name__, value)
    return None


@lru_cache(maxsize=100_000)
def frozen_fingerprint(value: Any) -> str:
    """Rasa's ``deep_container_fingerprint`` of the value :func:`frozen` made this from."""
    kind = value[0]
    if kind == "dict":
        return _hash(json.dumps({frozen_fingerprint(("plain", "str", key)): frozen_fingerprint(item) for key, item in value[1]},
                                sort_keys=True))
    if kind == "list":
        return _hash(json.dumps([frozen_fingerprint(element) for element in value[1]]))
    return _hash(str(value[2]))


def _remembered_fingerprint(token: Token) -> str:
    """``Token.fingerprint`` from remembered hashes, remembered on the token while its content is unchanged."""
    assert _stock_fingerprint is not None
    data = frozen(token.data)
    if data is None:
        return _stock_fingerprint(token)
    content = (token.text, token.start, token.end, token.lemma, data)
    memo: Any = token.__dict__.get(_MEMO)
    if memo is not None and memo[0] == content:
        return str(memo[1])
    parts = [frozen(token.text), frozen(token.start), frozen(token.end), frozen(token.lemma)]
    if any(part is None for part in parts):
        return _stock_fingerprint(token)
    value = _hash(json.dumps([frozen_fingerprint(part) for part in (*parts, data)]))
    token.__dict__[_MEMO] = (content, value)
    return value


def install() -> None:
    """Make token fingerprints fast (idempotent)."""
    global _stock_fingerprint
    if _stock_fingerprint is not None:
        return
    _stock_fingerprint = Token.fingerprint
    Token.fingerprint = _remembered_fingerprint  # type: ignore[method-assign]


def uninstall() -> None:
    """Give Rasa back its own token fingerprints (for comparisons)."""
    global _stock_fingerprint
    if _stock_fingerprint is not None:
        Token.fingerprint = _stock_fingerprint  # type: ignore[method-assign]
        _stock_fingerprint = None
