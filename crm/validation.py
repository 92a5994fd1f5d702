"""Parsing of path ids, query parameters and JSON bodies into typed values (or 400 errors)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Dict, List, Mapping, Optional, Pattern, Sequence, Tuple

from crm.errors import invalid
from crm.texts import text
from crm.vocab import CUSTOMER_ID_RE, ORDER_ID_RE, RETURN_ID_RE

DEFAULT_LIMIT = 20
MAX_LIMIT = 200
MAX_KEY_LENGTH = 128
_UNSIGNED_RE = re.compile(r"^\d{1,9}\Z")


def _check(value: str, pattern: Pattern[str], what: str, example: str) -> str:
    if not pattern.match(value):
        raise invalid(text("validation.bad_id", what=text(f"validation.{what}"), value=value[:40], example=example))
    return value


def customer_id(value: str) -> str:
    """Validate a customer id such as ``C000001``."""
    return _check(value, CUSTOMER_ID_RE, "customer_id", "C000001")


def order_id(value: str) -> str:
    """Validate a 12-digit order id."""
    return _check(value, ORDER_ID_RE, "order_id", "123456789012")


def return_id(value: str) -> str:
    """Validate a return id such as ``R1234567890``."""
    return _check(value, RETURN_ID_RE, "return_id", "R1234567890")


def _single(args: Mapping[str, Sequence[str]], name: str) -> Optional[str]:
    getlist = getattr(args, "getlist", None)
    values = getlist(name) if callable(getlist) else args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise invalid(text("validation.repeated_argument", name=name))
    return values[0]


def pagination(args: Mapping[str, Sequence[str]]) -> Tuple[int, int]:
    """Read ``limit`` (1..200, default 20) and ``offset`` (>= 0, default 0) from query arguments."""
    raw_limit = _single(args, "limit")
    raw_offset = _single(args, "offset")
    limit, offset = DEFAULT_LIMIT, 0
    if raw_limit is not None:
        if not _UNSIGNED_RE.match(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise invalid(text("validation.bad_limit", maximum=MAX_LIMIT))
        limit = int(raw_limit)
    if raw_offset is not None:
        if not _UNSIGNED_RE.match(raw_offset):
            raise invalid(text("validation.bad_offset"))
        offset = int(raw_offset)
    return limit, offset


def choices(args: Mapping[str, Sequence[str]], name: str, allowed: Sequence[str]) -> Optional[List[str]]:
    """Read a comma-separated list of codes (e.g. ``status=in_transit,shipped``); None when absent."""
    raw = _single(args, name)
    if raw is None:
        return None
    values = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [value for value in values if value not in allowed]
    if not values or unknown:
        raise invalid(text("validation.bad_choice", name=name, value=raw[:60], allowed=", ".join(allowed)))
    return values


def optional_string(args: Mapping[str, Sequence[str]], name: str) -> Optional[str]:
    """Read a single optional query argument."""
    return _single(args, name)


def json_object(body: bytes) -> Dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    if not body:
        raise invalid(text("validation.empty_body"))
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise invalid(text("validation.not_json")) from None
    if not isinstance(value, dict):
        raise invalid(text("validation.not_object"))
    return value


def optional_json_object(body: bytes) -> Dict[str, Any]:
    """Like :func:`json_object`, but an empty body means ``{}``."""
    return json_object(body) if body and body.strip() else {}


def string_field(
    body: Mapping[str, Any],
    name: str,
    *,
    max_length: int = 200,
    pattern: Optional[Pattern[str]] = None,
    required: bool = True,
    hint: str = "",
) -> Optional[str]:
    """Read a non-blank string field, optionally matching ``pattern``."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(text("validation.blank_string", name=name, hint=hint))
    value = value.strip()
    if len(value) > max_length:
        raise invalid(text("validation.too_long", name=name, max_length=max_length))
    if pattern is not None and not pattern.match(value):
        raise invalid(text("validation.bad_format", name=name, hint=hint))
    return value


def int_field(body: Mapping[str, Any], name: str, *, minimum: int = 0, maximum: int = 10**12) -> int:
    """Read an integer field (booleans and floats are rejected)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise invalid(text("validation.bad_integer", name=name, minimum=minimum, maximum=maximum))
    return value


def enum_field(body: Mapping[str, Any], name: str, allowed: Sequence[str]) -> str:
    """Read a string field restricted to ``allowed`` codes."""
    value = body.get(name)
    if not isinstance(value, str) or value not in allowed:
        raise invalid(text("validation.bad_enum", name=name, allowed=", ".join(allowed)))
    return value


def date_field(body: Mapping[str, Any], name: str, required: bool = False) -> Optional[dt.date]:
    """Read a ``YYYY-MM-DD`` date field."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}\Z", value):
        raise invalid(text("validation.bad_date_format", name=name))
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise invalid(text("validation.bad_date", name=name, value=value)) from None


def datetime_field(body: Mapping[str, Any], name: str) -> Optional[dt.datetime]:
    """Read an optional ISO 8601 timestamp with an offset (``2026-11-23T16:30:00+08:00``); aware."""
    value = body.get(name)
    if value is None:
        return None
    message = text("validation.bad_datetime", name=name)
    if not isinstance(value, str) or len(value) > 40:
        raise invalid(message)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise invalid(message) from None
    if moment.tzinfo is None:
        raise invalid(message)
    return moment


def idempotency_key(headers: Mapping[str, str]) -> str:
    """Read the required ``Idempotency-Key`` header (1–128 visible characters)."""
    value = (headers.get("idempotency-key") or "").strip()
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable():
        raise invalid(text("validation.bad_idempotency_key", maximum=MAX_KEY_LENGTH))
    return value


def return_lines(body: Mapping[str, Any]) -> List[Tuple[int, int]]:
    """Read ``items``: a non-empty list of ``{"line_id": int, "quantity": int}`` without repeats."""
    items = body.get("items")
    if not isinstance(items, list) or not items or len(items) > 100:
        raise invalid(text("validation.bad_items"))
    lines: List[Tuple[int, int]] = []
    for entry in items:
        if not isinstance(entry, dict):
            raise invalid(text("validation.bad_item"))
        lines.append(
            (int_field(entry, "line_id", minimum=1, maximum=10**6), int_field(entry, "quantity", minimum=1, maximum=10**6))
        )
    if len({line for line, _ in lines}) != len(lines):
        raise invalid(text("validation.repeated_item"))
    return sorted(lines)


def line_ids(body: Mapping[str, Any]) -> Optional[List[int]]:
    """Read the optional ``line_ids``: a non-empty list of distinct order line numbers; None when absent."""
    values = body.get("line_ids")
    if values is None:
        return None
    if not isinstance(values, list) or not values or len(values) > 100:
        raise invalid(text("validation.bad_line_ids"))
    lines = [int_field({"line_id": value}, "line_id", minimum=1, maximum=10**6) for value in values]
    if len(set(lines)) != len(lines):
        raise invalid(text("validation.repeated_line_id"))
    return sorted(lines)
