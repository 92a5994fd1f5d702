"""What every shopper-facing channel shares: identity, conversation binding, handoff routing, errors.

:class:`ShopperChannel` is the base of the ``app`` and ``web`` channels. It holds the channel's
Redis client, verifies the shop-signed customer id, binds a conversation to its owner
(:mod:`connectors.binding`), keeps a shopper's message for the human agent while a handoff has the
conversation (:mod:`handoff`), and knows the polite Chinese text of every refusal. The
transport (HTTP answers, socket.io events) is the subclass's business.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Optional, Tuple

import aiohttp
import yaml
from rasa.core.channels.channel import InputChannel
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from bot import logs
from bot.identity import (
    channel_identity,
    conversation_token,
    is_valid_customer_id,
    verify_conversation_token,
    verify_identity_token,
    verify_signature,
)
from bot.outbox import Outbox
from bot.push import Deliver, PushDelivery
from bot.settings import Settings, load_settings
from connectors.binding import TURN_LOCK_TTL_MS, TURN_MAX_S, Admission, admit, turn_key
from connectors.payloads import remember_offered, shopper_text
from handoff import keys as handoff_keys
from handoff import texts as handoff_texts
from handoff import tickets as handoff_tickets
from handoff.context import HandoffContext
from handoff.conversation import active_handoff, is_cancel_request, route_shopper_message
from handoff.express import express_enqueue, express_request, is_explicit_request
from handoff.express import metadata_for as express_metadata
from handoff.policy import load_policy
from handoff.queue import cancel as cancel_handoff
from handoff.queue import estimated_wait, queue_position

logger = logging.getLogger(__name__)

SENDER_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Syntax of a conversation id."""

MAX_MESSAGE_CHARS = 2000
"""Longest message text accepted, in characters."""

HEALTH_PROBE_TIMEOUT_S = 0.5
"""Time allowed to the action server's ``/health`` when a turn produced no reply."""

REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_SOCKET_TIMEOUT_S = 2.0

REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)
"""Exceptions that mean Redis could not answer."""

TURN_WAIT_S = 30.0
"""Longest a message waits for the previous message of its conversation before going on anyway."""

TURN_POLL_S = 0.02

PUSH_START_MAX_BACKOFF_S = 30.0
"""Longest wait between two attempts to start push delivery while Redis is down."""

_RELEASE_TURN = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW_TURN = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"

TEXTS_FILE = Path(__file__).with_name("texts.yml")

MESSAGES: Dict[str, str] = {
    str(code): str(text).format(max_chars=MAX_MESSAGE_CHARS)
    for code, text in yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))["errors"].items()
}
"""Polite Chinese text shown to the shopper for each error code (``errors`` of ``connectors/texts.yml``)."""


def handoff_key(sender_id: str) -> str:
    """Redis key whose existence means a human agent has the conversation (:func:`handoff.keys.active`)."""
    return handoff_keys.active(sender_id)


def credential(credentials: Optional[Dict[str, Any]], key: str) -> Optional[Any]:
    """A value of a channel's ``credentials.yml`` section; None when missing or empty."""
    if not credentials:
        return None
    value = credentials.get(key)
    return None if value is None or value == "" else value


_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"  # control characters but tab and line breaks
    "\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\u00ad\u061c]"  # zero-width, bidi and format marks
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """A shopper's text without what no person reads and what would break storage or display.

    Control characters (but tab and line breaks), zero-width and bidirectional marks go; a lone
    surrogate (not a character, and not encodable in UTF-8) becomes U+FFFD; ``\r\n`` becomes
    ``\n``. Everything a person wrote is kept.
    """
    text = _LONE_SURROGATE.sub("\ufffd", text.replace("\r\n", "\n"))
    return _INVISIBLE.sub("", text)


