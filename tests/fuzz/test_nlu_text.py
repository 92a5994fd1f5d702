"""Fuzz: the normaliser and the identifier patterns never raise, keep their maps and spans inside the
text and give canonical values, for any text (lone surrogates, control characters, huge numbers,
full-width and other scripts' digits, emoji)."""

from __future__ import annotations

import time

from hypothesis import example, given

from bot.nlu.normalize import normalize
from bot.nlu.patterns import extract_identifiers
from tests.fuzz.nlu import component_problems, nlu_problems
from tests.fuzz.profiles import fuzz_settings
from tests.fuzz.strategies import shopper_texts


@fuzz_settings(4)
@given(shopper_texts())
@example("\ud800")
@example("订单\udfff号 二零二六一一一五零零二三")
@example("٣٣٣٣٣٣٣٣٣٣٣٣")
@example("九" * 1999 + "块")
@example(" ".join("1" * 1000))
def test_normaliser_and_patterns_keep_their_promises(text: str) -> None:
    assert nlu_problems(text) == []


@fuzz_settings(4)
@given(shopper_texts(max_chars=400))
@example("\ud800 两件")
def test_components_keep_entity_spans_inside_the_text(text: str) -> None:
    assert component_problems(text) == []


def test_a_lone_surrogate_goes_like_the_replacement_character() -> None:
    result = normalize("退\ud800货")
    assert result.text == normalize("退\ufffd货").text == "退货" and result.origin == (0, 2)


def test_digits_of_other_scripts_are_no_identifiers() -> None:
    assert extract_identifiers("٣٣٣٣٣٣٣٣٣٣٣٣") == []
    assert extract_identifiers("订单202611150023") != []


def test_a_long_run_of_digit_groups_is_read_in_linear_time() -> None:
    text = " ".join("1" * 1000)  # the channel's 2000 characters, 1000 groups of one digit
    started = time.perf_counter()
    found = extract_identifiers(text)
    assert time.perf_counter() - started < 0.2
    assert len(found) == 83 and all(entity.entity == "order_id" for entity in found)
