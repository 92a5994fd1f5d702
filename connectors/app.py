"""The ``app`` input channel: a REST webhook for the shop's mobile app and site backends.

Registered in ``credentials.yml`` as::

    connectors.app.AppInput:
      redis_url: redis://127.0.0.1:6390/0       # optional, REDIS_URL or the embedded server
      identity_secret: dev-shop-secret          # optional, SHOP_IDENTITY_SECRET
      action_server_url: http://127.0.0.1:5055  # optional, ACTION_HOST / ACTION_PORT

Rasa mounts the routes under ``/webhooks/app``:

- ``GET /``: health check.
- ``POST /webhook``: ``{"sender", "message", "message_id", "metadata": {"identity_token"}}`` → the bot's replies
  as a JSON list in Rasa's REST format; while a human handoff has the conversation, ``202`` with
  the queue position and ETA or the agent's name, the message kept for the agent
  (:mod:`handoff`) and never passed to the bot. The first answer of an anonymous conversation
  carries ``X-Conversation-Token``, which every later request for it sends back. ``message_id``
  (optional, the syntax of a sender id) makes a retry safe while an agent has the conversation: the
  same id is written into the agent's transcript once and answered ``202`` again. A request's
  ``X-Request-ID`` (8-64 letters, digits, dashes; anything else is replaced) is the turn's
  correlation id in every service's logs (:mod:`bot.logs`); the answer carries the id used.
- ``GET /messages/<sender>?after=&limit=`` with ``X-Identity-Token`` (or ``X-Conversation-Token``):
  messages pushed to the conversation later (agent replies, notices) → ``{"messages": [...], "cursor": ...}``.

A webhook request may name a ``callback_url`` where pushed messages are POSTed too: only of an
origin in ``APP_CALLBACK_ORIGINS``, connecting only to addresses outside the non-global ranges
unless ``APP_CALLBACK_ALLOWED_NETWORKS`` allows them (:mod:`bot.callback_targets`,
:mod:`connectors.callback_http`), never following a redirect.

Unlike Rasa's REST channel, which answers ``200 []`` whatever happened and logs the shopper's text,
this channel verifies who the shopper is, never lets one shopper write into or read another's
conversation, answers failures with an HTTP error and a polite message, and keeps the shopper's
text and customer id out of its logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import logs, metrics
from bot.callback_targets import callback_target, parse_networks, parse_origins, valid_callback_url
from bot.identity import sign_callback
from bot.outbox import MAX_FETCH_LIMIT, InvalidCursor, validate_cursor
from bot.push import DeliveryFailed, register_conversation
from bot.settings import Settings
from connectors.binding import ANONYMOUS_OWNER, Admission, conversation_owner
from connectors.callback_http import ForbiddenAddress, callback_session, forbidden, refuse_literal_address
from connectors.common import MAX_MESSAGE_CHARS, MESSAGES, REDIS_FAILURES, SENDER_PATTERN, ShopperChannel, check_text, handoff_key

__all__ = ["MAX_BODY_BYTES", "MAX_MESSAGE_CHARS", "MESSAGES", "SENDER_PATTERN", "AppInput", "handoff_key"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted, in bytes."""

IDENTITY_TOKEN_HEADER = "X-Identity-Token"
"""Header carrying the shop's identity token on ``GET /messages/<sender>``."""

CONVERSATION_TOKEN_HEADER = "X-Conversation-Token"
"""Header of an anonymous conversation's token: answered with its first message, sent back with every later request."""

CONVERSATION_ID_HEADER = "X-Conversation-Id"
"""Header naming the conversation of an answer (the id the server chose when the request had none)."""


def new_conversation_id() -> str:
    """A conversation id nobody can guess, for a request that did not bring one."""
    return f"app-{secrets.token_hex(16)}"


DEFAULT_PAGE_SIZE = 100
"""Messages returned by ``GET /messages/<sender>`` when no limit is given (also the maximum)."""


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, dumps=json.dumps, ensure_ascii=False)


def _error(code: str, status: int) -> HTTPResponse:
    return _json({"error": {"code": code, "message": MESSAGES[code]}}, status=status)


CALLBACK_TIMEOUT_S = 3.0
"""Time allowed to the shop's callback endpoint for one delivery (retried with backoff after)."""


