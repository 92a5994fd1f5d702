"""The desk's intake of handoff requests: a consumer group on ``handoff:requests``.

Each request is materialized (record + queue entry, once, keyed by its handoff id) and only then
acknowledged and deleted from the stream. Requests another desk read but never acknowledged (it
crashed) are taken over with XAUTOCLAIM once idle for ``HANDOFF_REDELIVER_IDLE_MS``; this desk's
own unacknowledged requests from before a restart are read again first. Redis restarts and
failovers are ridden out with a backoff; a group lost with the data is created again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Sequence, Tuple

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot import logs
from handoff import keys
from handoff.context import REDIS_FAILURES, HandoffContext
from handoff.models import HandoffRequest
from handoff.queue import REFINED, materialize

logger = logging.getLogger(__name__)

DEAD_LETTERS = keys.DEAD_REQUESTS_STREAM
"""Stream where unreadable requests are kept for a human to look at."""

Entry = Tuple[str, dict]

INTAKE_CONCURRENCY = 16
"""Conversations materialized at the same time (each holds one pooled Redis connection at a time)."""


async def ensure_group(redis: Redis) -> None:
    """Create the consumer group (and the stream) unless they exist; reads from the stream's start."""
    try:
        await redis.xgroup_create(keys.REQUESTS_STREAM, keys.CONSUMER_GROUP, id="0", mkstream=True)
    except ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


class Intake:
    """Consumes handoff requests for one desk instance.

    Args:
        ctx: the handoff context (short timeouts).
        blocking: a client whose socket timeout exceeds ``block_ms`` (for XREADGROUP BLOCK).
        consumer: this desk's consumer name, stable across restarts of the same instance.
        batch: entries read per call.
        block_ms: how long a read waits for new requests.
    """

    def __init__(self, ctx: HandoffContext, blocking: Redis, consumer: str, batch: int = 50, block_ms: int = 1000) -> None:
        self.ctx = ctx
        self.blocking = blocking
        self.consumer = consumer
        self.batch = batch
        self.block_ms = block_ms
        self.processed = 0

    async def _handle(self, entries: Sequence[Entry]) -> int:
        """Materialize a batch: one conversation's requests in stream order, conversations concurrently.

        At a peak many shoppers ask for a human at once; taking their requests in one after the
        other would make the last wait for every Redis round trip of the others. A conversation's
        own requests (a request, then its refinement) stay in order. Entries are acknowledged once
        handled; when Redis fails for some, the others are acknowledged and the error is raised,
        so the failed ones are read again (materializing is idempotent).
        """
        done: List[str] = []
        chains: Dict[str, List[Tuple[str, HandoffRequest]]] = {}
        for entry_id, fields in entries:
            if not fields:  # deleted after delivery: nothing to do but acknowledge
                done.append(entry_id)
                continue
            try:
                request = HandoffRequest.from_json(fields.get("payload", ""))
                if request.handoff_id != fields.get("handoff_id") or not keys.is_handoff_id(request.handoff_id):
                    raise ValueError("handoff id mismatch")
            except ValueError as error:
                logger.error("desk.intake.unreadable entry=%s error=%s", entry_id, error)
                await self.ctx.redis.xadd(DEAD_LETTERS, {"entry_id": entry_id, **{k: str(v) for k, v in fields.items()}}, maxlen=10000)
                done.append(entry_id)
                continue
            chains.setdefault(request.sender, []).append((entry_id, request))
        slots = asyncio.Semaphore(INTAKE_CONCURRENCY)
        outcomes = await asyncio.gather(*(self._materialize_chain(chain, done, slots) for chain in chains.values()),
                                        return_exceptions=True)
        if done:
            async with self.ctx.redis.pipeline(transaction=True) as pipe:
                pipe.xack(keys.REQUESTS_STREAM, keys.CONSUMER_GROUP, *done)
                pipe.xdel(keys.REQUESTS_STREAM, *done)
                await pipe.execute()
        self.processed += len(done)
        failure = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
        if failure is not None:
            raise failure
        return len(done)

    async def _materialize_chain(self, chain: Sequence[Tuple[str, HandoffRequest]], done: List[str], slots: asyncio.Semaphore) -> None:
        """Materialize one conversation's requests in order, noting each handled entry in ``done``."""
        for entry_id, request in chain:
            with logs.continued(request.correlation_id):  # the desk's lines of the turn that asked for it
                async with slots:
                    result = await materialize(self.ctx, request)
                logger.info("desk.intake.materialized handoff=%s sender=%s result=%s", request.handoff_id, request.sender,
                            {0: "already", 1: "queued", 2: "cancelled", REFINED: "refined"}.get(result, result))
            done.append(entry_id)

    async def reclaim(self) -> int:
        """Take over requests other consumers left unacknowledged for too long; returns how many were handled."""
        handled = 0
        start = "0-0"
        while True:
            reply: Any = await self.ctx.redis.xautoclaim(
                keys.REQUESTS_STREAM, keys.CONSUMER_GROUP, self.consumer, self.ctx.redeliver_idle_ms, start_id=start, count=self.batch
            )
            start, entries = reply[0], reply[1]
            handled += await self._handle(entries)
            if not entries or start in ("0-0", b"0-0"):
                return handled

    async def own_pending(self) -> int:
        """Handle requests this consumer read before a restart but never acknowledged."""
        handled = 0
        while True:
            reply = await self.ctx.redis.xreadgroup(keys.CONSUMER_GROUP, self.consumer, {keys.REQUESTS_STREAM: "0"}, count=self.batch)
            entries = reply[0][1] if reply else []
            if not entries:
                return handled
            handled += await self._handle(entries)

    async def read_new(self) -> int:
        """Wait up to ``block_ms`` for new requests and handle them."""
        reply = await self.blocking.xreadgroup(
            keys.CONSUMER_GROUP, self.consumer, {keys.REQUESTS_STREAM: ">"}, count=self.batch, block=self.block_ms
        )
        entries = reply[0][1] if reply else []
        return await self._handle(entries)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, surviving Redis outages."""
        backoff = 0.2
        recovered = False
        last_reclaim = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                if not recovered:
                    await ensure_group(self.ctx.redis)
                    await self.own_pending()
                    await self.reclaim()
                    recovered = True
                    last_reclaim = loop.time()
                if loop.time() - last_reclaim >= max(0.5, self.ctx.redeliver_idle_ms / 2000):
                    await self.reclaim()
                    last_reclaim = loop.time()
                await self.read_new()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except ResponseError as error:
                if "NOGROUP" in str(error):
                    logger.warning("desk.intake.group_missing: creating it again")
                    recovered = False
                    continue
                logger.error("desk.intake.error %s", error)
                await self._pause(stop, backoff)
                backoff = min(backoff * 2, 5.0)
            except REDIS_FAILURES as error:
                logger.warning("desk.intake.redis_unavailable error=%s; retrying in %.1f s", type(error).__name__, backoff)
                recovered = False
                await self._pause(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass
