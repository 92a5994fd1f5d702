"""Conversation trackers encrypted at rest: Rasa's Redis tracker store with AES-GCM around each tracker.

A tracker holds everything a shopper wrote and every slot the bot filled (phone numbers, phone
tails, addresses, names). :class:`EncryptedRedisTrackerStore` stores each one as::

    enc1:<key id, 8 hex>:<base64(12-byte nonce + AES-256-GCM ciphertext and tag)>

under ``purpose_key(SHOP_IDENTITY_SECRET, "tracker")`` (:func:`bot.identity.purpose_key`), with the
conversation id as associated data, so a value copied to another conversation's key does not
open. The keys, the expiry and the merge with the stored tracker on save are Rasa's
``RedisTrackerStore``'s (with the project's faster merge, :mod:`bot.rasa_patches.tracker_merge`);
how they reach Redis is not:

* every turn's read and write go through an asyncio client (one pool per worker's event loop,
  explicit timeouts), never a blocking call on the server's event loop;
* a save writes only if the stored value is still the one its merge started from (one Lua step
  comparing SHA-1 digests); if another writer got in between, it merges again with what is stored
  now (Rasa's own store reads, merges and writes in three separate steps);
* Rasa's save reads the stored tracker back and merges it on every save; here, when the tracker
  being saved is the very object this worker read (or last wrote), holds every event read and
  only later ones after them, Rasa's merge would return it unchanged, so the save skips reading,
  decrypting and replaying the stored tracker and only checks, in that same Lua step, that it is
  still the value read.

Reading:

* a plaintext tracker (stored before encryption) is read as before and written encrypted on the
  conversation's next save; ``python -m bot.tracker_store encrypt`` encrypts every one left now.
* a value that does not open (tampered, truncated, another conversation's, encrypted under another
  secret) is logged as ``tracker.unreadable`` with the reason and treated as absent: the
  conversation starts afresh, as a new one would, and its next save replaces the value. The turn
  never fails on it. Changing SHOP_IDENTITY_SECRET therefore starts every stored conversation
  afresh (the log says ``key=other``).

Configured in ``endpoints.yml``::

    tracker_store:
      type: bot.tracker_store.EncryptedRedisTrackerStore
      url: ${REDIS_HOST}
      ...                       # every key of Rasa's redis tracker store, also as strings

The secret is ``identity_secret`` when given, else SHOP_IDENTITY_SECRET (:func:`bot.settings.load_settings`).

After each successful save, the NLU inbox looks at the conversation's latest turn and keeps, masked,
a message the bot did not understand (:mod:`bot.nlu_inbox`, ``NLU_INBOX_*`` settings); that capture
is bounded by its own timeout and never fails the save. The latest message's intent (one of the
domain's, else ``other``) labels the turn's Prometheus counters (:func:`bot.metrics.note_intent`).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import logging
import os
import sys
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.conversation import Dialogue
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, deserialise_events
from rasa.shared.core.trackers import DialogueStateTracker
from redis.asyncio import Redis

from bot import metrics
from bot.identity import purpose_key
from bot.nlu_inbox import InboxConfig, TrackerCapture
from bot.redis_endpoint import flag, optional, redis_url
from bot.redis_server import out_of_memory
from handoff.context import redis_client
from handoff.conversation import script

logger = logging.getLogger(__name__)

VERSION = "enc1"
"""First field of every value this store writes."""

NONCE_BYTES = 12


class UnreadableTracker(Exception):
    """A stored tracker that cannot be opened; ``reason`` says why (``tampered``, ``key=other``, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TrackerCipher:
    """Seals and opens serialised trackers with AES-256-GCM.

    Args:
        key: the 32-byte tracker key (:meth:`from_secret`).
    """

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self.key_id = hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:8]

    @classmethod
    def from_secret(cls, secret: str) -> TrackerCipher:
        """The cipher of ``purpose_key(secret, "tracker")``."""
        return cls(purpose_key(secret, "tracker"))

    @staticmethod
    def is_sealed(stored: Union[str, bytes]) -> bool:
        """True for a value in this store's format (whether or not it opens)."""
        prefix = VERSION + ":"
        return stored.startswith(prefix) if isinstance(stored, str) else stored.startswith(prefix.encode())

    def seal(self, sender_id: str, plaintext: str) -> str:
        """The stored form of one conversation's serialised tracker."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _associated_data(sender_id))
        return f"{VERSION}:{self.key_id}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def open(self, sender_id: str, stored: Union[str, bytes]) -> str:
        """The serialised tracker of a value :meth:`seal` made for the same conversation.

        Raises:
            UnreadableTracker: the value is malformed, was made under another key or for another
                conversation, or was altered.
        """
        text = stored.decode("ascii", errors="replace") if isinstance(stored, bytes) else stored
        parts = text.split(":", 2)
        if len(parts) != 3 or parts[0] != VERSION:
            raise UnreadableTracker("malformed")
        if not hmac.compare_digest(parts[1], self.key_id):
            raise UnreadableTracker("key=other")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raise UnreadableTracker("malformed") from None
        if len(raw) <= NONCE_BYTES:
            raise UnreadableTracker("malformed")
        try:
            plaintext = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(sender_id))
        except InvalidTag:
            raise UnreadableTracker("tampered") from None
        return plaintext.decode("utf-8")


def _associated_data(sender_id: str) -> bytes:
    return f"tracker|{sender_id}".encode()


REDIS_TIMEOUT_S = 5.0
"""Connect and command timeout of the tracker store's Redis client."""

