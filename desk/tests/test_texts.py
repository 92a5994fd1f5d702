"""The desk's texts file: every text the desk's code says is there, filled as the code fills it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from desk import texts
from desk.texts import TextsFileError, placeholders, say

DESK = Path(__file__).resolve().parents[1]


def _said() -> dict:
    """Every ``say("key", name=...)`` of the desk's modules: key -> the value names passed."""
    found: dict = {}
    for path in sorted(DESK.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "say" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.setdefault(node.args[0].value, set()).update(k.arg for k in node.keywords)
    return found


def test_every_text_the_desk_says_is_in_the_file_with_its_placeholders():
    said = _said()
    assert {"invalid_json", "too_many_attempts", "session_ended", "review_note_missing"} <= set(said)
    known = texts.texts()
    for key, names in said.items():
        assert key in known, key
        assert placeholders(known[key]) == names, key


def test_a_text_is_filled_with_its_values():
    assert say("too_many_attempts", minutes=15) == "登录尝试次数过多，请 15 分钟后再试。"
    assert say("text_too_long", max_chars=2000) == "内容超过 2000 字，请分几条发送。"


def test_an_unknown_key_or_a_missing_value_is_a_clear_error():
    with pytest.raises(KeyError, match="no text 'no_such_text' in desk/texts.yml"):
        say("no_such_text")
    with pytest.raises(KeyError, match=r"needs values for \['minutes'\]"):
        say("too_many_attempts")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a:\n  x: 一\nb:\n  x: 二\n", "named twice"),
        ("- x\n", "expected sections"),
        ("a: text\n", "not a mapping"),
        ("a:\n  x: \n", "not a text"),
    ],
)
def test_a_malformed_file_is_refused(tmp_path, monkeypatch, content, message):
    edited = tmp_path / "texts.yml"
    edited.write_text(content, encoding="utf-8")
    monkeypatch.setattr(texts, "TEXTS_FILE", edited)
    texts.texts.cache_clear()
    try:
        with pytest.raises(TextsFileError, match=message):
            texts.texts()
    finally:
        texts.texts.cache_clear()