def check_text(text: Any) -> Tuple[str, Optional[str]]:
    """Validate a shopper's message text.

    Args:
        text: the value the client sent as the message.

    Returns:
        The cleaned (:func:`clean_text`), stripped text and None, or ``("", code)`` with the
        :data:`MESSAGES` code of the refusal (``invalid_message``, ``empty_message`` also for a
        text of invisible characters only, ``message_too_long``).
    """
    if not isinstance(text, str):
        return "", "invalid_message"
    if len(text) > 4 * MAX_MESSAGE_CHARS:
        return "", "message_too_long"
    text = clean_text(text).strip()
    if not text:
        return "", "empty_message"
    if len(text) > MAX_MESSAGE_CHARS:
        return "", "message_too_long"
    return text, None


@dataclass(frozen=True)
class HandoffTurn:
    """What a shopper's message did while a human handoff has (or had) the conversation.

    Attributes:
        status: ``cancelled`` (the shopper left the queue), ``with_agent`` or ``queued``.
        notice: the polite text the shopper reads.
        handoff_id: the handoff concerned.
        agent: the name the shopper sees for the agent (``with_agent``).
        position: place in the queue (``queued``).
        wait_s: estimated wait in seconds (``queued``; None when it cannot be estimated).
        eta: the estimated time of the agent's arrival, ISO 8601 to the minute in the shop's timezone.
    """

    status: str
    notice: str
    handoff_id: str
    agent: str = ""
    position: int = 0
    wait_s: Optional[int] = None
    eta: str = ""

    def details(self) -> Dict[str, Any]:
        """The turn as JSON fields: ``status``, ``handoff_id``, ``notice`` and those of the status."""
        body: Dict[str, Any] = {"status": self.status, "handoff_id": self.handoff_id}
        if self.status == "with_agent":
            body["agent"] = self.agent
        elif self.status == "queued":
            body["position"] = self.position
        body["notice"] = self.notice
        if self.status == "queued" and self.wait_s is not None:
            body.update({"eta": self.eta, "eta_minutes": handoff_texts.minutes(self.wait_s)})
        return body