SAVE_ATTEMPTS = 5
"""How often a save merges again when another writer changed the tracker in between."""

LOADED_TRACKERS = 10_000
"""Conversations per worker whose last read or written value is remembered (a digest and a weak reference)."""

COMPARE_AND_SET = """
-- KEYS[1] tracker key; ARGV[1] sha1 of the value the merge started from ('' for none),
-- ARGV[2] new value, ARGV[3] expiry ms (0: none). {1} written; {0, current value} or {0} otherwise.
local current = redis.call('GET', KEYS[1])
local seen = ''
if current then seen = redis.sha1hex(current) end
if seen ~= ARGV[1] then
  if current then return {0, current} end
  return {0}
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return {1}
"""


class TrackerWriteConflict(redis.exceptions.RedisError):
    """Other writers changed a conversation's tracker during every attempt of a save."""

    def __init__(self, sender_id: str) -> None:
        super().__init__(f"tracker of {sender_id} changed during {SAVE_ATTEMPTS} attempts to save it")


def _digest(stored: Optional[bytes]) -> str:
    """What ``redis.sha1hex`` gives for a stored value; '' for none."""
    return hashlib.sha1(stored).hexdigest() if stored is not None else ""


def _latest_session_start(events: Sequence[Dict[str, Any]]) -> int:
    """Index of the latest ``action_session_start`` of stored event dicts (where Rasa splits sessions), 0 for none."""
    for index in range(len(events) - 1, 0, -1):
        event = events[index]
        if event.get("event") == ActionExecuted.type_name and event.get("name") == ACTION_SESSION_START_NAME:
            return index
    return 0


@dataclass(frozen=True)
class _Loaded:
    """A conversation's stored value as this worker last read or wrote it, and the tracker that holds it.

    The stored events are ``prefix`` (the earlier sessions a last-session read leaves out, empty
    otherwise) followed by the first ``count`` events of ``tracker``. :meth:`events_to_store`
    gives the events Rasa's merge would store for that same tracker object when its first
    ``count`` events are still the ones read and every event added since is later than all stored
    ones and unlike the others added: the prefix followed by the tracker's events.
    """

    digest: str
    tracker: Optional[Callable[[], Optional[DialogueStateTracker]]]
    prefix: Tuple[Event, ...]
    count: int
    last_event_id: int
    latest_timestamp: float

    @classmethod
    def of(cls, digest: str, tracker: Optional[DialogueStateTracker], prefix: Sequence[Event] = ()) -> _Loaded:
        if tracker is None:  # nothing stored: any new tracker extends it
            return cls(digest, None, (), 0, 0, float("-inf"))
        events = tracker.events
        latest = max((event.timestamp for event in itertools.chain(prefix, events)), default=float("-inf"))
        return cls(digest, weakref.ref(tracker), tuple(prefix), len(events), id(events[-1]) if events else 0, latest)

    def events_to_store(self, tracker: DialogueStateTracker) -> Optional[List[Dict[str, Any]]]:
        """The event dicts to store for ``tracker`` without reading the stored value; None: merge it."""
        if self.tracker is None:
            return [event.as_dict() for event in tracker.events] if self.digest == "" else None
        events = tracker.events
        if self.tracker() is not tracker or len(events) < self.count:
            return None
        if self.count and id(events[self.count - 1]) != self.last_event_id:
            return None
        added = list(itertools.islice(events, self.count, None))
        if any(event.timestamp <= self.latest_timestamp for event in added):
            return None
        dicts = [event.as_dict() for event in itertools.chain(self.prefix, events)]
        new = dicts[len(dicts) - len(added):]
        if any(one == other for index, one in enumerate(new) for other in new[index + 1:]):
            return None  # Rasa's merge would keep only one of two equal events
        return dicts


