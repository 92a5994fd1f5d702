"""Conversation trackers encrypted at rest: Rasa's Redis tracker store with AES-GCM around each tracker.

A tracker holds everything a shopper wrote and every slot the bot filled (phone numbers, phone
tails, addresses, names). :class:`EncryptedRedisTrackerStore` stores each one as::

    enc1:<key id, 8 hex>:<base64(12-byte nonce + AES-256-GCM ciphertext and tag)>

under ``purpose_key(SHOP_IDENTITY_SECRET, "tracker")`` (:func:`bot.identity.purpose_key`), with the
conversation id as associated data, so a value copied to another conversation's key does not
open. Everything else is Rasa's own ``RedisTrackerStore``: the keys, the expiry, the merge with
the stored tracker on save (and the project's faster merge, :mod:`bot.rasa_patches.tracker_merge`).

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
import logging
import os
import sys
from typing import Any, Dict, List, Optional, Union
from urllib.parse import quote

import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker

from bot import metrics
from bot.identity import purpose_key
from bot.nlu_inbox import InboxConfig, TrackerCapture
from bot.redis_server import out_of_memory

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


def _flag(value: Any) -> bool:
    """A boolean option as YAML or an environment variable gives it (``""``, ``"false"``: false)."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _optional(value: Any) -> Optional[Any]:
    """None for an option left empty (``${VAR}`` of an empty variable)."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _redis_url(host: str, port: int, db: int, username: Optional[str], password: Optional[str], use_ssl: bool,
               ssl_ca_certs: Optional[str]) -> str:
    """The URL of the tracker store's own Redis (for the NLU inbox's asyncio client)."""
    credentials = ""
    if username or password:
        credentials = f"{quote(username or '', safe='')}:{quote(password or '', safe='')}@"
    query = f"?ssl_ca_certs={quote(ssl_ca_certs, safe='')}" if use_ssl and ssl_ca_certs else ""
    address = f"[{host}]" if ":" in host else host
    return f"{'rediss' if use_ssl else 'redis'}://{credentials}{address}:{port}/{db}{query}"


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
        expiry = _optional(record_exp)
        super().__init__(
            domain,
            host=host,
            port=int(port),
            db=int(db),
            username=_optional(username),
            password=_optional(password),
            event_broker=event_broker,
            record_exp=int(float(expiry)) if expiry is not None else None,
            key_prefix=key_prefix,
            use_ssl=_flag(use_ssl),
            ssl_keyfile=_optional(ssl_keyfile),
            ssl_certfile=_optional(ssl_certfile),
            ssl_ca_certs=_optional(ssl_ca_certs),
            **kwargs,
        )
        from bot.settings import load_settings

        settings = load_settings()
        if not _optional(identity_secret):
            identity_secret = settings.shop_identity_secret
        assert identity_secret is not None
        self.cipher = TrackerCipher.from_secret(identity_secret)
        self.accept_plaintext = _flag(accept_plaintext)
        inbox_redis = _redis_url(host, int(port), int(db), _optional(username), _optional(password), _flag(use_ssl), _optional(ssl_ca_certs))
        self.inbox = TrackerCapture(inbox_redis, InboxConfig.from_settings(settings))

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

    async def _retrieve(self, sender_id: str, fetch_all_sessions: bool) -> Optional[DialogueStateTracker]:
        """Rasa's retrieval; None (a new conversation) for a value that does not open."""
        try:
            return await super()._retrieve(sender_id, fetch_all_sessions)
        except UnreadableTracker as error:
            self._log_unreadable(sender_id, error)
            return None

    async def save(self, tracker: DialogueStateTracker, timeout: Optional[float] = None) -> None:
        """Rasa's save (merged with the stored tracker), encrypted; an unreadable stored value is replaced.

        Raises:
            redis.exceptions.RedisError: Redis refused or could not answer (logged as
                ``tracker.save_failed``; ``OutOfMemoryError`` when its memory limit is reached).
        """
        try:
            try:
                await super().save(tracker, timeout)
            except UnreadableTracker as error:
                self._log_unreadable(tracker.sender_id, error)
                self.red.delete(self.key_prefix + tracker.sender_id)
                await super().save(tracker, timeout)
        except redis.exceptions.RedisError as error:
            if out_of_memory(error):
                logger.error("tracker.save_failed sender=%s error=OutOfMemoryError: Redis reached its memory limit "
                             "(maxmemory; REDIS_MAXMEMORY_MB for the embedded server) and refuses writes", tracker.sender_id)
            else:
                logger.error("tracker.save_failed sender=%s error=%s", tracker.sender_id, type(error).__name__)
            raise
        latest = tracker.latest_message
        metrics.note_intent(latest.intent.get("name") if latest is not None else None, self.domain.intents)
        names = [slot.value for name, slot in tracker.slots.items() if name.endswith("_name") and isinstance(slot.value, str)]
        await self.inbox.after_save(tracker.sender_id, tracker.events, names)

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
