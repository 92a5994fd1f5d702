"""Button payloads a shopper may send: only those the bot offered in the conversation.

Rasa reads any text that begins with ``/`` as an intent with entities (``/handoff{"handoff_reason":
"policy_undecided"}``), skipping NLU: typed by a shopper, it would set internal slots. The
channels therefore remember the payloads of the buttons each conversation was offered (the bot's
answers, :func:`remember_offered`; pushed messages such as the rating question are read from the
conversation's outbox) and pass a ``/`` text to Rasa as a payload only when it is one of them
(:func:`shopper_text`). Any other ``/`` text reaches the bot as ordinary words: its leading slash
becomes U+2215 (∕), which reads the same and which Rasa does not take for a payload.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Mapping

from redis.asyncio import Redis

from bot.outbox import outbox_key

PAYLOAD_PREFIX = "/"
NEUTRAL_PREFIX = "\u2215"
"""What a shopper's leading ``/`` becomes when the text is no offered payload."""

MAX_REMEMBERED = 200
"""Payloads remembered per conversation (the most recent)."""

RECENT_PUSHED = 20
"""Pushed messages whose buttons count as offered (the most recent)."""


def offered_key(sender_id: str) -> str:
    """Redis key of the payloads offered to a conversation: ``conversation:offered:{sender_id}``."""
    return f"conversation:offered:{sender_id}"


def payloads_of(messages: Iterable[Mapping[str, Any]]) -> List[str]:
    """The payloads of the buttons (and quick replies) of Rasa REST-format messages."""
    found: List[str] = []
    for message in messages:
        for key in ("buttons", "quick_replies"):
            for button in message.get(key) or []:
                payload = button.get("payload") if isinstance(button, Mapping) else None
                if isinstance(payload, str) and payload.startswith(PAYLOAD_PREFIX) and payload not in found:
                    found.append(payload)
    return found


async def remember_offered(redis: Redis, sender_id: str, messages: Iterable[Mapping[str, Any]], ttl_s: int) -> None:
    """Remember the button payloads the bot just offered a conversation.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    payloads = payloads_of(messages)
    if not payloads:
        return
    key = offered_key(sender_id)
    now = await redis.time()
    score = float(now[0]) + float(now[1]) / 1e6
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {payload: score for payload in payloads})
        pipe.zremrangebyrank(key, 0, -MAX_REMEMBERED - 1)
        pipe.expire(key, ttl_s)
        await pipe.execute()


async def was_offered(redis: Redis, sender_id: str, payload: str) -> bool:
    """Whether ``payload`` is a button the conversation was offered (by the bot or a pushed message).

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    if await redis.zscore(offered_key(sender_id), payload) is not None:
        return True
    for _, fields in await redis.xrevrange(outbox_key(sender_id), count=RECENT_PUSHED):
        raw = fields.get("message") if isinstance(fields, Mapping) else None
        try:
            message = json.loads(raw) if raw else None
        except ValueError:
            continue
        if isinstance(message, dict) and payload in payloads_of([message]):
            return True
    return False


def neutralised(text: str) -> str:
    """``text`` with its leading ``/`` made ordinary (no payload for Rasa)."""
    return NEUTRAL_PREFIX + text[len(PAYLOAD_PREFIX):] if text.startswith(PAYLOAD_PREFIX) else text


async def shopper_text(redis: Redis, sender_id: str, text: str) -> str:
    """The text to hand Rasa: an offered payload as it is, any other ``/`` text as ordinary words.

    When Redis cannot answer, the text is neutralised (fails closed): a real button press then
    reaches the bot as words, which NLU still understands for the usual buttons.
    """
    if not text.startswith(PAYLOAD_PREFIX):
        return text
    try:
        if await was_offered(redis, sender_id, text):
            return text
    except Exception:
        return neutralised(text)
    return neutralised(text)
