"""Live side of the desk: events fanned out to agents' websockets, and the periodic tasks run by one
desk instance at a time (queue position notices, turning the queue into callbacks at closing time),
and the recovery sweep and the carrier-urge worker every instance runs (:func:`sweeper`,
:func:`carrier_urge_worker`).

Queue-level events (queued, claimed, transferred, resolved, callbacks...) reach every agent; events
that carry a conversation's content (messages, notes) reach only the agents who may read that
conversation (:func:`desk.access.may_see`). A logout is published too, so every desk instance
closes that session's sockets at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from redis.asyncio import Redis

from desk.access import CONVERSATION_EVENTS, may_see
from desk.auth import Agent
from desk.texts import say
from handoff import keys
from handoff.agents import availability
from handoff.callbacks import queued_to_callbacks
from handoff.carrier_urges import UrgeReader, poll_due
from handoff.context import REDIS_FAILURES, HandoffContext
from handoff.policy import is_open
from handoff.queue import refresh_positions
from handoff.recovery import sweep
from handoff.reviews import open_sla_reviews

logger = logging.getLogger(__name__)

LEADER_TTL_MS = 6000
TICK_S = 2.0
URGE_TICK_S = 15.0
"""How often each desk looks for carrier-urge tickets due for a poll."""
SESSION_CLOSED = "session_closed"
"""Event published at logout (with the session's fingerprint, never its token); not forwarded."""
CLOSE_SESSION_ENDED = 4401
"""Websocket close code when the session is gone (logout) or expired."""
SESSION_ENDED = json.dumps({"type": "session_ended", "code": "session_expired", "message": say("session_ended")}, ensure_ascii=False)


def fingerprint(token: str) -> str:
    """A session's name in events and logs: a hash of its token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Viewer:
    """Who a socket belongs to: the agent and their session's fingerprint."""

    agent: Agent
    session: str


@dataclass
class Hub:
    """The websockets of logged-in agents on this desk instance."""

    sockets: Dict[Any, Viewer] = field(default_factory=dict)

    def add(self, ws: Any, agent: Agent, token: str) -> None:
        """Start sending events to a socket."""
        self.sockets[ws] = Viewer(agent, fingerprint(token))

    def remove(self, ws: Any) -> None:
        """Stop sending events to a socket."""
        self.sockets.pop(ws, None)

    async def broadcast(self, payload: str, audience: Optional[Callable[[Agent], bool]] = None) -> None:
        """Send one event to every socket (of the agents ``audience`` admits); a socket that fails is dropped."""
        for ws, viewer in list(self.sockets.items()):
            if audience is not None and not audience(viewer.agent):
                continue
            try:
                await asyncio.wait_for(ws.send(payload), timeout=2.0)
            except Exception:  # a closed or stuck socket must not stop the others
                self.remove(ws)

    async def close_session(self, session: str) -> int:
        """Close the sockets of a session (by fingerprint) that has ended; returns how many."""
        closing = [ws for ws, viewer in self.sockets.items() if viewer.session == session]
        for ws in closing:
            self.remove(ws)
            try:
                await asyncio.wait_for(ws.send(SESSION_ENDED), timeout=2.0)
                await asyncio.wait_for(ws.close(code=CLOSE_SESSION_ENDED, reason="session_expired"), timeout=2.0)
            except Exception:  # already closed or stuck: it is out of the hub either way
                continue
        return len(closing)


async def deliver(redis: Redis, hub: Hub, payload: str) -> None:
    """Pass one published event on to the sockets that may have it."""
    try:
        event = json.loads(payload)
    except ValueError:
        return
    if not isinstance(event, dict):
        return
    kind = event.get("type")
    if kind == SESSION_CLOSED:
        await hub.close_session(str(event.get("session") or ""))
        return
    handoff_id = event.get("handoff_id")
    if kind not in CONVERSATION_EVENTS:
        await hub.broadcast(payload)
    elif keys.is_handoff_id(handoff_id):
        owner = await redis.hget(keys.record(str(handoff_id)), "agent") or ""
        await hub.broadcast(payload, lambda agent: may_see(agent, {"agent": owner}))
    else:
        await hub.broadcast(payload, lambda agent: agent.supervisor)


async def relay_events(redis: Redis, hub: Hub, stop: asyncio.Event) -> None:
    """Forward the events published on ``handoff:events`` to the hub, reconnecting after outages."""
    while not stop.is_set():
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.EVENTS_CHANNEL)
            await hub.broadcast(json.dumps({"type": "resync"}))
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message and message.get("type") == "message":
                    await deliver(redis, hub, str(message["data"]))
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


async def sweeper(ctx: HandoffContext, stop: asyncio.Event, interval_s: Optional[float] = None) -> None:
    """On every desk instance, every ``recovery.sweep_interval_s``: return the conversations of
    agents gone offline to the queue (or to callbacks) and turn unclaimed waits into callbacks
    (:func:`handoff.recovery.sweep`; each step is atomic, so desks sweeping at once never
    change a conversation twice), and open a supervisor review for each open handoff past its
    first-response target (:func:`handoff.reviews.open_sla_reviews`). A Redis outage is ridden
    out: the next sweep picks up."""
    while not stop.is_set():
        try:
            result = await sweep(ctx)
            await open_sla_reviews(ctx)
            if result.changed:
                logger.info("desk.sweep requeued=%d callbacks_agent_offline=%d callbacks_unclaimed=%d", result.requeued,
                            result.callbacks_agent_offline, result.callbacks_unclaimed)
        except asyncio.CancelledError:
            raise
        except REDIS_FAILURES as error:
            logger.warning("desk.sweep.redis_unavailable error=%s", type(error).__name__)
        await _pause(stop, interval_s if interval_s is not None else ctx.policy.sweep_interval_s)


async def carrier_urge_worker(ctx: HandoffContext, crm: UrgeReader, stop: asyncio.Event, interval_s: float = URGE_TICK_S) -> None:
    """On every desk instance, every ``interval_s``: ask the CRM about the carrier-urge tickets whose
    poll time has come and tell the shoppers the carrier's answer, or, past the due time without one,
    apologise and leave the ticket overdue for an agent (:func:`handoff.carrier_urges.poll_due`;
    each ticket is claimed in one Lua step and told in another, so desks polling at once tell a
    shopper once). A Redis outage is ridden out; a CRM outage is retried per ticket."""
    from actions.crm import CRMError  # the CRM client the desk's workspace already uses

    while not stop.is_set():
        try:
            result = await poll_due(ctx, crm, (CRMError,))
            if result.delivered:
                logger.info("desk.carrier_urges %s", " ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))
        except asyncio.CancelledError:
            raise
        except REDIS_FAILURES as error:
            logger.warning("desk.carrier_urges.redis_unavailable error=%s", type(error).__name__)
        await _pause(stop, interval_s)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass

