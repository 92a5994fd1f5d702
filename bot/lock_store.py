"""Rasa's conversation lock, atomic and asynchronous in Redis, with leases a dead server gives up.

Rasa processes one message of a conversation at a time: every turn (and every tracker change
through Rasa's HTTP API) runs inside ``lock_store.lock(conversation_id)``, a FIFO ticket lock.
Rasa 3.6's ``RedisLockStore`` keeps each lock as one JSON string it reads, changes and writes back
with blocking redis-py calls: seven round trips per uncontended turn, each stalling the server's
event loop, and two servers issuing a ticket for the same conversation at the same moment can both
read the same lock and both be served (nothing makes read-change-write atomic). A ticket lives
``TICKET_LOCK_LIFETIME`` (60 s) whatever happens to its holder, so a conversation whose server died
mid-turn waits a minute for its next answer.

:class:`RedisTicketLockStore` keeps Rasa's semantics (tickets served in order of issue, a ticket
that outlives ``lock_lifetime`` expires, a waiter whose ticket expired gets ``LockError``) with:

* one Lua script per step, so issuing a ticket, checking whose turn it is and giving it back are
  atomic whichever server runs them (two round trips per uncontended turn, none of them blocking);
* leases: a ticket is held ``lease_s`` (10 s) at a time and renewed every third of that by its
  holder (waiting or served) until it is given back or ``lock_lifetime`` has passed since it was
  issued; a server that dies stops renewing and the next message of the conversation is served
  within ``lease_s``;
* waiting in short steps (20 ms, doubling up to ``wait_time_in_seconds``) instead of whole seconds.

Redis keeps one hash per conversation, ``<key_prefix>:conversation_lock:<conversation id>``: field
``next`` numbers the tickets, field ``t:<number>:<token>`` holds a ticket's expiry (milliseconds of
Redis's clock, so servers' clocks do not matter). The hash expires ``KEY_GRACE_S`` after its last
ticket could.

Configured in ``endpoints.yml``::

    lock_store:
      type: bot.lock_store.RedisTicketLockStore
      url: ${REDIS_HOST}
      port: ${REDIS_PORT}
      ...                        # db, username, password, use_ssl, ssl_ca_certs, key_prefix, lease_s

Rasa 3.6 takes locks only through :meth:`lock` (the agent, the processor, the HTTP API); the
read-change-write methods of Rasa's ``LockStore`` are not offered.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from contextlib import asynccontextmanager, suppress
from typing import Any, AsyncIterator, Optional

from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore
from rasa.utils.endpoints import EndpointConfig
from redis.asyncio import Redis

from bot.redis_endpoint import optional, redis_url
from handoff.context import REDIS_FAILURES, redis_client
from handoff.conversation import script

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 10.0
"""How long a ticket is held without renewal: how long a dead server keeps a conversation waiting."""

KEY_GRACE_S = 60.0
"""How much longer than its last ticket's lifetime a conversation's lock hash is kept."""

FIRST_WAIT_S = 0.02
"""The first pause of a waiting ticket; each next one doubles, up to ``wait_time_in_seconds``."""

REDIS_TIMEOUT_S = 2.0
"""Connect and command timeout of the lock store's Redis client."""

_CLOCK_AND_QUEUE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- drops the expired tickets; returns the lowest live ticket number, or false
local function serving(key, now)
  local fields = redis.call('HGETALL', key)
  local lowest = false
  for i = 1, #fields, 2 do
    local number = string.match(fields[i], '^t:(%d+):')
    if number then
      if tonumber(fields[i + 1]) <= now then
        redis.call('HDEL', key, fields[i])
      else
        number = tonumber(number)
        if not lowest or number < lowest then lowest = number end
      end
    end
  end
  return lowest
end
"""

ISSUE = _CLOCK_AND_QUEUE + """
-- KEYS[1] lock hash; ARGV[1] token, ARGV[2] lease ms, ARGV[3] hash expiry ms
local now = now_ms()
local number = redis.call('HINCRBY', KEYS[1], 'next', 1)
redis.call('HSET', KEYS[1], 't:' .. number .. ':' .. ARGV[1], now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {number, serving(KEYS[1], now)}
"""

CHECK = _CLOCK_AND_QUEUE + """
-- KEYS[1] lock hash; ARGV[1] ticket field, ARGV[2] ticket number: 1 served, 0 waiting, -1 expired
local lowest = serving(KEYS[1], now_ms())
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
if lowest == tonumber(ARGV[2]) then return 1 end
return 0
"""

RENEW = _CLOCK_AND_QUEUE + """
-- KEYS[1] lock hash; ARGV[1] ticket field, ARGV[2] lease ms, ARGV[3] hash expiry ms: 1 renewed, 0 gone
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], now_ms() + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

RELEASE = """
-- KEYS[1] lock hash; ARGV[1] ticket field
return redis.call('HDEL', KEYS[1], ARGV[1])
"""