class EncryptedRedisTrackerStore(RedisTrackerStore):
    """Rasa's Redis tracker store with every tracker encrypted (see the module's description).

    Takes the keyword arguments of Rasa's ``RedisTrackerStore`` (strings from ``endpoints.yml`` are
    converted: ``use_ssl: ""`` is false, empty ``username``/``password``/``ssl_*`` are none), and:

    Args:
        identity_secret: the secret the tracker key derives from; SHOP_IDENTITY_SECRET when omitted.
        accept_plaintext: read trackers stored before encryption (the default); false: treat
            them as unreadable too.
    """

    def __init__(
        self,
        domain: Domain,
        host: str = "localhost",
        port: Union[int, str] = 6379,
        db: Union[int, str] = 0,
        username: Optional[str] = None,
        password: Optional[str] = None,
        event_broker: Optional[EventBroker] = None,
        record_exp: Optional[Union[float, str]] = None,
        key_prefix: Optional[str] = None,
        use_ssl: Union[bool, str] = False,
        ssl_keyfile: Optional[str] = None,
        ssl_certfile: Optional[str] = None,
        ssl_ca_certs: Optional[str] = None,
        identity_secret: Optional[str] = None,
        accept_plaintext: Union[bool, str] = True,
        **kwargs: Any,
    ) -> None:
        expiry = optional(record_exp)
        super().__init__(
            domain,
            host=host,
            port=int(port),
            db=int(db),
            username=optional(username),
            password=optional(password),
            event_broker=event_broker,
            record_exp=int(float(expiry)) if expiry is not None else None,
            key_prefix=key_prefix,
            use_ssl=flag(use_ssl),
            ssl_keyfile=optional(ssl_keyfile),
            ssl_certfile=optional(ssl_certfile),
            ssl_ca_certs=optional(ssl_ca_certs),
            **kwargs,
        )
        from bot.settings import load_settings

        settings = load_settings()
        if not optional(identity_secret):
            identity_secret = settings.shop_identity_secret
        assert identity_secret is not None
        self.cipher = TrackerCipher.from_secret(identity_secret)
        self.accept_plaintext = flag(accept_plaintext)
        self.redis_url = redis_url(host, port, db, username, password, use_ssl, ssl_ca_certs)
        self.inbox = TrackerCapture(self.redis_url, InboxConfig.from_settings(settings))
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()

    def serialise_tracker(self, tracker: DialogueStateTracker) -> str:  # type: ignore[override]
        """Rasa's JSON of the tracker, sealed for its conversation."""
        return self.cipher.seal(tracker.sender_id, super().serialise_tracker(tracker))

    def deserialise_tracker(self, sender_id: str, serialised_tracker: Union[str, bytes]) -> Optional[DialogueStateTracker]:
        """The tracker of a stored value: sealed, or plaintext from before encryption.

        Raises:
            UnreadableTracker: the value does not open or does not hold a tracker.
        """
        if self.cipher.is_sealed(serialised_tracker):
            plaintext: Union[str, bytes] = self.cipher.open(sender_id, serialised_tracker)
        elif self.accept_plaintext:
            plaintext = serialised_tracker
        else:
            raise UnreadableTracker("plaintext")
        try:
            return super().deserialise_tracker(sender_id, plaintext)
        except Exception as error:  # not a tracker: as unreadable as a tampered one
            raise UnreadableTracker(f"not a tracker ({type(error).__name__})") from error

    def _client(self) -> Redis:
        return redis_client(self.redis_url, REDIS_TIMEOUT_S, decode_responses=False)

    async def _retrieve(self, sender_id: str, fetch_all_sessions: bool) -> Optional[DialogueStateTracker]:
        """The stored tracker (all sessions, or the latest one); None for none or a value that does not open.

        The latest session is built from its own events only (Rasa's store replays the whole
        conversation and then every session again); the result is the same tracker.
        """
        stored = await self._client().get(self.key_prefix + sender_id)
        if stored is None:
            self._remember(sender_id, None, None)
            return None
        try:
            events = self._stored_events(sender_id, stored)
        except UnreadableTracker as error:
            self._loaded.pop(sender_id, None)
            self._log_unreadable(sender_id, error)
            return None
        start = 0 if fetch_all_sessions else _latest_session_start(events)
        if start == 0:  # the whole conversation, as Rasa's store reads it
            tracker = self.init_tracker(sender_id)
            tracker.recreate_from_dialogue(Dialogue(sender_id, deserialise_events(events)))
            self._remember(sender_id, stored, tracker)
            return tracker
        # the latest session, as Rasa's get_trackers_for_conversation_sessions builds it
        session = DialogueStateTracker.from_events(sender_id, deserialise_events(events[start:]), self.domain.slots,
                                                   max_event_history=self.max_event_history)
        self._remember(sender_id, stored, session, deserialise_events(events[:start]))
        return session

    def _stored_events(self, sender_id: str, stored: bytes) -> List[Dict[str, Any]]:
        """The event dicts of a stored value (sealed, or plaintext from before encryption).

        Raises:
            UnreadableTracker: the value does not open or does not hold a tracker.
        """
        if self.cipher.is_sealed(stored):
            plaintext: Union[str, bytes] = self.cipher.open(sender_id, stored)
        elif self.accept_plaintext:
            plaintext = stored
        else:
            raise UnreadableTracker("plaintext")
        try:
            events = json.loads(plaintext).get("events", [])
            if not isinstance(events, list) or not all(isinstance(event, dict) for event in events):
                raise ValueError("events is not a list of objects")
            return events
        except Exception as error:  # not a tracker: as unreadable as a tampered one
            raise UnreadableTracker(f"not a tracker ({type(error).__name__})") from error

    async def keys(self) -> Iterable[str]:
        """The Redis keys of the stored trackers (as Rasa's store gives them)."""
        client = self._client()
        return [key.decode() async for key in client.scan_iter(match=self.key_prefix + "*", count=500)]

    async def save(self, tracker: DialogueStateTracker, timeout: Optional[float] = None) -> None:
        """Store the tracker, merged with the stored one as Rasa merges them, encrypted.

        The value is written only if it is still the one the merge started from (one Lua step);
        when another writer got in between, the merge is made again with what is stored now. A
        stored value that does not open is replaced.

        Raises:
            redis.exceptions.RedisError: Redis refused or could not answer (logged as
                ``tracker.save_failed``; ``OutOfMemoryError`` when its memory limit is reached).
            TrackerWriteConflict: other writers changed the tracker on every attempt.
        """
        await self.stream_events(tracker)
        expiry = timeout or self.record_exp
        key = self.key_prefix + tracker.sender_id
        client = self._client()
        try:
            loaded = self._loaded.get(tracker.sender_id)
            dicts = loaded.events_to_store(tracker) if loaded is not None else None
            if dicts is not None:
                assert loaded is not None
                expected, merged = loaded.digest, tracker
                value = self.cipher.seal(tracker.sender_id, json.dumps({"events": dicts, "name": tracker.sender_id}))
                prefix: Sequence[Event] = loaded.prefix
            else:
                stored = await client.get(key)
                expected, merged = _digest(stored), self._merged(tracker, stored)
                value, prefix = self.serialise_tracker(merged), ()
            for _attempt in range(SAVE_ATTEMPTS):
                args = [expected, value, int(float(expiry) * 1000) if expiry else 0]
                outcome = await script(client, COMPARE_AND_SET)(keys=[key], args=args)
                if int(outcome[0]) == 1:
                    break
                current = outcome[1] if len(outcome) > 1 else None
                expected, merged = _digest(current), self._merged(tracker, current)
                value, prefix = self.serialise_tracker(merged), ()
            else:
                raise TrackerWriteConflict(tracker.sender_id)
        except redis.exceptions.RedisError as error:
            if out_of_memory(error):
                logger.error("tracker.save_failed sender=%s error=OutOfMemoryError: Redis reached its memory limit "
                             "(maxmemory; REDIS_MAXMEMORY_MB for the embedded server) and refuses writes", tracker.sender_id)
                if not isinstance(error, redis.exceptions.OutOfMemoryError):  # refused inside the Lua step
                    raise redis.exceptions.OutOfMemoryError(str(error)) from error
            else:
                logger.error("tracker.save_failed sender=%s error=%s", tracker.sender_id, type(error).__name__)
            raise
        self._remember(tracker.sender_id, value.encode("ascii"), merged if merged is tracker else None, prefix)
        latest = tracker.latest_message
        metrics.note_intent(latest.intent.get("name") if latest is not None else None, self.domain.intents)
        names = [slot.value for name, slot in tracker.slots.items() if name.endswith("_name") and isinstance(slot.value, str)]
        await self.inbox.after_save(tracker.sender_id, tracker.events, names)

    def _merged(self, tracker: DialogueStateTracker, stored: Optional[bytes]) -> DialogueStateTracker:
        """Rasa's merge of ``tracker`` with a stored value; ``tracker`` itself for none or one that does not open."""
        if stored is None:
            return tracker
        try:
            prior = self.deserialise_tracker(tracker.sender_id, stored)
        except UnreadableTracker as error:
            self._log_unreadable(tracker.sender_id, error)
            return tracker
        assert prior is not None
        return self._merge_trackers(prior, tracker)

    def _remember(self, sender_id: str, stored: Optional[bytes], tracker: Optional[DialogueStateTracker],
                  prefix: Sequence[Event] = ()) -> None:
        """Note what is stored for a conversation: ``prefix`` and then the events of ``tracker``."""
        if stored is not None and tracker is None:
            self._loaded.pop(sender_id, None)
            return
        self._loaded[sender_id] = _Loaded.of(_digest(stored), tracker, prefix)
        self._loaded.move_to_end(sender_id)
        while len(self._loaded) > LOADED_TRACKERS:
            self._loaded.popitem(last=False)

    @staticmethod
    def _log_unreadable(sender_id: str, error: UnreadableTracker) -> None:
        logger.error("tracker.unreadable sender=%s reason=%s: the conversation starts afresh", sender_id, error.reason)

    def encrypt_plaintext(self) -> Dict[str, int]:
        """Encrypt every tracker still stored in plaintext, keeping each one's expiry.

        A conversation saved meanwhile is left to its save (which encrypts it).

        Returns:
            How many trackers were ``encrypted``, already ``sealed``, and ``skipped`` (saved
            meanwhile, or not a tracker).
        """
        counts = {"encrypted": 0, "sealed": 0, "skipped": 0}
        for key in self.red.scan_iter(match=self.key_prefix + "*", count=500):
            sender_id = key[len(self.key_prefix):]
            with self.red.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    if stored is None or self.cipher.is_sealed(stored):
                        counts["sealed" if stored is not None else "skipped"] += 1
                        continue
                    RedisTrackerStore.deserialise_tracker(self, sender_id, stored)  # a tracker indeed
                    pipe.multi()
                    pipe.set(key, self.cipher.seal(sender_id, stored), keepttl=True)
                    pipe.execute()
                    counts["encrypted"] += 1
                except redis.exceptions.WatchError:
                    counts["skipped"] += 1
                except Exception as error:  # a value that is not a tracker: left as it is
                    logger.error("tracker.encrypt_skipped sender=%s error=%s", sender_id, type(error).__name__)
                    counts["skipped"] += 1
        return counts


def store_from_endpoints(path: str = "endpoints.yml") -> EncryptedRedisTrackerStore:
    """The tracker store ``endpoints.yml`` configures (its ``${...}`` read from the environment)."""
    from rasa.core.tracker_store import create_tracker_store
    from rasa.utils.endpoints import read_endpoint_config

    store = create_tracker_store(read_endpoint_config(path, "tracker_store"))
    if not isinstance(store, EncryptedRedisTrackerStore):
        raise SystemExit(f"{path}: the tracker store is {type(store).__name__}, not EncryptedRedisTrackerStore")
    return store


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m bot.tracker_store encrypt``: encrypt the trackers stored before encryption."""
    parser = argparse.ArgumentParser(prog="python -m bot.tracker_store", description=main.__doc__)
    parser.add_argument("command", choices=["encrypt"])
    parser.add_argument("--endpoints", default="endpoints.yml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from bot.launcher import base_env
    from bot.settings import load_settings

    settings = load_settings()
    os.environ.update(base_env(settings, settings.effective_redis_url))
    counts = store_from_endpoints(args.endpoints).encrypt_plaintext()
    print(", ".join(f"{count} {what}" for what, count in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
