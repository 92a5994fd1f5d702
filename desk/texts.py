"""The desk's own texts (``desk/texts.yml``): the messages of its API errors and websocket notices.

The file groups its texts in sections; a key names one text across the whole file. It is read once
per process, on the first :func:`say`.
"""

from __future__ import annotations

import string
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict

import yaml

TEXTS_FILE = Path(__file__).with_name("texts.yml")


class TextsFileError(ValueError):
    """``desk/texts.yml`` is not sections of ``key: text``, or names a key twice."""


@lru_cache(maxsize=1)
def texts() -> Dict[str, str]:
    """Every text of the file by key (read once per process).

    Raises:
        TextsFileError: the file is not sections of ``key: text``, or a key is in two sections.
    """
    content = yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8")) or {}
    if not isinstance(content, dict):
        raise TextsFileError(f"{TEXTS_FILE.name}: expected sections of texts")
    found: Dict[str, str] = {}
    for section, entries in content.items():
        if not isinstance(entries, dict):
            raise TextsFileError(f"{TEXTS_FILE.name}: section {section!r} is not a mapping of key: text")
        for key, text in entries.items():
            if not isinstance(text, str) or not text.strip():
                raise TextsFileError(f"{TEXTS_FILE.name}: {section}.{key} is not a text")
            if key in found:
                raise TextsFileError(f"{TEXTS_FILE.name}: the key {key!r} is named twice")
            found[str(key)] = text
    return found


def placeholders(text: str) -> set:
    """The ``{name}`` placeholders of a text."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def say(key: str, /, **values: Any) -> str:
    """The text ``key`` of ``desk/texts.yml`` with its ``{placeholders}`` filled from ``values``.

    Raises:
        KeyError: no text has that key, or a placeholder of the text has no value.
    """
    known = texts()
    if key not in known:
        raise KeyError(f"no text {key!r} in desk/{TEXTS_FILE.name}")
    text = known[key]
    missing = placeholders(text) - set(values)
    if missing:
        raise KeyError(f"the text {key!r} of desk/{TEXTS_FILE.name} needs values for {sorted(missing)}")
    return text.format_map(values)
