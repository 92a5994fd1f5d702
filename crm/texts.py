"""The CRM's messages and labels, read once from ``crm/texts.yml``."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Dict

import yaml  # type: ignore[import-untyped]

TEXTS_FILE = Path(__file__).resolve().parent / "texts.yml"


@cache
def texts() -> Dict[str, Any]:
    """The whole texts file."""
    with TEXTS_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def text(key: str, **values: Any) -> str:
    """The message at the dotted ``key`` (``service.no_such_order``) with its ``{names}`` filled in."""
    node: Any = texts()
    for part in key.split("."):
        node = node[part]
    return str(node).format(**values)


def labels(kind: str) -> Dict[str, str]:
    """The Chinese labels of one kind of code (``order_status``, ``carrier``), in the file's order."""
    return dict(texts()["labels"][kind])
