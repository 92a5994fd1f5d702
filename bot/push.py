"""Delivery of pushed messages to the channel a conversation lives on.

Every write to a conversation's outbox (:mod:`bot.outbox`; agent replies, system notices, the
rating prompt) appends, in the same atomic step, a notice ``{sender}`` to the Redis stream
:data:`NOTICE_STREAM`. Each channel that can push (the web widget's socket, WeChat's
customer-service API, the app's callback URL) runs a :class:`PushDelivery`: a consumer group of
its own on that stream. For each notice about a conversation registered on its channel it reads
the outbox entries after the channel's delivery cursor, hands them to the channel's ``deliver``
function in order and moves the cursor past what was delivered.

Guarantees:

- Nothing is lost: the outbox itself is the record; a notice is acknowledged only once its
  conversation's outbox has been delivered up to the end, so a crash or a failed delivery leaves
  it pending and another attempt (this process or another) picks it up, with backoff.
- Nothing is delivered twice by two consumers at once: a short per-conversation lock orders the
  deliveries of one conversation, and the cursor only moves forward.
- A message may be delivered twice after a crash between delivery and cursor update (at least
  once); clients de-duplicate by the outbox entry id, which every delivered message carries.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Set, Tuple, Union

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from bot.outbox import Outbox, outbox_key

logger = logging.getLogger(__name__)

NOTICE_STREAM = "push:notices"
"""Stream of ``sender`` notices, one per outbox write."""

NOTICE_MAXLEN = 100_000
"""Approximate number of notices kept (consumer groups read them within seconds)."""

DEFAULT_TTL_S = 30 * 24 * 3600
"""How long a registration and a delivery cursor are kept without activity (as the tracker)."""

LOCK_TTL_MS = 15_000
"""How long one consumer may hold a conversation's delivery lock."""

LOCK_WAIT_S = 2.0
"""How long a consumer waits for another process's delivery to the same conversation."""

_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

BATCH = 100
"""Notices read, and outbox entries delivered, per step."""

MAX_BACKOFF_S = 60.0
"""Longest wait between two attempts at a notice whose delivery failed."""

_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

Entry = Tuple[str, Dict[str, Any]]
Deliver = Callable[[str, Dict[str, str], List[Entry]], Awaitable[Optional[str]]]


class DeliveryFailed(Exception):
    """A channel could not deliver (its API or the shopper's endpoint failed); retried later.

    Args:
        reason: why, for the logs (never the message text).
        last_delivered: id of the last entry that did reach the shopper before the failure.
    """

    def __init__(self, reason: str, last_delivered: Optional[str] = None) -> None:
        super().__init__(reason)
        self.last_delivered = last_delivered


def registration_key(sender: str) -> str:
    """Redis hash recording which channel a conversation lives on: ``conversation:channel:{sender}``."""
    return f"conversation:channel:{sender}"


def cursor_key(channel: str, sender: str) -> str:
    """Redis key of the id of the last outbox entry a channel delivered to a conversation."""
    return f"push:cursor:{channel}:{sender}"


def lock_key(channel: str, sender: str) -> str:
    """Redis key ordering the deliveries of one conversation on one channel."""
    return f"push:lock:{channel}:{sender}"


def backoff_s(attempts: int) -> float:
    """Seconds to wait before attempt ``attempts + 1`` of a failed delivery: 1, 2, 4, ... 60.

    Args:
        attempts: how many times the notice was tried already (at least 1).

    Returns:
        The wait in seconds.
    """
    return min(MAX_BACKOFF_S, float(2 ** max(0, attempts - 1)))


def _text(value: Union[str, bytes]) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