class RedisTicketLockStore(LockStore):
    """Rasa's ticket lock in Redis: atomic steps, asynchronous calls, renewed leases.

    Args:
        endpoint_config: the ``lock_store`` section of ``endpoints.yml`` (how Rasa creates a custom
            lock store); its ``url`` is the host and its keys the options below.
        host, port, db, username, password, use_ssl, ssl_ca_certs: where Redis is (strings from
            ``endpoints.yml`` are accepted; empty ones count as not given).
        key_prefix: first part of every key (alphanumeric; ``shop`` in ``endpoints.yml``).
        lease_s: how long a ticket is held between renewals (at most its lifetime).
    """

    def __init__(
        self,
        endpoint_config: Optional[EndpointConfig] = None,
        host: str = "localhost",
        port: Any = 6379,
        db: Any = 0,
        username: Optional[str] = None,
        password: Optional[str] = None,
        use_ssl: Any = False,
        ssl_ca_certs: Optional[str] = None,
        key_prefix: Optional[str] = None,
        lease_s: Any = DEFAULT_LEASE_S,
        **_ignored: Any,
    ) -> None:
        if endpoint_config is not None:
            options = dict(endpoint_config.kwargs)
            host = endpoint_config.url or host
            port, db = options.get("port", port), options.get("db", db)
            username, password = options.get("username", username), options.get("password", password)
            use_ssl, ssl_ca_certs = options.get("use_ssl", use_ssl), options.get("ssl_ca_certs", ssl_ca_certs)
            key_prefix, lease_s = options.get("key_prefix", key_prefix), options.get("lease_s", lease_s)
        self.redis_url = redis_url(host, optional(port) or 6379, optional(db) or 0, username, password, use_ssl, ssl_ca_certs)
        prefix = optional(key_prefix)
        if prefix is not None and not str(prefix).isalnum():
            raise ValueError(f"lock store key_prefix must be alphanumeric, not {prefix!r}")
        self.key_prefix = f"{prefix}:conversation_lock:" if prefix else "conversation_lock:"
        self.lease_s = float(optional(lease_s) or DEFAULT_LEASE_S)
        if self.lease_s <= 0:
            raise ValueError("lock store lease_s must be positive")
        super().__init__()

    def key(self, conversation_id: str) -> str:
        """The Redis key of a conversation's lock."""
        return self.key_prefix + conversation_id

    def _client(self) -> Redis:
        return redis_client(self.redis_url, REDIS_TIMEOUT_S)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncIterator[TicketLock]:
        """Hold the conversation's lock for the block; tickets are served in the order they were issued.

        Args:
            conversation_id: the conversation.
            lock_lifetime: the longest a ticket lives after it was issued, served or not.
            wait_time_in_seconds: the longest pause between two checks of a waiting ticket.

        Raises:
            LockError: Redis could not issue the ticket, or the ticket expired before its turn.
        """
        lifetime_s = float(lock_lifetime)
        issued_at = time.monotonic()
        key = self.key(conversation_id)
        token = secrets.token_hex(8)
        try:
            number, lowest = await script(self._client(), ISSUE)(
                keys=[key], args=[token, self._lease_ms(lifetime_s, issued_at), self._key_expiry_ms(lifetime_s)])
        except REDIS_FAILURES as error:
            raise LockError(f"Could not issue a ticket for conversation '{conversation_id}': {type(error).__name__}") from error
        number = int(number)
        field = f"t:{number}:{token}"
        renewal = asyncio.ensure_future(self._renew(key, field, lifetime_s, issued_at))
        try:
            if lowest is None or int(lowest) != number:
                await self._wait_for_turn(conversation_id, key, field, number, wait_time_in_seconds)
            yield TicketLock(conversation_id, deque([Ticket(number, time.time() + lifetime_s - (time.monotonic() - issued_at))]))
        finally:
            renewal.cancel()
            with suppress(asyncio.CancelledError):
                await renewal
            await asyncio.shield(self._release(conversation_id, key, field))

    async def _wait_for_turn(self, conversation_id: str, key: str, field: str, number: int, wait_time_s: float) -> None:
        pause = min(FIRST_WAIT_S, wait_time_s)
        while True:
            await asyncio.sleep(pause)
            try:
                state = int(await script(self._client(), CHECK)(keys=[key], args=[field, number]))
            except REDIS_FAILURES as error:
                logger.warning("lock.check_failed conversation=%s error=%s", conversation_id, type(error).__name__)
                state = 0
            if state == 1:
                return
            if state == -1:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}': its ticket expired.")
            pause = min(pause * 2, max(wait_time_s, FIRST_WAIT_S))

    async def _renew(self, key: str, field: str, lifetime_s: float, issued_at: float) -> None:
        """Renew the ticket every third of a lease while it is held and its lifetime lasts."""
        while True:
            await asyncio.sleep(min(self.lease_s, lifetime_s) / 3)
            remaining_ms = self._lease_ms(lifetime_s, issued_at)
            if remaining_ms <= 0:
                return
            try:
                if not int(await script(self._client(), RENEW)(keys=[key], args=[field, remaining_ms, self._key_expiry_ms(lifetime_s)])):
                    return  # expired meanwhile: nothing left to renew
            except REDIS_FAILURES as error:
                logger.warning("lock.renew_failed key=%s error=%s", key, type(error).__name__)

    async def _release(self, conversation_id: str, key: str, field: str) -> None:
        try:
            await script(self._client(), RELEASE)(keys=[key], args=[field])
        except REDIS_FAILURES as error:  # the lease runs out instead
            logger.error("lock.release_failed conversation=%s error=%s: the ticket expires within %.0f s",
                         conversation_id, type(error).__name__, self.lease_s)

    def _lease_ms(self, lifetime_s: float, issued_at: float) -> int:
        """The next lease: ``lease_s``, or what is left of the ticket's lifetime when that is shorter."""
        left_s = lifetime_s - (time.monotonic() - issued_at)
        return int(1000 * min(self.lease_s, left_s))

    @staticmethod
    def _key_expiry_ms(lifetime_s: float) -> int:
        return int(1000 * (lifetime_s + KEY_GRACE_S))

