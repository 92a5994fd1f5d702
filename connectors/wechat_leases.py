"""WeChat's retries of a message reach the bot once: a record per message in Redis, with the lease of
the worker answering it.

WeChat sends a message again when its request got no answer within 5 s (three times, 5 s apart).
Each request for one message joins the same record; the first one's worker runs the turn under a
lease it renews while the turn runs; exactly one waiting request (a passive reply) or else the turn
itself (a customer-service message) takes the answer. A worker that dies mid-turn stops renewing,
its lease lapses within seconds and the next retry takes the message over. Every step is one Lua
script, so several workers and instances agree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable, Dict, Optional, Tuple

from redis.asyncio import Redis

from connectors.common import REDIS_FAILURES
from connectors.wechat_api import WAIT_POLL_S
from handoff.conversation import script

logger = logging.getLogger(__name__)

DEDUP_TTL_S = 24 * 3600
"""How long a message id is remembered against WeChat's retries."""

LEASE_MS = 8_000
"""How long the in-progress lease of a message lasts unless its turn renews it, milliseconds.

The turn renews it every quarter of that while it runs, so a live turn keeps it however long the
bot takes; when the worker dies, it lapses well within WeChat's retries (5 s apart, three of them)
and a retry answers the message instead of dropping it."""

# A message's record ``wechat:msg:{appid}:{id}``: ``state`` (processing, done), ``owner`` (the token
# of the turn answering it), ``waiting`` (requests of WeChat waiting for the answer), ``reply`` (the
# answer, JSON) and ``delivered`` (passive or push). Exactly one of the waiting requests, or else the
# turn itself, takes the answer. Beside it ``...:lease`` holds the owner's token for LEASE_MS while
# the turn runs (renewed by the turn): a record still processing without its lease lost its worker,
# and the next request for the message takes it over (the dead worker's requests no longer wait).
_ENTER = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'state', 'processing', 'waiting', 1, 'owner', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  return 'new'
end
if state == 'processing' and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'waiting', 1, 'owner', ARGV[3])
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
  return 'taken_over'
end
redis.call('HINCRBY', KEYS[1], 'waiting', 1)
return state
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_LEAVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'none', ''} end
local waiting = redis.call('HINCRBY', KEYS[1], 'waiting', -1)
if redis.call('HGET', KEYS[1], 'state') ~= 'done' or redis.call('HEXISTS', KEYS[1], 'delivered') == 1 then
  return {'none', ''}
end
if ARGV[1] == 'claim' or waiting <= 0 then
  local how = ARGV[1] == 'claim' and 'passive' or 'push'
  local reply = redis.call('HGET', KEYS[1], 'reply') or ''
  redis.call('HSET', KEYS[1], 'delivered', how)
  redis.call('HDEL', KEYS[1], 'reply')
  return {how, reply}
end
return {'none', ''}
"""

_FINISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'push' end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'state') ~= 'processing' then
  return 'lost'
end
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('HSET', KEYS[1], 'state', 'done', 'reply', ARGV[1])
if tonumber(redis.call('HGET', KEYS[1], 'waiting') or '0') <= 0 and redis.call('HEXISTS', KEYS[1], 'delivered') == 0 then
  redis.call('HSET', KEYS[1], 'delivered', 'push')
  redis.call('HDEL', KEYS[1], 'reply')
  return 'push'
end
return 'wait'
"""



def lease_key(key: str) -> str:
    """The key of the lease beside a message's record."""
    return f"{key}:lease"


def json_object(raw: str) -> Optional[Dict[str, Any]]:
    """``raw`` read as a JSON object, or None (not JSON, or JSON of another kind)."""
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class MessageLeases:
    """The records and leases of WeChat messages (one Lua script a step).

    Args:
        redis: the channel's Redis client (a callable: the client is made on first use).
        lease_ms: how long a lease lasts unless renewed (:data:`LEASE_MS`).
    """

    def __init__(self, redis: Callable[[], Redis], lease_ms: int = LEASE_MS) -> None:
        self._redis = redis
        self.lease_ms = int(lease_ms)

    async def enter(self, key: str, owner: str) -> str:
        """Join a message's record: ``new`` or ``taken_over`` (``owner`` runs the turn), else its state.

        Raises:
            One of ``REDIS_FAILURES``.
        """
        return str(await script(self._redis(), _ENTER)(keys=[key, lease_key(key)], args=[DEDUP_TTL_S, self.lease_ms, owner]))

    async def wait_done(self, key: str, budget_s: float, local: Optional[asyncio.Task[None]]) -> None:
        """Wait until the message's turn is done (``local``: its task, when it runs here) or the budget is spent."""
        if budget_s <= 0:
            return
        if local is not None:
            try:
                await asyncio.wait_for(asyncio.shield(local), budget_s)
            except asyncio.TimeoutError:
                pass
            return
        deadline = time.monotonic() + budget_s
        while time.monotonic() < deadline:
            try:
                if await self._redis().hget(key, "state") != "processing":
                    return
            except REDIS_FAILURES:
                return
            await asyncio.sleep(WAIT_POLL_S)

    async def leave(self, key: str, claim: bool) -> Tuple[str, Optional[Dict[str, Any]]]:
        """Stop waiting: ``("passive", reply)`` for this request, ``("push", reply)`` to push, or ``("none", None)``.

        Raises:
            One of ``REDIS_FAILURES``.
        """
        how, raw = await script(self._redis(), _LEAVE)(keys=[key], args=["claim" if claim else "abandon"])
        return str(how), json_object(raw)

    async def finish(self, key: str, owner: str, reply: Optional[Dict[str, Any]]) -> str:
        """Complete the message with its answer while ``owner`` holds it: ``wait``, ``push`` or ``lost``.

        Raises:
            One of ``REDIS_FAILURES``.
        """
        answer = json.dumps(reply, ensure_ascii=False) if reply else ""
        return str(await script(self._redis(), _FINISH)(keys=[key, lease_key(key)], args=[answer, owner]))

    async def keep(self, key: str, owner: str) -> None:
        """Renew a turn's lease every quarter of its length until it is cancelled or lost."""
        period_s = max(self.lease_ms / 4000, 0.05)
        while True:
            await asyncio.sleep(period_s)
            try:
                kept = await script(self._redis(), _RENEW)(keys=[lease_key(key)], args=[owner, self.lease_ms])
            except REDIS_FAILURES as error:
                logger.warning("wechat.message.lease_not_renewed error=%s", type(error).__name__)
                continue
            if not kept:
                logger.warning("wechat.message.lease_lost")
                return

    async def release(self, key: str, owner: str) -> None:
        """Give up a lease the turn still owns (compare-and-delete), for WeChat's retry to take the message."""
        try:
            await script(self._redis(), _RELEASE)(keys=[lease_key(key)], args=[owner])
        except REDIS_FAILURES as error:
            logger.warning("wechat.message.lease_not_released error=%s", type(error).__name__)
