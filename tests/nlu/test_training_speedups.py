"""Fast token fingerprints are exactly Rasa's, and follow a token that changes."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List

import pytest
from rasa.nlu.tokenizers.tokenizer import Token

from bot.nlu import training_speedups


@pytest.fixture
def stock() -> Iterator[None]:
    training_speedups.uninstall()
    try:
        yield
    finally:
        training_speedups.install()


DATA: List[Dict[str, Any]] = [
    {},
    {"pattern": {"bare_rating": False, "shop_service_terms": True}},
    {"pattern": {}},
    {"pos": "n", "weights": [1, 2.5, None, True, "x"], "nested": {"a": {"b": [0]}}},
    {"span": (1, 2)},  # a tuple: Rasa's own code
    {"object": object()},
]


def _tokens() -> List[Token]:
    tokens = [Token("快递", 0), Token("到", 2, lemma="到达"), Token("哪", 3, end=5)]
    tokens += [Token("了", 4, data=dict(data)) for data in DATA]
    return tokens


def test_fingerprints_are_rasas(stock: None) -> None:
    tokens = _tokens()
    expected = [token.fingerprint() for token in tokens]
    training_speedups.install()
    assert [token.fingerprint() for token in tokens] == expected
    assert [token.fingerprint() for token in tokens] == expected, "remembered"
    assert [token.fingerprint() for token in _tokens()[:-1]] == expected[:-1], "new tokens, same content"


def test_a_changed_token_gets_a_new_fingerprint(stock: None) -> None:
    training_speedups.install()
    token = Token("快递", 0, data={"pattern": {"bare_rating": False}})
    before = token.fingerprint()
    token.text, token.end = "快递员", 3
    renamed = token.fingerprint()
    token.data["pattern"]["bare_rating"] = True
    flagged = token.fingerprint()
    token.set("pos", "n")
    tagged = token.fingerprint()
    training_speedups.uninstall()
    assert len({before, renamed, flagged, tagged}) == 4
    assert tagged == token.fingerprint()
    assert renamed == Token("快递员", 0, lemma="快递", data={"pattern": {"bare_rating": False}}).fingerprint()


def test_installed_with_the_nlu_components() -> None:
    import bot.nlu.components  # noqa: F401

    assert Token.fingerprint is training_speedups._remembered_fingerprint
