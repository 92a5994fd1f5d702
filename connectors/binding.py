"""Conversation ownership: a conversation id belongs to whoever sent its first message.

The key ``conversation:owner:{sender_id}`` holds the verified customer id of the conversation's
owner, or :data:`ANONYMOUS_OWNER` for a conversation started without a valid signature. It is
created atomically (``SET NX``) by the first message, expires with the tracker and is refreshed on
every accepted message. The marker cannot collide with a customer id: ``~`` is not allowed in one.
The key is shared by every channel, so one channel cannot be used to take over another's
conversation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from redis.asyncio import Redis

ANONYMOUS_OWNER = "~anonymous"
"""Owner marker of a conversation started by an anonymous shopper."""

_BIND_ATTEMPTS = 3


def owner_key(sender_id: str) -> str:
    """Redis key holding a conversation's owner.

    Args:
        sender_id: the conversation id.

    Returns:
        ``conversation:owner:{sender_id}``.
    """
    return f"conversation:owner:{sender_id}"


def owner_of(customer_id: Optional[str]) -> str:
    """Owner value for a verified customer id, or the anonymous marker for None.

    Args:
        customer_id: the verified customer id, None for an anonymous shopper.

    Returns:
        The value stored under :func:`owner_key`.
    """
    return customer_id if customer_id else ANONYMOUS_OWNER


@dataclass(frozen=True)
class Binding:
    """Outcome of binding a message's sender to a conversation.

    Attributes:
        allowed: the sender owns the conversation (newly or already).
        created: this call created the binding (first message of the conversation).
    """

    allowed: bool
    created: bool


def _text(value: object) -> Optional[str]:
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


async def bind_conversation(redis: Redis, sender_id: str, owner: str, ttl_s: int) -> Binding:
    """Bind a conversation to an owner, or check that it is already bound to that owner.

    Args:
        redis: an asyncio Redis client.
        sender_id: the conversation id.
        owner: :func:`owner_of` the message's sender.
        ttl_s: seconds the binding lives without use.

    Returns:
        Whether the owner may use the conversation and whether the binding is new.

    Raises:
        redis.exceptions.RedisError: Redis could not be reached.
    """
    key = owner_key(sender_id)
    for _ in range(_BIND_ATTEMPTS):
        if await redis.set(key, owner, nx=True, ex=ttl_s):
            return Binding(allowed=True, created=True)
        current = _text(await redis.get(key))
        if current is None:
            continue  # expired between SET NX and GET: try to bind again
        if current != owner:
            return Binding(allowed=False, created=False)
        await redis.expire(key, ttl_s)
        return Binding(allowed=True, created=False)
    return Binding(allowed=False, created=False)


async def conversation_owner(redis: Redis, sender_id: str) -> Optional[str]:
    """The owner a conversation is bound to.

    Args:
        redis: an asyncio Redis client.
        sender_id: the conversation id.

    Returns:
        The owner's customer id, :data:`ANONYMOUS_OWNER`, or None for an unknown conversation.

    Raises:
        redis.exceptions.RedisError: Redis could not be reached.
    """
    return _text(await redis.get(owner_key(sender_id)))
