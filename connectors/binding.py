"""Conversation ownership: a conversation id belongs to whoever sent its first message.

The key ``conversation:owner:{sender_id}`` holds the verified customer id of the conversation's
owner, or :data:`ANONYMOUS_OWNER` for a conversation started without a valid signature. It is
created atomically (``SET NX``) by the first message, expires with the tracker and is refreshed on
every accepted message. The marker cannot collide with a customer id: ``~`` is not allowed in one.
The key is shared by every channel, so one channel cannot be used to take over another's
conversation.

A message is admitted in one round trip (:func:`admit`): the binding, the count of a new
conversation, the conversation's turn (``conversation:turn:{sender_id}``, one message answered at a
time) and, for an explicit 「转人工」, the human queue (:mod:`handoff.express`). At a sales peak
a channel's every round trip waits for the worker's event loop between other shoppers' bot turns;
one round trip puts the shopper in the queue before any of those turns runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from redis.asyncio import Redis

from handoff.conversation import script
from handoff.express import EXPRESS_LUA, express_args, express_keys
from handoff.models import HandoffRequest
from handoff.scripts import STATS_TTL_S

ANONYMOUS_OWNER = "~anonymous"
"""Owner marker of a conversation started by an anonymous shopper."""

UNPROVEN_ANONYMOUS = "~unproven"
"""Owner argument of an anonymous sender who did not present the conversation's token: such a
sender may start a conversation, never continue one."""

TURN_LOCK_TTL_MS = 10_000
"""The lease of a conversation's turn: its holder renews it while it answers (for
:data:`TURN_MAX_S` at most), so a crashed process's turn ends within this time."""

TURN_MAX_S = 60.0
"""Longest a message may hold its conversation's turn, renewals included."""


def turn_key(sender_id: str) -> str:
    """Redis key held while one message of a conversation is being answered: ``conversation:turn:{sender_id}``."""
    return f"conversation:turn:{sender_id}"


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


@dataclass(frozen=True)
class Admission:
    """Outcome of admitting one shopper message (:func:`admit`).

    Attributes:
        binding: whether the sender may use the conversation and whether it is new.
        turn_token: the token of the conversation's turn, now held for this message; None when it
            was not asked for or another message of the conversation has the turn.
        express: the handoff queued for an explicit request for a human; None when none was.
    """

    binding: Binding
    turn_token: Optional[str] = None
    express: Optional[HandoffRequest] = None


ADMIT = EXPRESS_LUA + """
-- KEYS: owner(sender), day stats, turn(sender), then the four keys of express_enqueue.
-- ARGV: owner ('~unproven': an anonymous sender without the conversation's token, who may only
--       start a new conversation), binding ttl s, stats ttl s, turn token ('' takes no turn), turn ttl ms,
--       express ('1' queues the request), then the seven arguments of express_enqueue.
-- Answers {allowed, created, turn taken, queued}.
local owner = ARGV[1]
local new_only = 0
if owner == '~unproven' then owner = '~anonymous' new_only = 1 end
local current = redis.call('GET', KEYS[1])
local created = 0
if not current then
  redis.call('SET', KEYS[1], owner, 'EX', ARGV[2])
  created = 1
  redis.call('HINCRBY', KEYS[2], 'conversations', 1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
elseif new_only == 1 or current ~= owner then
  return {0, 0, 0, 0}
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local turn = 0
if ARGV[4] ~= '' and redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5]) then turn = 1 end
local queued = 0
if turn == 1 and ARGV[6] == '1' then
  queued = express_enqueue({KEYS[4], KEYS[5], KEYS[6], KEYS[7]}, {ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13]})
end
return {1, created, turn, queued}
"""
"""One round trip admits a message: owner bound or checked (a new conversation counted for the
desk's stats), the conversation's turn taken when free, and an explicit request for a human queued
when the turn is this message's (a message waiting for the turn of the one before is routed by
what that turn leaves)."""


async def admit(
    redis: Redis,
    sender_id: str,
    customer_id: Optional[str],
    ttl_s: int,
    stats_key: str,
    turn_token: Optional[str] = None,
    express: Optional[HandoffRequest] = None,
    proven: bool = True,
    owner: Optional[str] = None,
) -> Admission:
    """Bind a conversation to its owner (or check it), take its turn, queue an explicit 「转人工」.

    Args:
        redis: an asyncio Redis client.
        sender_id: the conversation id.
        customer_id: the verified customer id, None for an anonymous shopper.
        ttl_s: seconds the binding lives without use.
        stats_key: the day's counters, where a new conversation is counted.
        turn_token: a fresh token to take the conversation's turn with (:func:`turn_key`, held
            :data:`TURN_LOCK_TTL_MS` at most); None takes no turn.
        express: the request to queue (:func:`handoff.express.express_request`); queued only
            when the turn is taken.
        proven: for an anonymous sender, whether they presented the conversation's token; an
            unproven one is allowed only when the conversation is new.
        owner: the owner value to bind or check instead of :func:`owner_of` ``customer_id`` (a
            channel whose platform vouches for the sender, such as WeChat's ``~wechat``).

    Returns:
        What was done. Nothing is done for a sender who may not use the conversation.

    Raises:
        redis.exceptions.RedisError: Redis could not be reached.
    """
    allowed, created, turn_taken, queued = (int(value) for value in await script(redis, ADMIT)(
        keys=[owner_key(sender_id), stats_key, turn_key(sender_id), *express_keys(sender_id, customer_id)],
        args=[owner or (owner_of(customer_id) if customer_id or proven else UNPROVEN_ANONYMOUS), ttl_s, STATS_TTL_S,
              turn_token or "", TURN_LOCK_TTL_MS,
              "1" if express is not None and turn_token else "0", *(express_args(express) if express is not None else [""] * 7)],
    ))
    return Admission(
        binding=Binding(allowed=bool(allowed), created=bool(created)),
        turn_token=turn_token if turn_taken else None,
        express=express if queued == 1 else None,
    )


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
