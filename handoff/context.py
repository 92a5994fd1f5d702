"""What every handoff operation needs: a Redis client with timeouts, the policy, the shop's clock.

One connection pool per process and event loop (created on first use inside the running loop),
``decode_responses=True``, explicit connect and socket timeouts, so a slow or restarting Redis
makes an operation fail fast instead of stalling an action, a channel request or the desk.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Dict, Optional, Tuple
from zoneinfo import ZoneInfo

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from bot.settings import Settings, load_settings
from handoff.policy import ServicePolicy, load_policy

REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)
"""Exceptions that mean Redis could not answer."""

_pools: Dict[Tuple[str, int, float, bool], Tuple[asyncio.AbstractEventLoop, Redis]] = {}


def redis_client(url: str, timeout_s: float = 1.0, max_connections: int = 50, decode_responses: bool = True) -> Redis:
    """A pooled asyncio client for ``url`` in the running event loop.

    Args:
        url: ``redis://host:port/db``.
        timeout_s: connect and per-command socket timeout.
        max_connections: size of the pool; a caller waits up to twice ``timeout_s`` (at least a
            second) for a free connection.
        decode_responses: answers as ``str`` (the default) or as the stored bytes.

    Returns:
        A client sharing one pool per (url, loop, timeout, decoding).
    """
    loop = asyncio.get_running_loop()
    key = (url, id(loop), timeout_s, decode_responses)
    cached = _pools.get(key)
    if cached is not None and cached[0] is loop:
        return cached[1]
    pool = BlockingConnectionPool.from_url(
        url,
        timeout=max(1, int(timeout_s * 2)),
        decode_responses=decode_responses,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        max_connections=max_connections,
        health_check_interval=30,
        retry_on_timeout=False,
    )
    client = Redis(connection_pool=pool)
    _pools[key] = (loop, client)
    return client


async def close_clients() -> None:
    """Close every pool created in the running event loop."""
    loop = asyncio.get_running_loop()
    for key, (owner, client) in list(_pools.items()):
        if owner is loop:
            del _pools[key]
            await client.connection_pool.disconnect()


@dataclass(frozen=True)
class HandoffContext:
    """Redis, policy and clock of the handoff operations.

    Attributes:
        redis: an asyncio client with ``decode_responses=True``.
        policy: the human service policy.
        tz: the shop's timezone (dates and times shoppers and agents read).
        outbox_ttl_s: how long pushed messages and ended handoffs (records, transcripts, notes,
            tickets) are kept: the tracker's retention (TRACKER_TTL_S).
        outbox_maxlen: approximate number of pushed messages kept per conversation.
        redeliver_idle_ms: a request a desk has read but not acknowledged for this long is taken
            over by another desk (or the same one after a restart).
    """

    redis: Redis
    policy: ServicePolicy
    tz: ZoneInfo
    outbox_ttl_s: int = 30 * 24 * 3600
    outbox_maxlen: int = 1000
    redeliver_idle_ms: int = 10000

    def now(self) -> float:
        """Epoch seconds."""
        return time.time()

    def local(self, epoch_s: float) -> datetime:
        """An epoch time in the shop's timezone."""
        return datetime.fromtimestamp(epoch_s, self.tz)

    def day(self, epoch_s: float) -> str:
        """The shop-time date of an epoch time, ``YYYY-MM-DD``."""
        return self.local(epoch_s).date().isoformat()


def context_from_settings(settings: Optional[Settings] = None, redis: Optional[Redis] = None) -> HandoffContext:
    """A context from the settings: REDIS_URL, HANDOFF_POLICY_FILE, SHOP_TIMEZONE, TRACKER_TTL_S.

    Args:
        settings: the settings; :func:`bot.settings.load_settings` when omitted.
        redis: a client to use instead of the pooled one (must be called inside an event loop
            otherwise).
    """
    settings = settings or load_settings()
    client = redis or redis_client(settings.effective_redis_url, settings.handoff_redis_timeout_s)
    return HandoffContext(
        redis=client,
        policy=load_policy(settings.handoff_policy_file),
        tz=ZoneInfo(settings.shop_timezone),
        outbox_ttl_s=settings.tracker_ttl_s,
        redeliver_idle_ms=settings.handoff_redeliver_idle_ms,
    )
