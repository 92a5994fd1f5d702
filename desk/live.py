"""Live side of the desk: events fanned out to agents' websockets, and the periodic tasks run by one
desk instance at a time (queue position notices, turning the queue into callbacks at closing time)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Dict

from redis.asyncio import Redis

from bot.handoff import keys
from bot.handoff.agents import availability
from bot.handoff.callbacks import queued_to_callbacks
from bot.handoff.context import REDIS_FAILURES, HandoffContext
from bot.handoff.policy import is_open
from bot.handoff.queue import refresh_positions

logger = logging.getLogger(__name__)

LEADER_TTL_MS = 6000
TICK_S = 2.0


@dataclass
class Hub:
    """The websockets of logged-in agents on this desk instance."""

    sockets: Dict[Any, str] = field(default_factory=dict)

    def add(self, ws: Any, agent: str) -> None:
        """Start sending events to a socket."""
        self.sockets[ws] = agent

    def remove(self, ws: Any) -> None:
        """Stop sending events to a socket."""
        self.sockets.pop(ws, None)

    async def broadcast(self, payload: str) -> None:
        """Send one event to every socket; a socket that fails is dropped."""
        for ws in list(self.sockets):
            try:
                await asyncio.wait_for(ws.send(payload), timeout=2.0)
            except Exception:  # a closed or stuck socket must not stop the others
                self.remove(ws)


async def relay_events(redis: Redis, hub: Hub, stop: asyncio.Event) -> None:
    """Forward every event published on ``handoff:events`` to the hub, reconnecting after outages."""
    while not stop.is_set():
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.EVENTS_CHANNEL)
            await hub.broadcast(json.dumps({"type": "resync"}))
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message and message.get("type") == "message":
                    await hub.broadcast(str(message["data"]))
        except asyncio.CancelledError:
            raise
        except REDIS_FAILURES as error:
            logger.warning("desk.events.redis_unavailable error=%s", type(error).__name__)
            await _pause(stop, 1.0)
        finally:
            try:
                await pubsub.reset()
            except REDIS_FAILURES:
                pass


def instance_name(port: int) -> str:
    """A name for this desk instance, stable across its restarts: host and port."""
    return f"desk-{socket.gethostname()}-{port}"


async def hold_leadership(redis: Redis, me: str) -> bool:
    """Take or renew the leader lock; True while this instance is the leader."""
    if await redis.set(keys.LEADER_LOCK, me, nx=True, px=LEADER_TTL_MS):
        return True
    if await redis.get(keys.LEADER_LOCK) == me:
        await redis.pexpire(keys.LEADER_LOCK, LEADER_TTL_MS)
        return True
    return False


async def periodic(ctx: HandoffContext, me: str, stop: asyncio.Event, tick_s: float = TICK_S) -> None:
    """Every tick, on the leader only: tell waiting shoppers their new position; after closing
    time, or when nobody has been online for ``callback.unattended_after_s``, turn waiting handoffs
    into callbacks with a concrete window."""
    me = f"{me}-{os.getpid()}"
    while not stop.is_set():
        try:
            if await hold_leadership(ctx.redis, me):
                if is_open(ctx.policy, ctx.local(ctx.now()), ctx.tz):
                    await refresh_positions(ctx)
                    if not (await availability(ctx)).online:
                        converted = await queued_to_callbacks(ctx, waited_s=ctx.policy.unattended_after_s)
                        if converted:
                            logger.info("desk.unattended.converted_to_callbacks count=%d", converted)
                else:
                    converted = await queued_to_callbacks(ctx)
                    if converted:
                        logger.info("desk.closed.converted_to_callbacks count=%d", converted)
        except asyncio.CancelledError:
            raise
        except REDIS_FAILURES as error:
            logger.warning("desk.periodic.redis_unavailable error=%s", type(error).__name__)
        await _pause(stop, tick_s)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass

