"""Per-conversation outbox: messages that reach a shopper after the webhook has answered.

Agent replies from the desk, notices from the system and late bot messages are appended to a
Redis stream ``outbox:{sender_id}``; the shopper's client fetches them with a cursor (the stream
entry id of the last message it has seen). Each entry holds one field ``message``: a JSON object
in Rasa's REST output format (``recipient_id``, ``text``, ``buttons``, ``image``, ``custom``, ...)
plus ``from`` (``agent``, ``bot`` or ``system``) and ``sent_at`` (ISO 8601 time with offset).

Streams are trimmed to about :data:`DEFAULT_MAXLEN` entries and expire with the tracker
(``TRACKER_TTL_S``), so an outbox never outlives the conversation it belongs to.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from redis.asyncio import Redis

from bot.settings import get_settings

logger = logging.getLogger(__name__)

DEFAULT_MAXLEN = 1000
"""Approximate number of entries kept per conversation."""

MAX_FETCH_LIMIT = 1000
"""Largest page :meth:`Outbox.fetch` returns."""

MESSAGE_SOURCES = frozenset({"agent", "bot", "system"})
"""Allowed values of a message's ``from`` field."""

NOTICE_STREAM = "push:notices"
"""Stream announcing every outbox write (field ``sender``), read by :class:`bot.push.PushDelivery`."""

NOTICE_MAXLEN = 100_000
"""Approximate number of notices kept (the channels' consumers read them within seconds)."""


def lua_notice(outbox_key_expr: str) -> str:
    """A Lua statement that announces a write to the outbox at ``outbox_key_expr`` (e.g. ``KEYS[3]``).

    Scripts that append to an outbox run it in the same atomic step, so no write goes unannounced.
    """
    return (f"redis.call('XADD', '{NOTICE_STREAM}', 'MAXLEN', '~', {NOTICE_MAXLEN}, '*', "
            f"'sender', string.sub({outbox_key_expr}, {len('outbox:') + 1}))")


CURSOR_PATTERN = re.compile(r"^\d+-\d+$")
"""Syntax of a cursor: a Redis stream entry id."""

_MAX_ID_PART = 2**64 - 1


class InvalidCursor(ValueError):
    """A cursor is not a Redis stream entry id (``<milliseconds>-<sequence>``)."""


def outbox_key(sender_id: str) -> str:
    """Redis key of a conversation's outbox stream.

    Args:
        sender_id: the conversation id.

    Returns:
        ``outbox:{sender_id}``.
    """
    return f"outbox:{sender_id}"


def validate_cursor(cursor: Any) -> str:
    """Check that a value is a usable cursor.

    Args:
        cursor: the value to check.

    Returns:
        The cursor, unchanged.

    Raises:
        InvalidCursor: the value is not ``<milliseconds>-<sequence>`` with both parts fitting
            in 64 bits.
    """
    if not isinstance(cursor, str) or CURSOR_PATTERN.fullmatch(cursor) is None:
        raise InvalidCursor("a cursor looks like 1700000000000-0")
    milliseconds, sequence = (int(part) for part in cursor.split("-"))
    if milliseconds > _MAX_ID_PART or sequence > _MAX_ID_PART:
        raise InvalidCursor("cursor out of range")
    return cursor


def _next_id(cursor: str) -> Optional[str]:
    """The smallest stream id strictly greater than ``cursor``; None past the last possible id."""
    milliseconds, sequence = (int(part) for part in cursor.split("-"))
    if sequence < _MAX_ID_PART:
        return f"{milliseconds}-{sequence + 1}"
    if milliseconds < _MAX_ID_PART:
        return f"{milliseconds + 1}-0"
    return None


def _text(value: Union[str, bytes]) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class Outbox:
    """Messages pushed to conversations, stored in one Redis stream per conversation.

    Args:
        redis: an asyncio Redis client (``decode_responses`` either way).
        ttl_s: seconds an idle outbox is kept; ``TRACKER_TTL_S`` when omitted.
        maxlen: approximate number of entries kept per conversation.
    """

    def __init__(self, redis: Redis, ttl_s: Optional[int] = None, maxlen: int = DEFAULT_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError("maxlen must be positive")
        self.redis = redis
        self.ttl_s = int(ttl_s if ttl_s is not None else get_settings().tracker_ttl_s)
        if self.ttl_s < 1:
            raise ValueError("ttl_s must be positive")
        self.maxlen = maxlen

    @staticmethod
    def _prepare(sender_id: str, message: Mapping[str, Any]) -> Dict[str, Any]:
        if not isinstance(sender_id, str) or not sender_id:
            raise ValueError("sender_id must be a non-empty string")
        if not isinstance(message, Mapping):
            raise TypeError("message must be a mapping in Rasa's REST output format")
        prepared = {key: value for key, value in message.items() if key != "cursor"}
        prepared.setdefault("recipient_id", sender_id)
        source = prepared.setdefault("from", "system")
        if source not in MESSAGE_SOURCES:
            raise ValueError(f"'from' must be one of {sorted(MESSAGE_SOURCES)}")
        if not prepared.get("sent_at"):
            prepared["sent_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        return prepared

    async def push(self, sender_id: str, message: Mapping[str, Any]) -> str:
        """Append a message to a conversation's outbox.

        ``recipient_id`` defaults to the conversation id, ``from`` to ``system`` and ``sent_at`` to
        the current time; a ``cursor`` key in the message is ignored (the stream assigns it).

        Args:
            sender_id: the conversation id.
            message: the message in Rasa's REST output format, plus ``from`` and ``sent_at``.

        Returns:
            The new message's cursor (its stream entry id).

        Raises:
            TypeError: the message is not a mapping.
            ValueError: the conversation id is empty, ``from`` is not allowed or the message is
                not JSON-serialisable.
            redis.exceptions.RedisError: Redis could not be reached.
        """
        prepared = self._prepare(sender_id, message)
        try:
            payload = json.dumps(prepared, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise ValueError("message is not JSON-serialisable") from error
        key = outbox_key(sender_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(key, {"message": payload}, maxlen=self.maxlen, approximate=True)
            pipe.expire(key, self.ttl_s)
            pipe.xadd(NOTICE_STREAM, {"sender": sender_id}, maxlen=NOTICE_MAXLEN, approximate=True)
            entry_id, _, _ = await pipe.execute()
        return _text(entry_id)

    async def fetch(
        self, sender_id: str, after: Optional[str] = None, limit: int = 100
    ) -> Tuple[List[Dict[str, Any]], Optional[str]]:
        """Read a conversation's messages that come after a cursor, oldest first.

        Args:
            sender_id: the conversation id.
            after: the cursor of the last message already seen (exclusive); from the start when
                None or empty.
            limit: at most this many messages (1 to :data:`MAX_FETCH_LIMIT`).

        Returns:
            The messages, each with its ``cursor``, and the cursor to pass next time: the last
            message's cursor, or ``after`` when there is nothing new.

        Raises:
            InvalidCursor: ``after`` is not a stream entry id.
            ValueError: ``limit`` is out of range.
            redis.exceptions.RedisError: Redis could not be reached.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_FETCH_LIMIT:
            raise ValueError(f"limit must be an integer from 1 to {MAX_FETCH_LIMIT}")
        if after:
            validate_cursor(after)
            start = _next_id(after)
            if start is None:
                return [], after
        else:
            after = None
            start = "-"
        entries = await self.redis.xrange(outbox_key(sender_id), min=start, max="+", count=limit)
        messages: List[Dict[str, Any]] = []
        cursor = after
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            cursor = entry_id
            decoded = {_text(name): _text(value) for name, value in fields.items()}
            try:
                message = json.loads(decoded["message"])
                if not isinstance(message, dict):
                    raise ValueError("not an object")
            except (KeyError, ValueError):
                logger.warning("outbox.entry.malformed key=%s entry=%s", outbox_key(sender_id), entry_id)
                continue
            message["cursor"] = entry_id
            messages.append(message)
        return messages, cursor