class ShopperChannel(InputChannel):
    """Base of the channels shoppers talk through: verified identity, binding, handoff, Redis.

    Args:
        redis_url: Redis holding conversation bindings, the outbox and handoff state.
        identity_secret: key of the shop's customer id signatures.
        action_server_url: base URL of the action server, probed when a turn produced no reply.
        settings: defaults for every argument left out; :func:`bot.settings.load_settings` when
            omitted.
    """

    def __init__(
        self,
        redis_url: Optional[str] = None,
        identity_secret: Optional[str] = None,
        action_server_url: Optional[str] = None,
        settings: Optional[Settings] = None,
    ) -> None:
        settings = settings or load_settings()
        self.redis_url: str = redis_url or settings.effective_redis_url
        self.identity_secret: str = identity_secret or settings.shop_identity_secret
        probe_host = "127.0.0.1" if settings.action_host in ("0.0.0.0", "") else settings.action_host
        self.action_server_url: str = (action_server_url or f"http://{probe_host}:{settings.action_port}").rstrip("/")
        self.ttl_s: int = settings.tracker_ttl_s
        self.settings: Settings = settings
        self._handoff: Optional[HandoffContext] = None
        self._pool: Optional[ConnectionPool] = None
        self._redis: Optional[Redis] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.push: Optional[PushDelivery] = None
        self._push_starter: Optional[asyncio.Task[None]] = None
        self._http: Optional[aiohttp.ClientSession] = None
        self._http_loop: Optional[asyncio.AbstractEventLoop] = None

    CREDENTIAL_KEYS: Tuple[str, ...] = ("redis_url", "identity_secret", "action_server_url")
    """Keys of the channel's ``credentials.yml`` section, each an argument of the constructor."""

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> ShopperChannel:
        """Build the channel from its ``credentials.yml`` section (every key optional).

        Args:
            credentials: the section: :data:`CREDENTIAL_KEYS`, missing and empty values meaning
                the settings' defaults.

        Returns:
            The channel.
        """
        return cls(**{key: credential(credentials, key) for key in cls.CREDENTIAL_KEYS})

    async def start_push(self, deliver: Deliver) -> None:
        """Start delivering the channel's pushed messages (:class:`bot.push.PushDelivery`), on server start.

        When Redis cannot answer yet, the start is retried in the background with backoff.

        Args:
            deliver: the channel's delivery function.
        """
        self.push = PushDelivery(self.redis(), self.name(), deliver)
        try:
            await self.push.start()
        except REDIS_FAILURES as error:
            logger.error("%s.push.start_failed error=%s", self.name(), type(error).__name__)
            self._push_starter = asyncio.create_task(self._retry_push_start(self.push), name=f"{self.name()}-push-start")

    async def _retry_push_start(self, push: PushDelivery) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await push.start()
                logger.info("%s.push.started", self.name())
                return
            except REDIS_FAILURES as error:
                logger.error("%s.push.start_failed error=%s", self.name(), type(error).__name__)
                delay = min(delay * 2, PUSH_START_MAX_BACKOFF_S)

    async def stop_push(self) -> None:
        """Stop delivering pushed messages; deliveries under way finish first (on server stop)."""
        starter, self._push_starter = self._push_starter, None
        if starter is not None and not starter.done():
            starter.cancel()
        push, self.push = self.push, None
        if push is not None:
            await push.stop()

    @asynccontextmanager
    async def conversation_turn(self, sender_id: str, held: Optional[str] = None) -> AsyncIterator[None]:
        """One message of a conversation at a time, in order, across channels, workers and servers.

        A shopper who writes again while the bot is still answering (often right after 「转人工」,
        while the handoff is being opened) waits here until that turn is over, so the second
        message is routed by the state the first one left: to the agent once the handoff is open,
        never answered by the bot over the agent. When Redis cannot tell or the previous turn
        takes longer than :data:`TURN_WAIT_S`, the message goes on (Rasa's lock still orders it).
        The turn is a lease of ``TURN_LOCK_TTL_MS`` renewed while the message is answered, so the
        turn of a process that died ends within that lease, not after a minute.

        Args:
            sender_id: the conversation id.
            held: the token of the turn when the message already took it (:meth:`admit`); the
                turn is released at the end all the same.
        """
        key, token = turn_key(sender_id), held or uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_WAIT_S
        taken = held is not None
        try:
            while not taken and not (taken := bool(await self.redis().set(key, token, nx=True, px=TURN_LOCK_TTL_MS))):
                if loop.time() > deadline:
                    logger.warning("%s.turn.wait_expired sender=%s", self.name(), sender_id)
                    break
                await asyncio.sleep(TURN_POLL_S)
        except REDIS_FAILURES as error:
            logger.warning("%s.turn.unavailable sender=%s error=%s", self.name(), sender_id, type(error).__name__)
        renewal = asyncio.ensure_future(self._renew_turn(key, token)) if taken else None
        try:
            yield
        finally:
            if renewal is not None:
                renewal.cancel()
                with suppress(asyncio.CancelledError):
                    await renewal
            if taken:
                try:
                    await self.redis().eval(_RELEASE_TURN, 1, key, token)
                except REDIS_FAILURES as error:
                    logger.warning("%s.turn.release_failed sender=%s error=%s", self.name(), sender_id, type(error).__name__)

    async def _renew_turn(self, key: str, token: str) -> None:
        """Renew a held turn's lease every third of it, for :data:`TURN_MAX_S` at most."""
        started = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(TURN_LOCK_TTL_MS / 3000)
            left_ms = int(1000 * (TURN_MAX_S - (asyncio.get_running_loop().time() - started)))
            if left_ms <= 0:
                return
            try:
                if not await self.redis().eval(_RENEW_TURN, 1, key, token, min(TURN_LOCK_TTL_MS, left_ms)):
                    return
            except REDIS_FAILURES as error:
                logger.warning("%s.turn.renew_failed key=%s error=%s", self.name(), key, type(error).__name__)

    def redis(self) -> Redis:
        """The channel's Redis client, created on first use inside the running event loop.

        Returns:
            A client over the channel's one connection pool.
        """
        loop = asyncio.get_running_loop()
        if self._redis is None or self._loop is not loop:
            self._pool = ConnectionPool.from_url(
                self.redis_url,
                decode_responses=True,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            )
            self._redis = Redis(connection_pool=self._pool)
            self._loop = loop
        return self._redis

    def http(self) -> aiohttp.ClientSession:
        """The channel's HTTP client (one connection pool), created on first use inside the running event loop."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.closed or self._http_loop is not loop:
            self._http = aiohttp.ClientSession()
            self._http_loop = loop
        return self._http

    async def close(self) -> None:
        """Close the channel's Redis and HTTP connections (on server stop)."""
        pool, self._pool, self._redis, self._loop = self._pool, None, None, None
        if pool is not None:
            await pool.disconnect()
        session, self._http, self._http_loop = self._http, None, None
        if session is not None and not session.closed:
            await session.close()

    def outbox(self) -> Outbox:
        """The outbox over the channel's Redis client."""
        return Outbox(self.redis(), ttl_s=self.ttl_s)

    def handoff_context(self) -> HandoffContext:
        """The human handoff operations over the channel's Redis client (policy read once)."""
        redis = self.redis()
        if self._handoff is None or self._handoff.redis is not redis:
            from zoneinfo import ZoneInfo

            self._handoff = HandoffContext(redis, load_policy(self.settings.handoff_policy_file), ZoneInfo(self.settings.shop_timezone),
                                           outbox_ttl_s=self.ttl_s)
        return self._handoff

    def resolve_identity(self, identity_token: Optional[str] = None, customer_id: Optional[str] = None,
                         signature: Optional[str] = None) -> Optional[str]:
        """The verified customer id of a request, or None for an anonymous shopper.

        Args:
            identity_token: the shop's identity token (:func:`bot.identity.verify_identity_token`).
            customer_id: the claimed customer id of the old static signature.
            signature: the old static signature, accepted only with
                ``SHOP_IDENTITY_STATIC_SIGNATURES=true``.

        Returns:
            The customer id the token (or allowed signature) proves, else None (never the claimed id).
        """
        if identity_token:
            return verify_identity_token(self.identity_secret, identity_token)
        if (self.settings.shop_identity_static_signatures and customer_id and is_valid_customer_id(customer_id)
                and verify_signature(self.identity_secret, customer_id, signature)):
            return customer_id
        return None

    def conversation_token(self, sender_id: str) -> str:
        """The token an anonymous conversation's client sends back with every later request."""
        return conversation_token(self.identity_secret, sender_id)

    def holds_conversation(self, sender_id: str, token: Any) -> bool:
        """Whether ``token`` is the conversation token of ``sender_id``."""
        return verify_conversation_token(self.identity_secret, sender_id, token)

    def user_metadata(self, sender_id: str, customer_id: Optional[str]) -> Dict[str, Any]:
        """The metadata Rasa receives with a message: built here, never taken from the client.

        Args:
            sender_id: the conversation id.
            customer_id: the verified customer id, None for an anonymous shopper.

        Returns:
            ``{"channel", "verified", "customer_id", "identity", "correlation_id"}``; the actions
            trust only ``identity``, the channel's signature of the conversation and its customer
            (:func:`bot.identity.channel_identity`); ``correlation_id`` is the turn's id in every
            service's logs (:func:`bot.logs.turn_correlation_id`: the request's, else a new one).
        """
        return {"channel": self.name(), "verified": customer_id is not None, "customer_id": customer_id,
                "identity": channel_identity(self.identity_secret, sender_id, customer_id),
                logs.METADATA_KEY: logs.turn_correlation_id()}

    async def bot_text(self, sender_id: str, text: str) -> str:
        """The text Rasa reads: a ``/`` payload only when the conversation was offered it (:mod:`connectors.payloads`)."""
        return await shopper_text(self.redis(), sender_id, text)

    async def remember_buttons(self, sender_id: str, messages: Any) -> None:
        """Remember the payloads of the buttons the bot just sent, so the shopper may press them."""
        try:
            await remember_offered(self.redis(), sender_id, messages, self.ttl_s)
        except REDIS_FAILURES as error:
            logger.warning("%s.buttons.remember_failed sender=%s error=%s", self.name(), sender_id, type(error).__name__)

    async def message_metadata(self, sender_id: str, text: str, customer_id: Optional[str],
                               admission: Optional[Admission] = None) -> Dict[str, Any]:
        """The metadata of a message for the bot, queueing an explicit 「转人工」 first.

        A message that asks for a human and nothing else is queued by the channel before the bot's
        turn (:mod:`handoff.express`), so at a peak the shopper's place does not wait for the
        turns of everyone who wrote at the same moment; the bot's turn then completes the summary
        and tells the shopper their place and the wait. Most such messages are queued when they
        are admitted (:meth:`admit`); one that had to wait for the turn of the message before it
        is queued here. When Redis cannot answer, the bot's turn opens the handoff as for any
        other message.

        Args:
            sender_id: the conversation id.
            text: the shopper's message.
            customer_id: the verified customer id, None for an anonymous shopper.
            admission: what :meth:`admit` did; when it took the turn, it decided the express
                step already.

        Returns:
            :meth:`user_metadata`, with the handoff opened for the message when there is one.
        """
        metadata = self.user_metadata(sender_id, customer_id)
        decided = admission is not None and admission.turn_token is not None
        opened = admission.express if admission is not None else None
        if not decided and is_explicit_request(text):
            try:
                opened = await express_enqueue(self.handoff_context(), sender_id, customer_id, self.name(), text)
            except REDIS_FAILURES as error:
                logger.warning("%s.handoff.express_failed sender=%s error=%s", self.name(), sender_id, type(error).__name__)
        if opened is not None:
            logger.info("%s.handoff.express sender=%s handoff=%s", self.name(), sender_id, opened.handoff_id)
            metadata.update(express_metadata(opened))
            try:  # the conversation's open callback ticket goes with it
                await handoff_tickets.attach(self.handoff_context(), sender_id, customer_id, opened.handoff_id)
            except REDIS_FAILURES as error:
                logger.warning("%s.handoff.ticket_attach_failed sender=%s error=%s", self.name(), sender_id, type(error).__name__)
        return metadata

    async def admit(self, sender_id: str, customer_id: Optional[str], text: Optional[str] = None,
                    proven: bool = True, owner: Optional[str] = None) -> Admission:
        """Admit a message in one Redis round trip: binding, the conversation's turn, an explicit 「转人工」.

        At a peak every shopper's first step waits for the worker's event loop between the bot
        turns of the others, so the channel asks Redis once (:func:`connectors.binding.admit`):
        bind or check the owner, counting a new conversation for the desk's stats; for a message,
        take the conversation's turn when no other message has it, and queue an explicit request
        for a human (:func:`handoff.express.express_request`) when the turn is this
        message's. A message whose turn is taken waits for it in :meth:`conversation_turn`.

        Args:
            sender_id: the conversation id.
            customer_id: the verified customer id, None for an anonymous shopper.
            text: the shopper's message; None only binds (a web session opening).
            proven: for an anonymous shopper, whether the conversation's token came with the
                message; without it only a new conversation is admitted.
            owner: the owner to bind or check instead of the customer id or the anonymous marker
                (:func:`connectors.binding.admit`).

        Returns:
            The binding, the turn's token when taken, the handoff queued when one was.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
        """
        express = express_request(self.handoff_context(), sender_id, customer_id, self.name(), text) if text else None
        return await admit(self.redis(), sender_id, customer_id, self.ttl_s, self._stats_key(),
                           turn_token=uuid.uuid4().hex if text is not None else None, express=express, proven=proven,
                           owner=owner)

    def _stats_key(self) -> str:
        ctx = self.handoff_context()
        return handoff_keys.day_stats(ctx.day(ctx.now()))

    async def handoff_turn(self, sender_id: str, text: str, customer_id: Optional[str] = None,
                           admission: Optional[Admission] = None, message_id: str = "") -> Optional[HandoffTurn]:
        """Keep a message for the human agent instead of the bot while a handoff has the conversation.

        The message is appended to the handoff transcript in order (one atomic step with the check),
        the bot never sees it and so never answers over the agent, and the Rasa tracker stays as it
        was. A waiting shopper may leave the queue (“取消人工”) and talk to the bot again. A verified
        customer whose handoff is open in another conversation (another channel) joins it. A shopper
        who writes again in the conversation of an open callback ticket while agents are online is
        queued with the ticket (:func:`handoff.tickets.resume`) and told so.

        Args:
            sender_id: the conversation id.
            text: the shopper's message.
            customer_id: the verified customer id, None for an anonymous shopper.
            admission: what admitting the message did; a message that opened the handoff itself
                then goes to the bot, which completes the summary.
            message_id: the client's id of the message, '' for none (a retry is written once).

        Returns:
            None when the bot has the conversation; else what happened to the message.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
        """
        if admission is not None and admission.express is not None:
            return None
        ctx = self.handoff_context()
        if is_cancel_request(text):
            handoff_id = await active_handoff(ctx, sender_id)
            if handoff_id and await cancel_handoff(ctx, sender_id, handoff_id, text) == "ok":
                logger.info("%s.handoff.cancelled sender=%s handoff=%s", self.name(), sender_id, handoff_id)
                return HandoffTurn("cancelled", handoff_texts.cancelled(), handoff_id)
        routed = await route_shopper_message(ctx, sender_id, text, customer_id, self.name(), message_id)
        resumed = ""
        if routed is None:  # the shopper of an open callback ticket is back while agents are online: queued with it
            back = await handoff_tickets.resume(ctx, sender_id, text, customer_id, self.name(), message_id)
            if back is None:
                return None
            routed, resumed = back
        logger.info("%s.message.to_handoff sender=%s handoff=%s status=%s", self.name(), sender_id, routed.handoff_id, routed.status)
        if routed.status == "assigned":
            name = routed.agent_name or routed.agent
            return HandoffTurn("with_agent", handoff_texts.with_agent_ack(name), routed.handoff_id, agent=name)
        position = await queue_position(ctx, routed.handoff_id)
        wait_s = await estimated_wait(ctx, position)
        now = ctx.local(ctx.now())
        eta = ctx.local(ctx.now() + wait_s).isoformat(timespec="minutes") if wait_s is not None else ""
        notice = handoff_texts.callback_resumed(resumed, position, wait_s, now) if resumed else handoff_texts.waiting_ack(position, wait_s, now)
        return HandoffTurn("queued", notice, routed.handoff_id, position=position, wait_s=wait_s, eta=eta)

    async def action_server_reachable(self) -> bool:
        """Probe the action server's ``/health`` with a short timeout.

        Returns:
            True when it answers 200.
        """
        timeout = aiohttp.ClientTimeout(total=HEALTH_PROBE_TIMEOUT_S)
        try:
            async with self.http().get(f"{self.action_server_url}/health", timeout=timeout) as probe:
                return probe.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            return False

    async def in_handoff(self, sender_id: str) -> bool:
        """Tell whether a human agent has the conversation.

        Args:
            sender_id: the conversation id.

        Returns:
            True when ``handoff:active:{sender_id}`` exists; False when it does not or Redis
            cannot tell.
        """
        try:
            return bool(await self.redis().exists(handoff_key(sender_id)))
        except REDIS_FAILURES as error:
            logger.warning("%s.handoff.check_failed sender=%s error=%s", self.name(), sender_id, type(error).__name__)
            return False

    async def silent_turn_code(self, sender_id: str) -> Optional[str]:
        """Why a turn produced no reply: None when a human agent has the conversation now.

        Args:
            sender_id: the conversation id.

        Returns:
            None during a handoff; else ``no_reply`` when the action server is up,
            ``action_server_unreachable`` when it is not.
        """
        if await self.in_handoff(sender_id):
            logger.info("%s.message.with_agent sender=%s", self.name(), sender_id)
            return None
        code = "no_reply" if await self.action_server_reachable() else "action_server_unreachable"
        logger.error("%s.message.no_reply sender=%s code=%s", self.name(), sender_id, code)
        return code