async def register_conversation(redis: Redis, sender: str, channel: str, address: Optional[Mapping[str, str]] = None,
                                ttl_s: int = DEFAULT_TTL_S) -> None:
    """Record the channel (and its address fields, e.g. an OpenID) a conversation lives on.

    Messages already in the outbox when a conversation is first registered are not pushed again
    (the channel showed or fetched them itself); everything written afterwards is.

    Args:
        redis: the Redis client.
        sender: the conversation id.
        channel: the channel's name (``web``, ``wechat``, ``app``).
        address: channel-specific fields stored with the registration; empty values remove a field.
        ttl_s: how long the registration lives without being renewed.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    key = registration_key(sender)
    fields = {"channel": channel, **{name: value for name, value in (address or {}).items() if value}}
    removed = [name for name, value in (address or {}).items() if not value]
    if not await redis.exists(key):
        last = await redis.xrevrange(outbox_key(sender), max="+", min="-", count=1)
        await redis.hsetnx(key, "since", _text(last[0][0]) if last else "0-0")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        if removed:
            pipe.hdel(key, *removed)
        pipe.expire(key, ttl_s)
        await pipe.execute()


async def conversation_registration(redis: Redis, sender: str) -> Dict[str, str]:
    """The registration of a conversation (empty when none)."""
    raw = await redis.hgetall(registration_key(sender))
    return {_text(name): _text(value) for name, value in raw.items()}


class PushDelivery:
    """Consumer of the notice stream for one channel.

    Args:
        redis: the Redis client (any ``decode_responses``).
        channel: the channel whose conversations this consumer delivers to.
        deliver: ``deliver(sender, registration, entries)`` sends ``entries`` (``(id, message)``
            pairs, oldest first) to the shopper and returns the id of the last one sent (None for
            none); it raises :class:`DeliveryFailed` when it could not, to be retried with backoff.
        consumer: this consumer's name in the group (host, process and a random part by default).
        ttl_s: lifetime of the delivery cursors.
        block_ms: how long one read waits for new notices.
        concurrency: conversations delivered to at the same time.
    """

    def __init__(self, redis: Redis, channel: str, deliver: Deliver, *, consumer: Optional[str] = None,
                 ttl_s: int = DEFAULT_TTL_S, block_ms: int = 1000, concurrency: int = 16) -> None:
        self.redis = redis
        self.channel = channel
        self.deliver = deliver
        self.group = f"push:{channel}"
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.ttl_s = ttl_s
        self.block_ms = block_ms
        self._slots = asyncio.Semaphore(concurrency)
        self._task: Optional[asyncio.Task[None]] = None
        self._inflight: Set[asyncio.Task[None]] = set()
        self._stopping = False
        self._local_locks: Dict[str, asyncio.Lock] = {}

    async def ensure_group(self) -> None:
        """Create the channel's consumer group (and the stream) if they do not exist yet."""
        try:
            await self.redis.xgroup_create(NOTICE_STREAM, self.group, id="$", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def start(self) -> None:
        """Start consuming in the background (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        await self.ensure_group()
        self._task = asyncio.create_task(self._run(), name=f"push-{self.channel}")

    async def stop(self) -> None:
        """Stop consuming; deliveries under way finish first, unacknowledged notices stay pending."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except _REDIS_FAILURES as error:
                logger.warning("push.%s.redis_failed error=%s", self.channel, type(error).__name__)
                await asyncio.sleep(1.0)
            except Exception:  # a bug in a deliver function must not end delivery for everyone
                logger.exception("push.%s.step_failed", self.channel)
                await asyncio.sleep(1.0)

    async def step(self) -> int:
        """Retry due pending notices, then read new ones (waiting up to ``block_ms``); returns how many were handled."""
        notices = await self._due_pending()
        block = None if notices else self.block_ms
        try:
            read = await self.redis.xreadgroup(self.group, self.consumer, {NOTICE_STREAM: ">"}, count=BATCH, block=block)
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.ensure_group()  # the stream was deleted (e.g. FLUSHDB): start again
            read = []
        for _, entries in read or []:
            notices.extend((_text(notice_id), _text(fields.get(b"sender", fields.get("sender", ""))))
                           for notice_id, fields in entries)
        by_sender: Dict[str, List[str]] = {}
        for notice_id, sender in notices:
            by_sender.setdefault(sender, []).append(notice_id)
        for sender, notice_ids in by_sender.items():
            await self._slots.acquire()
            task = asyncio.create_task(self._handle(sender, notice_ids))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(notices)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _due_pending(self) -> List[Tuple[str, str]]:
        """Notices that failed before and whose backoff has passed, claimed for this consumer."""
        try:
            pending = await self.redis.xpending_range(NOTICE_STREAM, self.group, min="-", max="+", count=BATCH, idle=1000)
        except ResponseError as error:
            if "NOGROUP" in str(error):
                return []
            raise
        due = [_text(item["message_id"]) for item in pending
               if item["time_since_delivered"] >= backoff_s(int(item["times_delivered"])) * 1000]
        if not due:
            return []
        claimed = await self.redis.xclaim(NOTICE_STREAM, self.group, self.consumer, min_idle_time=1000, message_ids=due)
        notices = []
        for notice_id, fields in claimed:
            if fields is None:
                continue
            notices.append((_text(notice_id), _text(fields.get(b"sender", fields.get("sender", "")))))
        return notices

    async def _handle(self, sender: str, notice_ids: List[str]) -> None:
        try:
            done = await self.deliver_pending(sender)
        except _REDIS_FAILURES as error:
            logger.warning("push.%s.redis_failed sender=%s error=%s", self.channel, sender, type(error).__name__)
            return
        except Exception:
            logger.exception("push.%s.deliver_crashed sender=%s", self.channel, sender)
            return
        if done is not None:
            await self.redis.xack(NOTICE_STREAM, self.group, *notice_ids)

    async def deliver_pending(self, sender: str) -> Optional[int]:
        """Deliver what the channel has not yet delivered to a conversation, now.

        Args:
            sender: the conversation id.

        Returns:
            How many messages were delivered (0 when the conversation is not on this channel or
            nothing is new); None when they could not all be delivered now (retried later).
        """
        if not sender:
            return 0
        registration = await conversation_registration(self.redis, sender)
        if registration.get("channel") != self.channel:
            return 0
        local = self._local_locks.setdefault(sender, asyncio.Lock())
        try:
            async with local:
                token = uuid.uuid4().hex
                if not await self._acquire(sender, token):
                    return None  # another process is delivering to this conversation: try again later
                try:
                    return await self._deliver_locked(sender, registration)
                finally:
                    await self.redis.eval(_RELEASE, 1, lock_key(self.channel, sender), token)
        finally:
            if not local.locked() and self._local_locks.get(sender) is local:
                del self._local_locks[sender]

    async def _acquire(self, sender: str, token: str) -> bool:
        """Take the conversation's delivery lock, waiting a little while another process holds it."""
        deadline = asyncio.get_running_loop().time() + LOCK_WAIT_S
        while not await self.redis.set(lock_key(self.channel, sender), token, nx=True, px=LOCK_TTL_MS):
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _deliver_locked(self, sender: str, registration: Dict[str, str]) -> Optional[int]:
        outbox = Outbox(self.redis, ttl_s=self.ttl_s)
        stored = await self.redis.get(cursor_key(self.channel, sender))
        cursor = _text(stored) if stored else registration.get("since", "0-0")
        delivered = 0
        while True:
            messages, _ = await outbox.fetch(sender, after=cursor, limit=BATCH)
            if not messages:
                return delivered
            entries = [(message.pop("cursor"), message) for message in messages]
            try:
                last = await self.deliver(sender, registration, entries)
            except DeliveryFailed as failure:
                await self._advance(sender, failure.last_delivered)
                logger.warning("push.%s.delivery_failed sender=%s reason=%s", self.channel, sender, failure)
                return None
            await self._advance(sender, last)
            if last is None:
                return None
            delivered += sum(1 for entry_id, _ in entries if _id_key(entry_id) <= _id_key(last))
            if last != entries[-1][0]:
                return None
            cursor = last

    async def _advance(self, sender: str, last: Optional[str]) -> None:
        if last:
            await self.redis.set(cursor_key(self.channel, sender), last, ex=self.ttl_s)


def _id_key(entry_id: str) -> Tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