class AppInput(ShopperChannel):
    """Input channel for the shop's app: verified identity, conversation binding, honest errors.

    Its arguments are those of :class:`connectors.common.ShopperChannel`.

    Raises:
        bot.callback_targets.CallbackConfigError: ``APP_CALLBACK_ORIGINS`` or
            ``APP_CALLBACK_ALLOWED_NETWORKS`` holds an entry that cannot be used.
    """

    def __init__(self, redis_url: Optional[str] = None, identity_secret: Optional[str] = None,
                 action_server_url: Optional[str] = None, settings: Optional[Settings] = None) -> None:
        super().__init__(redis_url, identity_secret, action_server_url, settings)
        self.callback_origins = parse_origins(self.settings.app_callback_origins)
        self.callback_networks = parse_networks(self.settings.app_callback_allowed_networks)
        self._callback_http: Optional[aiohttp.ClientSession] = None
        self._callback_loop: Optional[asyncio.AbstractEventLoop] = None

    @classmethod
    def name(cls) -> str:
        """Name of the channel; also its URL prefix under ``/webhooks/``."""
        return "app"

    async def route_to_handoff(self, sender_id: str, text: str, customer_id: Optional[str] = None,
                               admission: Optional[Admission] = None, message_id: str = "") -> Optional[HTTPResponse]:
        """Keep a message for the human agent instead of the bot while a handoff has the conversation.

        See :meth:`connectors.common.ShopperChannel.handoff_turn`.

        Args:
            sender_id: the conversation id.
            text: the shopper's message.
            customer_id: the verified customer id, None for an anonymous shopper.
            admission: what admitting the message did.
            message_id: the client's ``message_id``, '' for none.

        Returns:
            None when the bot has the conversation; else 202 with ``status`` ``queued`` (with
            ``position``, ``eta`` and ``eta_minutes``) or ``with_agent`` (with ``agent``), and a
            ``notice`` for the shopper; 200 with the bot's answer when the shopper cancelled.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
        """
        turn = await self.handoff_turn(sender_id, text, customer_id, admission, message_id)
        if turn is None:
            return None
        if turn.status == "cancelled":
            return _json([{"recipient_id": sender_id, "text": turn.notice}])
        return _json({**turn.details(), "messages": []}, status=202)

    async def handle_webhook(self, request: Request, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        """Validate, authenticate and bind one shopper message, pass it to the bot, return replies.

        Args:
            request: the ``POST /webhook`` request.
            on_new_message: Rasa's handler of user messages.

        Returns:
            200 with the replies; 202 while an agent has the conversation; 400, 403 or 413 for a
            refused message; 502 when the turn produced no reply; 503 when the bot is unavailable.
        """
        body = request.body or b""
        if len(body) > MAX_BODY_BYTES:
            return _error("payload_too_large", 413)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested too deep
            return _error("invalid_json", 400)
        if not isinstance(payload, dict):
            return _error("invalid_json", 400)

        sender_id = payload.get("sender")
        if sender_id is None:
            sender_id = new_conversation_id()
        if not isinstance(sender_id, str) or SENDER_PATTERN.fullmatch(sender_id) is None:
            return _error("invalid_sender", 400)
        text, refusal = check_text(payload.get("message"))
        if refusal is not None:
            return _error(refusal, 413 if refusal == "message_too_long" else 400)
        message_id = payload.get("message_id", "")
        if not isinstance(message_id, str) or (message_id and SENDER_PATTERN.fullmatch(message_id) is None):
            return _error("invalid_message_id", 400)

        client_metadata = payload.get("metadata")
        if client_metadata is None:
            client_metadata = {}
        if not isinstance(client_metadata, dict):
            return _error("invalid_metadata", 400)
        token = client_metadata.get("identity_token")
        claimed_id = client_metadata.get("customer_id")
        signature = client_metadata.get("signature")
        if any(value is not None and not isinstance(value, str) for value in (token, claimed_id, signature)):
            return _error("invalid_metadata", 400)

        customer_id = self.resolve_identity(token, claimed_id, signature)
        verified = customer_id is not None
        if token and not verified:
            logger.info("app.identity.refused sender=%s", sender_id)
            return _error("invalid_identity", 401)
        if claimed_id and not verified:
            logger.info("app.identity.unverified sender=%s", sender_id)
        proven = verified or self.holds_conversation(sender_id, request.headers.get(CONVERSATION_TOKEN_HEADER))

        callback_url = payload.get("callback_url")
        if callback_url is not None and not valid_callback_url(callback_url, self.callback_origins):
            return _error("invalid_callback_url", 400)

        try:
            admission = await self.admit(sender_id, customer_id, text, proven=proven)
        except REDIS_FAILURES as error:
            logger.error("app.binding.failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        binding = admission.binding
        if not binding.allowed:
            logger.warning("app.conversation.forbidden sender=%s verified=%s", sender_id, verified)
            return _error("conversation_forbidden", 403)
        async with self.conversation_turn(sender_id, held=admission.turn_token):
            if callback_url is not None:
                try:
                    await register_conversation(self.redis(), sender_id, self.name(), {"callback_url": callback_url}, self.ttl_s)
                except REDIS_FAILURES as error:
                    logger.error("app.callback.register_failed sender=%s error=%s", sender_id, type(error).__name__)
                    return _error("bot_unavailable", 503)
            answer = await self.take_turn(sender_id, text, customer_id, admission, on_new_message, message_id)
        answer.headers[CONVERSATION_ID_HEADER] = sender_id
        if not verified and binding.created:
            answer.headers[CONVERSATION_TOKEN_HEADER] = self.conversation_token(sender_id)
        return answer

    async def take_turn(self, sender_id: str, text: str, customer_id: Optional[str], admission: Admission,
                        on_new_message: Callable[[UserMessage], Awaitable[Any]], message_id: str = "") -> HTTPResponse:
        """Route one accepted message to the agent or the bot and answer the webhook.

        Args:
            sender_id: the conversation id.
            text: the shopper's message.
            customer_id: the verified customer id, None for an anonymous shopper.
            admission: what admitting the message did.
            on_new_message: Rasa's handler of user messages.
            message_id: the client's ``message_id``, '' for none.
        """
        verified = customer_id is not None
        try:
            to_agent = await self.route_to_handoff(sender_id, text, customer_id, admission, message_id)
        except REDIS_FAILURES as error:
            logger.error("app.handoff.route_failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        if to_agent is not None:
            return to_agent

        collector = CollectingOutputChannel()
        message = UserMessage(
            await self.bot_text(sender_id, text),
            collector,
            sender_id,
            input_channel=self.name(),
            metadata=await self.message_metadata(sender_id, text, customer_id, admission),
        )
        logger.info(
            "app.message.received sender=%s verified=%s new=%s chars=%d",
            sender_id,
            verified,
            admission.binding.created,
            len(text),
        )
        try:
            await on_new_message(message)
        except asyncio.CancelledError:
            logger.error("app.message.cancelled sender=%s", sender_id)
            raise
        except Exception as error:  # every failure reaches the shopper as a 503
            logger.error("app.message.failed sender=%s error=%s", sender_id, type(error).__name__)
            logger.debug("app.message.failed sender=%s", sender_id, exc_info=True)
            return _error("bot_unavailable", 503)

        if collector.messages:
            await self.remember_buttons(sender_id, collector.messages)
            return _json(collector.messages)
        code = await self.silent_turn_code(sender_id)
        if code is None:
            return _json({"status": "with_agent", "messages": []}, status=202)
        return _error(code, 502)

    async def handle_messages(self, request: Request, sender_id: str) -> HTTPResponse:
        """Return messages pushed to a conversation after a cursor.

        Args:
            request: the ``GET /messages/<sender>`` request.
            sender_id: the conversation id from the path.

        Returns:
            200 with ``{"messages", "cursor"}``; 400 for a bad conversation id, cursor or limit;
            401 for a presented identity token that is refused; 403 when the conversation belongs to
            another customer or an anonymous conversation's token is missing or wrong;
            404 for an unknown conversation; 503 when Redis is unavailable.
        """
        if SENDER_PATTERN.fullmatch(sender_id) is None:
            return _error("invalid_sender", 400)
        after = request.args.get("after") or None
        if after is not None:
            try:
                validate_cursor(after)
            except InvalidCursor:
                return _error("invalid_cursor", 400)
        raw_limit = request.args.get("limit")
        limit = DEFAULT_PAGE_SIZE
        if raw_limit:
            digits = raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 4  # int() refuses ² and 4300+ digits
            if not digits or not 1 <= int(raw_limit) <= min(DEFAULT_PAGE_SIZE, MAX_FETCH_LIMIT):
                return _error("invalid_limit", 400)
            limit = int(raw_limit)

        identity_token = request.headers.get(IDENTITY_TOKEN_HEADER)
        customer_id = self.resolve_identity(identity_token, request.args.get("customer_id"), request.args.get("signature"))
        if identity_token and customer_id is None:
            return _error("invalid_identity", 401)
        try:
            owner = await conversation_owner(self.redis(), sender_id)
        except REDIS_FAILURES as error:
            logger.error("app.messages.owner_failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        if owner is None:
            return _error("conversation_not_found", 404)
        if owner == ANONYMOUS_OWNER:
            allowed = self.holds_conversation(sender_id, request.headers.get(CONVERSATION_TOKEN_HEADER))
        else:
            allowed = customer_id == owner
        if not allowed:
            logger.warning("app.messages.forbidden sender=%s", sender_id)
            return _error("conversation_forbidden", 403)

        try:
            messages, cursor = await self.outbox().fetch(sender_id, after=after, limit=limit)
        except InvalidCursor:
            return _error("invalid_cursor", 400)
        except REDIS_FAILURES as error:
            logger.error("app.messages.fetch_failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        return _json({"messages": messages, "cursor": cursor if cursor is not None else "0-0"})

    def callback_http(self) -> aiohttp.ClientSession:
        """The HTTP client of callbacks (:func:`connectors.callback_http.callback_session`), one per event loop."""
        loop = asyncio.get_running_loop()
        if self._callback_http is None or self._callback_http.closed or self._callback_loop is not loop:
            self._callback_http = callback_session(self.callback_networks)
            self._callback_loop = loop
        return self._callback_http

    async def close(self) -> None:
        """Close the channel's Redis and HTTP connections, the callbacks' too (on server stop)."""
        await super().close()
        session, self._callback_http, self._callback_loop = self._callback_http, None, None
        if session is not None and not session.closed:
            await session.close()

    async def deliver(self, sender: str, registration: Dict[str, str], entries: List[Tuple[str, Dict[str, Any]]]) -> Optional[str]:
        """POST pushed messages to the conversation's callback URL, signed; they stay fetchable anyway.

        Body ``{"sender", "messages": [... each with its "cursor"]}``; headers ``X-Shop-Timestamp``
        and ``X-Shop-Signature`` (:func:`bot.identity.sign_callback`). Any 2xx answer counts as
        delivered; anything else is retried with backoff by :class:`bot.push.PushDelivery`, and
        becomes a dead letter after ``PUSH_MAX_ATTEMPTS``. The URL is checked again against the
        allowed origins, a redirect is not followed, and the connection reaches only allowed
        addresses (:mod:`connectors.callback_http`).

        Raises:
            bot.push.DeliveryFailed: the endpoint did not accept them; its reason is
                ``origin_not_allowed``, ``forbidden_address``, ``redirect``, ``http_<status>``,
                ``timeout`` or the client error's name.
        """
        url = registration.get("callback_url")
        if not url:
            return entries[-1][0]  # pulled through GET /messages only
        if not valid_callback_url(url, self.callback_origins):
            logger.warning("app.callback.origin_not_allowed sender=%s", sender)
            raise DeliveryFailed("origin_not_allowed")
        body = json.dumps({"sender": sender, "messages": [{**message, "cursor": entry_id} for entry_id, message in entries]},
                          ensure_ascii=False).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json; charset=utf-8", "X-Shop-Timestamp": timestamp,
                   "X-Shop-Signature": sign_callback(self.identity_secret, timestamp, body)}
        try:
            refuse_literal_address(url, self.callback_networks)
            timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S)
            async with self.callback_http().post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False) as answer:
                status = answer.status
        except asyncio.TimeoutError as error:
            raise DeliveryFailed("timeout") from error
        except (aiohttp.ClientError, OSError) as error:
            if isinstance(error, ForbiddenAddress) or forbidden(error):
                target = callback_target(url)
                logger.warning("app.callback.forbidden_address sender=%s host=%s", sender, target.host if target else "")
                raise DeliveryFailed("forbidden_address") from error
            raise DeliveryFailed(type(error).__name__) from error
        if 200 <= status < 300:
            return entries[-1][0]
        raise DeliveryFailed("redirect" if 300 <= status < 400 else f"http_{status}")

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Routes of the channel; Rasa mounts them under ``/webhooks/app``.

        Args:
            on_new_message: Rasa's handler of user messages.

        Returns:
            The channel's blueprint.
        """
        app_webhook = Blueprint("app_webhook")
        on_new_message = metrics.timed_turns(self.name(), on_new_message)

        @app_webhook.listener("after_server_start")
        async def start_push(*_: Any) -> None:
            await self.start_push(self.deliver)

        @app_webhook.listener("before_server_stop")
        async def stop_push(*_: Any) -> None:
            await self.stop_push()

        @app_webhook.listener("after_server_stop")
        async def close_redis(*_: Any) -> None:
            await self.close()

        @app_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return _json({"status": "ok"})

        @app_webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            with logs.correlated(request.headers.get(logs.REQUEST_ID_HEADER)) as correlation:
                answer = await self.handle_webhook(request, on_new_message)
            answer.headers[logs.REQUEST_ID_HEADER] = correlation
            return answer

        @app_webhook.route("/messages/<sender_id:str>", methods=["GET"])
        async def messages(request: Request, sender_id: str) -> HTTPResponse:
            return await self.handle_messages(request, sender_id)

        return app_webhook
