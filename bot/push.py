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
- A notice is not retried for ever: after ``max_attempts`` (``PUSH_MAX_ATTEMPTS``, 8) attempts it
  becomes a *dead letter* in the channel's stream :func:`dead_letter_key` (who, why, how often,
  the first undelivered outbox entry) and is acknowledged. The delivery cursor stays where it was:
  the undelivered messages stay in the outbox (and fetchable by the shopper's app), the next
  message of the conversation carries them along, and a supervisor's retry at the desk
  (:func:`retry_dead_letter`) announces the conversation again.

Each channel counts its delivered messages, failed attempts, retries and new dead letters for its
Prometheus page (:mod:`bot.metrics`, ``shop_push_*``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from bot import metrics
from bot.outbox import InvalidCursor, Outbox, outbox_key, validate_cursor

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

MAX_DELIVERY_ATTEMPTS = 8
"""Attempts at a notice before it becomes a dead letter (``PUSH_MAX_ATTEMPTS``)."""

MIN_RETRY_IDLE_MS = 1000
"""A pending notice younger than this is never taken over (its consumer may still be at it)."""

PUSH_CHANNELS = ("web", "wechat", "app")
"""The channels that push, each with its consumer group and dead-letter stream."""

DEAD_LETTER_MAXLEN = 10_000
"""Approximate number of dead letters kept per channel (the oldest are trimmed)."""

FAILURE_TTL_S = 7 * 24 * 3600
"""How long the reason of a conversation's last failed delivery is kept."""

_DEAD_LETTER_ID = re.compile(r"(?P<channel>[a-z]{1,16}):(?P<entry>[0-9]{1,20}-[0-9]{1,20})")

_WRITE_DEAD_LETTER = """
local open = redis.call('GET', KEYS[2])
local created = 0
if not open or #redis.call('XRANGE', KEYS[1], open, open) == 0 then
  local fields = cjson.decode(ARGV[4])
  open = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
  created = 1
end
redis.call('SET', KEYS[2], open, 'EX', ARGV[3])
for i = 5, #ARGV do redis.call('XACK', KEYS[3], ARGV[2], ARGV[i]) end
redis.call('DEL', KEYS[4])
return {open, created}
"""
"""Write a conversation's dead letter unless one is still open (then join it), acknowledge its notices.

KEYS: the dead-letter stream, the conversation's open dead letter, the notice stream, the last
failure. ARGV: maximum length, consumer group, lifetime of the open marker, the fields (a JSON
list of names and values), the notice ids.
"""

_RETRY_DEAD_LETTER = f"""
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', {NOTICE_MAXLEN}, '*', 'sender', ARGV[2])
return 1
"""
"""Take a dead letter out of its stream and announce its conversation again, in one step.

KEYS: the dead-letter stream, the conversation's open dead letter, the notice stream. ARGV: the
dead letter's entry id, its conversation.
"""

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


def dead_letter_key(channel: str) -> str:
    """Redis stream of a channel's dead letters: ``push:dead:{channel}``."""
    return f"push:dead:{channel}"


def open_dead_letter_key(channel: str, sender: str) -> str:
    """Redis key of a conversation's open dead letter (its entry id): later notices that give up join it."""
    return f"push:dead-open:{channel}:{sender}"


def failure_key(channel: str, sender: str) -> str:
    """Redis hash of the last failed delivery to a conversation (``reason``, ``at``), kept :data:`FAILURE_TTL_S`."""
    return f"push:failure:{channel}:{sender}"


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


@dataclass(frozen=True)
class DeadLetter:
    """A conversation whose pushed messages could not be delivered after every attempt.

    Attributes:
        id: ``{channel}:{stream entry id}``, what the desk's retry names.
        channel: the channel that gave up.
        sender: the conversation id.
        reason: why the last attempt failed (``http_500``, ``redirect``, ``forbidden_address`` ...).
        attempts: how many attempts were made.
        first_undelivered: id of the first outbox entry not delivered (still in the outbox).
        at: when it gave up, Unix time.
    """

    id: str
    channel: str
    sender: str
    reason: str
    attempts: int
    first_undelivered: str
    at: float

    def as_json(self) -> Dict[str, Any]:
        """The dead letter as the desk shows it."""
        return {"id": self.id, "channel": self.channel, "sender": self.sender, "reason": self.reason,
                "attempts": self.attempts, "first_undelivered": self.first_undelivered, "at": self.at}


def _dead_letter(channel: str, entry_id: Any, fields: Mapping[Any, Any]) -> DeadLetter:
    values = {_text(name): _text(value) for name, value in fields.items()}
    try:
        attempts, at = int(values.get("attempts", "0")), float(values.get("at", "0"))
    except ValueError:
        attempts, at = 0, 0.0
    return DeadLetter(f"{channel}:{_text(entry_id)}", channel, values.get("sender", ""), values.get("reason", ""), attempts,
                      values.get("first_undelivered", ""), at)


def parse_dead_letter_id(text: str) -> Optional[Tuple[str, str]]:
    """``(channel, stream entry id)`` of a dead letter's id, None when it is not one (also for an entry
    id whose parts do not fit in 64 bits: Redis refuses those)."""
    match = _DEAD_LETTER_ID.fullmatch(text)
    if match is None or match.group("channel") not in PUSH_CHANNELS:
        return None
    try:
        validate_cursor(match.group("entry"))
    except InvalidCursor:
        return None
    return match.group("channel"), match.group("entry")


async def dead_letters(redis: Redis, channels: Iterable[str] = PUSH_CHANNELS, count: int = 100) -> List[DeadLetter]:
    """The most recent dead letters of the channels, newest first.

    Args:
        redis: the Redis client.
        channels: the channels to look at.
        count: how many to return at most.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    found: List[DeadLetter] = []
    for channel in channels:
        entries = await redis.xrevrange(dead_letter_key(channel), max="+", min="-", count=count)
        found.extend(_dead_letter(channel, entry_id, fields) for entry_id, fields in entries)
    found.sort(key=lambda letter: _id_key(letter.id.partition(":")[2]), reverse=True)
    return found[:count]


async def dead_letter_count(redis: Redis, channels: Iterable[str] = PUSH_CHANNELS) -> int:
    """How many dead letters the channels keep.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    total = 0
    for channel in channels:
        total += int(await redis.xlen(dead_letter_key(channel)))
    return total


async def retry_dead_letter(redis: Redis, dead_letter_id: str) -> Optional[str]:
    """Remove a dead letter and announce its conversation on :data:`NOTICE_STREAM` again (atomically).

    The channel then delivers everything after its cursor, the dead letter's messages first, with
    a full set of attempts.

    Args:
        redis: the Redis client.
        dead_letter_id: the dead letter's :attr:`DeadLetter.id`.

    Returns:
        The conversation id announced; None when there is no such dead letter (or the id is not one).

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    parsed = parse_dead_letter_id(dead_letter_id)
    if parsed is None:
        return None
    channel, entry_id = parsed
    found = await redis.xrange(dead_letter_key(channel), min=entry_id, max=entry_id, count=1)
    sender = _dead_letter(channel, entry_id, found[0][1]).sender if found else ""
    if not sender:
        return None
    retried = await redis.eval(_RETRY_DEAD_LETTER, 3, dead_letter_key(channel), open_dead_letter_key(channel, sender), NOTICE_STREAM,
                               entry_id, sender)
    return sender if int(retried) else None


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
        max_attempts: attempts at a notice before it becomes a dead letter (``PUSH_MAX_ATTEMPTS`` of
            :func:`bot.settings.load_settings` when omitted).
        backoff: seconds to wait after ``n`` failed attempts (:func:`backoff_s` by default).
        min_idle_ms: a pending notice younger than this is never taken over.
    """

    def __init__(self, redis: Redis, channel: str, deliver: Deliver, *, consumer: Optional[str] = None,
                 ttl_s: int = DEFAULT_TTL_S, block_ms: int = 1000, concurrency: int = 16, max_attempts: Optional[int] = None,
                 backoff: Callable[[int], float] = backoff_s, min_idle_ms: int = MIN_RETRY_IDLE_MS) -> None:
        if max_attempts is None:
            from bot.settings import load_settings

            max_attempts = load_settings().push_max_attempts
        self.redis = redis
        self.channel = channel
        self.deliver = deliver
        self.group = f"push:{channel}"
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.ttl_s = ttl_s
        self.block_ms = block_ms
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.min_idle_ms = min_idle_ms
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
            notices.extend((_text(notice_id), _notice_sender(fields)) for notice_id, fields in entries)
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
        """Notices that failed before and whose backoff has passed, claimed for this consumer.

        Those tried ``max_attempts`` times already are not returned: they become dead letters.
        """
        try:
            pending = await self.redis.xpending_range(NOTICE_STREAM, self.group, min="-", max="+", count=BATCH,
                                                      idle=self.min_idle_ms)
        except ResponseError as error:
            if "NOGROUP" in str(error):
                return []
            raise
        due = [(_text(item["message_id"]), int(item["times_delivered"])) for item in pending
               if item["time_since_delivered"] >= self.backoff(int(item["times_delivered"])) * 1000]
        exhausted = {notice_id: attempts for notice_id, attempts in due if attempts >= self.max_attempts}
        if exhausted:
            await self._give_up(exhausted)
        retry = [notice_id for notice_id, _ in due if notice_id not in exhausted]
        if not retry:
            return []
        claimed = await self.redis.xclaim(NOTICE_STREAM, self.group, self.consumer, min_idle_time=self.min_idle_ms,
                                          message_ids=retry)
        notices = []
        for notice_id, fields in claimed:
            if fields is None:
                continue
            notices.append((_text(notice_id), _notice_sender(fields)))
        metrics.push_retried(self.channel, len(notices))
        return notices

    async def _give_up(self, exhausted: Mapping[str, int]) -> None:
        """Turn notices tried ``max_attempts`` times into dead letters (one per conversation).

        They are claimed first without counting an attempt (``JUSTID``), so that of several
        consumers seeing them due only one writes the dead letter.

        Args:
            exhausted: notice id → attempts made.
        """
        claimed = await self.redis.xclaim(NOTICE_STREAM, self.group, self.consumer, min_idle_time=self.min_idle_ms,
                                          message_ids=list(exhausted), justid=True)
        by_sender: Dict[str, List[str]] = {}
        for raw_id in claimed:
            notice_id = _text(raw_id)
            found = await self.redis.xrange(NOTICE_STREAM, min=notice_id, max=notice_id, count=1)
            sender = _notice_sender(found[0][1]) if found else ""
            by_sender.setdefault(sender, []).append(notice_id)
        for sender, notice_ids in by_sender.items():
            await self._dead_letter(sender, notice_ids, max(exhausted.get(n, self.max_attempts) for n in notice_ids))

    async def _dead_letter(self, sender: str, notice_ids: List[str], attempts: int) -> None:
        """Record that a conversation's messages could not be delivered, and acknowledge its notices.

        The delivery cursor is left where it is: the messages stay in the outbox, undelivered. One
        dead letter per conversation is open at a time: notices that give up while it waits for a
        supervisor join it. None is written when nothing is left to deliver (another attempt
        succeeded meanwhile) or the conversation moved to another channel.
        """
        if not sender:
            await self.redis.xack(NOTICE_STREAM, self.group, *notice_ids)  # the notice itself was trimmed away
            return
        async with self._conversation_lock(sender) as locked:
            if not locked:
                return  # being delivered right now: judged again when due
            first_undelivered = await self._first_undelivered(sender)
            if first_undelivered is None:
                await self.redis.xack(NOTICE_STREAM, self.group, *notice_ids)
                return
            reason = await self._last_failure(sender)
            fields = {"sender": sender, "channel": self.channel, "reason": reason, "attempts": str(attempts),
                      "first_undelivered": first_undelivered, "at": f"{time.time():.3f}"}
            flat = json.dumps([item for pair in fields.items() for item in pair])
            entry_id, created = await self.redis.eval(
                _WRITE_DEAD_LETTER, 4, dead_letter_key(self.channel), open_dead_letter_key(self.channel, sender), NOTICE_STREAM,
                failure_key(self.channel, sender), DEAD_LETTER_MAXLEN, self.group, self.ttl_s, flat, *notice_ids)
        if int(created):
            metrics.push_dead_lettered(self.channel)
            logger.error("push.%s.dead_letter sender=%s reason=%s attempts=%d first_undelivered=%s id=%s:%s", self.channel, sender,
                         reason, attempts, first_undelivered, self.channel, _text(entry_id))
        else:
            logger.warning("push.%s.dead_letter_joined sender=%s id=%s:%s", self.channel, sender, self.channel, _text(entry_id))

    async def _first_undelivered(self, sender: str) -> Optional[str]:
        """Id of the first outbox entry this channel has not delivered to a conversation living on it (None: none)."""
        registration = await conversation_registration(self.redis, sender)
        if registration.get("channel") != self.channel:
            return None
        stored = await self.redis.get(cursor_key(self.channel, sender))
        cursor = _text(stored) if stored else registration.get("since", "0-0")
        undelivered, _ = await Outbox(self.redis, ttl_s=self.ttl_s).fetch(sender, after=cursor, limit=1)
        return str(undelivered[0]["cursor"]) if undelivered else None

    async def _last_failure(self, sender: str) -> str:
        """Why the last delivery to a conversation failed (``not_delivered`` when no failure was recorded)."""
        reason = await self.redis.hget(failure_key(self.channel, sender), "reason")
        return _text(reason) if reason else "not_delivered"

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
        async with self._conversation_lock(sender) as locked:
            if not locked:
                return None  # another process is delivering to this conversation: try again later
            return await self._deliver_locked(sender, registration)

    @asynccontextmanager
    async def _conversation_lock(self, sender: str) -> AsyncIterator[bool]:
        """Hold the conversation's delivery lock (in this process and in Redis); yields whether it was taken."""
        local = self._local_locks.setdefault(sender, asyncio.Lock())
        try:
            async with local:
                token = uuid.uuid4().hex
                if not await self._acquire(sender, token):
                    yield False
                    return
                try:
                    yield True
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
                if delivered:
                    await self.redis.delete(failure_key(self.channel, sender))
                return delivered
            entries = [(message.pop("cursor"), message) for message in messages]
            try:
                last = await self.deliver(sender, registration, entries)
            except DeliveryFailed as failure:
                metrics.push_failed(self.channel)
                if failure.last_delivered:
                    metrics.push_delivered(self.channel, _count_upto(entries, failure.last_delivered))
                await self._advance(sender, failure.last_delivered)
                await self._record_failure(sender, str(failure))
                logger.warning("push.%s.delivery_failed sender=%s reason=%s", self.channel, sender, failure)
                return None
            await self._advance(sender, last)
            if last is None:
                return None
            batch = _count_upto(entries, last)
            metrics.push_delivered(self.channel, batch)
            delivered += batch
            if last != entries[-1][0]:
                return None
            cursor = last

    async def _advance(self, sender: str, last: Optional[str]) -> None:
        if last:
            await self.redis.set(cursor_key(self.channel, sender), last, ex=self.ttl_s)

    async def _record_failure(self, sender: str, reason: str) -> None:
        """Keep why the last delivery to a conversation failed, for its dead letter."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(failure_key(self.channel, sender), mapping={"reason": reason[:200], "at": f"{time.time():.3f}"})
            pipe.expire(failure_key(self.channel, sender), FAILURE_TTL_S)
            await pipe.execute()


def _notice_sender(fields: Mapping[Any, Any]) -> str:
    """The ``sender`` field of a notice, whatever the client's ``decode_responses``."""
    return _text(fields.get(b"sender", fields.get("sender", "")))


def _count_upto(entries: List[Tuple[str, Dict[str, Any]]], last: str) -> int:
    """How many of ``entries`` come no later than the entry ``last``."""
    return sum(1 for entry_id, _ in entries if _id_key(entry_id) <= _id_key(last))


def _id_key(entry_id: str) -> Tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
