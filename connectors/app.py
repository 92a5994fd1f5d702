"""The ``app`` input channel: a REST webhook for the shop's mobile app and site backends.

Registered in ``credentials.yml`` as::

    connectors.app.AppInput:
      redis_url: redis://127.0.0.1:6390/0       # optional, REDIS_URL or the embedded server
      identity_secret: dev-shop-secret          # optional, SHOP_IDENTITY_SECRET
      action_server_url: http://127.0.0.1:5055  # optional, ACTION_HOST / ACTION_PORT

Rasa mounts the routes under ``/webhooks/app``:

- ``GET /``: health check.
- ``POST /webhook``: ``{"sender", "message", "metadata": {"customer_id", "signature"}}`` → the
  bot's replies as a JSON list in Rasa's REST format; while a human handoff has the conversation,
  ``202`` with the queue position and ETA or the agent's name, the message kept for the agent
  (:mod:`bot.handoff`) and never passed to the bot.
- ``GET /messages/<sender>?customer_id=&signature=&after=&limit=``: messages pushed to the
  conversation later (agent replies, notices) → ``{"messages": [...], "cursor": ...}``.

Unlike Rasa's REST channel, which answers ``200 []`` whatever happened and logs the shopper's text,
this channel verifies who the shopper is, never lets one shopper write into or read another's
conversation, answers failures with an HTTP error and a polite message, and keeps the shopper's
text and customer id out of its logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any, Awaitable, Callable, Dict, Optional

import aiohttp
from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.handoff import texts as handoff_texts
from bot.handoff.context import HandoffContext
from bot.handoff.conversation import active_handoff, is_cancel_request, route_shopper_message
from bot.handoff.policy import load_policy
from bot.handoff.queue import cancel as cancel_handoff
from bot.handoff.queue import estimated_wait, queue_position
from bot.handoff.stats import note_conversation_started
from bot.identity import is_valid_customer_id, verify_signature
from bot.outbox import MAX_FETCH_LIMIT, InvalidCursor, Outbox, validate_cursor
from bot.settings import Settings, load_settings
from connectors.binding import ANONYMOUS_OWNER, bind_conversation, conversation_owner, owner_of

logger = logging.getLogger(__name__)

SENDER_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
"""Syntax of a conversation id."""

MAX_MESSAGE_CHARS = 2000
"""Longest message text accepted, in characters."""

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted, in bytes."""

DEFAULT_PAGE_SIZE = 100
"""Messages returned by ``GET /messages/<sender>`` when no limit is given (also the maximum)."""

HEALTH_PROBE_TIMEOUT_S = 0.5
"""Time allowed to the action server's ``/health`` when a turn produced no reply."""

REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_SOCKET_TIMEOUT_S = 2.0

_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

MESSAGES: Dict[str, str] = {
    "invalid_json": "抱歉，消息格式有误，请刷新页面后重试。",
    "invalid_sender": "抱歉，会话标识无效，请刷新页面后重新开始对话。",
    "invalid_message": "抱歉，我们没有收到您的消息内容，请重新输入。",
    "empty_message": "请输入您想咨询的内容哦～",
    "message_too_long": f"您的消息有点长啦（超过{MAX_MESSAGE_CHARS}字），麻烦分成几条发送，谢谢您的理解！",
    "payload_too_large": "抱歉，这条消息太大了，麻烦精简后分几次发送，谢谢您的理解！",
    "invalid_metadata": "抱歉，登录信息格式有误，请重新登录后再试。",
    "conversation_forbidden": "抱歉，这个会话不属于当前账号，请刷新页面开始新的对话。",
    "conversation_not_found": "抱歉，没有找到这个会话，请刷新页面重新开始对话。",
    "invalid_cursor": "抱歉，消息位置参数有误，请刷新页面后重试。",
    "invalid_limit": "抱歉，请求的消息数量有误，请刷新页面后重试。",
    "bot_unavailable": "抱歉，客服助手暂时有点忙，请稍等一分钟后再试。给您带来不便，敬请谅解！",
    "action_server_unreachable": ("抱歉，系统暂时出了点问题，您的请求没有处理成功。请一分钟后再试，或发送“转人工”联系人工客服。"),
    "no_reply": "抱歉，刚才没能处理好您的请求。请一分钟后再试，或发送“转人工”联系人工客服。",
}
"""Polite Chinese text shown to the shopper for each error code."""


def handoff_key(sender_id: str) -> str:
    """Redis key whose existence means a human agent has the conversation.

    Args:
        sender_id: the conversation id.

    Returns:
        ``handoff:active:{sender_id}``.
    """
    return f"handoff:active:{sender_id}"


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, dumps=json.dumps, ensure_ascii=False)


def _error(code: str, status: int) -> HTTPResponse:
    return _json({"error": {"code": code, "message": MESSAGES[code]}}, status=status)


def _credential(credentials: Optional[Dict[str, Any]], key: str) -> Optional[Any]:
    if not credentials:
        return None
    value = credentials.get(key)
    return None if value is None or value == "" else value


class AppInput(InputChannel):
    """Input channel for the shop's app: verified identity, conversation binding, honest errors.

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

    @classmethod
    def name(cls) -> str:
        """Name of the channel; also its URL prefix under ``/webhooks/``."""
        return "app"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> AppInput:
        """Build the channel from its ``credentials.yml`` section (every key optional).

        Args:
            credentials: ``redis_url``, ``identity_secret``, ``action_server_url``.

        Returns:
            The channel.
        """
        return cls(
            redis_url=_credential(credentials, "redis_url"),
            identity_secret=_credential(credentials, "identity_secret"),
            action_server_url=_credential(credentials, "action_server_url"),
        )

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

    async def close(self) -> None:
        """Close the channel's Redis connections (on server stop)."""
        pool, self._pool, self._redis, self._loop = self._pool, None, None, None
        if pool is not None:
            await pool.disconnect()

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

    async def route_to_handoff(self, sender_id: str, text: str) -> Optional[HTTPResponse]:
        """Keep a message for the human agent instead of the bot while a handoff has the conversation.

        The message is appended to the handoff transcript in order (one atomic step with the check),
        the bot never sees it and so never answers over the agent, and the Rasa tracker stays as it
        was. A waiting shopper may leave the queue (“取消人工”) and talk to the bot again.

        Args:
            sender_id: the conversation id.
            text: the shopper's message.

        Returns:
            None when the bot has the conversation; else 202 with ``status`` ``queued`` (with
            ``position``, ``eta`` and ``eta_minutes``) or ``with_agent`` (with ``agent``), and a
            ``notice`` for the shopper; 200 with the bot's answer when the shopper cancelled.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
        """
        ctx = self.handoff_context()
        if is_cancel_request(text):
            handoff_id = await active_handoff(ctx, sender_id)
            if handoff_id and await cancel_handoff(ctx, sender_id, handoff_id, text) == "ok":
                logger.info("app.handoff.cancelled sender=%s handoff=%s", sender_id, handoff_id)
                return _json([{"recipient_id": sender_id, "text": handoff_texts.cancelled()}])
        routed = await route_shopper_message(ctx, sender_id, text)
        if routed is None:
            return None
        logger.info("app.message.to_handoff sender=%s handoff=%s status=%s", sender_id, routed.handoff_id, routed.status)
        if routed.status == "assigned":
            name = routed.agent_name or routed.agent
            return _json({"status": "with_agent", "handoff_id": routed.handoff_id, "agent": name,
                          "notice": handoff_texts.with_agent_ack(name), "messages": []}, status=202)
        position = await queue_position(ctx, routed.handoff_id)
        wait_s = await estimated_wait(ctx, position)
        now = ctx.local(ctx.now())
        body: Dict[str, Any] = {"status": "queued", "handoff_id": routed.handoff_id, "position": position,
                                "notice": handoff_texts.waiting_ack(position, wait_s, now), "messages": []}
        if wait_s is not None:
            eta = ctx.local(ctx.now() + wait_s)
            body.update({"eta": eta.isoformat(timespec="minutes"), "eta_minutes": handoff_texts.minutes(wait_s)})
        return _json(body, status=202)

    def resolve_identity(self, customer_id: Optional[str], signature: Optional[str]) -> Optional[str]:
        """The verified customer id of a request, or None for an anonymous shopper.

        Args:
            customer_id: the claimed customer id.
            signature: the claimed signature of the customer id.

        Returns:
            The customer id when its signature is valid, else None (never the claimed id).
        """
        if customer_id and is_valid_customer_id(customer_id) and verify_signature(self.identity_secret, customer_id, signature):
            return customer_id
        return None

    async def action_server_reachable(self) -> bool:
        """Probe the action server's ``/health`` with a short timeout.

        Returns:
            True when it answers 200.
        """
        timeout = aiohttp.ClientTimeout(total=HEALTH_PROBE_TIMEOUT_S)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(f"{self.action_server_url}/health") as probe:
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
        except _REDIS_FAILURES as error:
            logger.warning("app.handoff.check_failed sender=%s error=%s", sender_id, type(error).__name__)
            return False

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
        except (ValueError, UnicodeDecodeError):
            return _error("invalid_json", 400)
        if not isinstance(payload, dict):
            return _error("invalid_json", 400)

        sender_id = payload.get("sender")
        if not isinstance(sender_id, str) or SENDER_PATTERN.fullmatch(sender_id) is None:
            return _error("invalid_sender", 400)
        text = payload.get("message")
        if not isinstance(text, str):
            return _error("invalid_message", 400)
        text = text.strip()
        if not text:
            return _error("empty_message", 400)
        if len(text) > MAX_MESSAGE_CHARS:
            return _error("message_too_long", 413)

        client_metadata = payload.get("metadata")
        if client_metadata is None:
            client_metadata = {}
        if not isinstance(client_metadata, dict):
            return _error("invalid_metadata", 400)
        claimed_id = client_metadata.get("customer_id")
        signature = client_metadata.get("signature")
        if any(value is not None and not isinstance(value, str) for value in (claimed_id, signature)):
            return _error("invalid_metadata", 400)

        customer_id = self.resolve_identity(claimed_id, signature)
        verified = customer_id is not None
        if claimed_id and not verified:
            logger.info("app.identity.unverified sender=%s", sender_id)

        try:
            binding = await bind_conversation(self.redis(), sender_id, owner_of(customer_id), self.ttl_s)
        except _REDIS_FAILURES as error:
            logger.error("app.binding.failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        if not binding.allowed:
            logger.warning("app.conversation.forbidden sender=%s verified=%s", sender_id, verified)
            return _error("conversation_forbidden", 403)
        if binding.created:
            try:
                await note_conversation_started(self.handoff_context())
            except _REDIS_FAILURES:
                logger.warning("app.stats.conversation_not_counted sender=%s", sender_id)
        try:
            to_agent = await self.route_to_handoff(sender_id, text)
        except _REDIS_FAILURES as error:
            logger.error("app.handoff.route_failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        if to_agent is not None:
            return to_agent

        collector = CollectingOutputChannel()
        message = UserMessage(
            text,
            collector,
            sender_id,
            input_channel=self.name(),
            metadata={"channel": self.name(), "verified": verified, "customer_id": customer_id},
        )
        logger.info(
            "app.message.received sender=%s verified=%s new=%s chars=%d",
            sender_id,
            verified,
            binding.created,
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
            return _json(collector.messages)
        if await self.in_handoff(sender_id):
            logger.info("app.message.with_agent sender=%s", sender_id)
            return _json({"status": "with_agent", "messages": []}, status=202)
        if await self.action_server_reachable():
            code = "no_reply"
        else:
            code = "action_server_unreachable"
        logger.error("app.message.no_reply sender=%s code=%s", sender_id, code)
        return _error(code, 502)

    async def handle_messages(self, request: Request, sender_id: str) -> HTTPResponse:
        """Return messages pushed to a conversation after a cursor.

        Args:
            request: the ``GET /messages/<sender>`` request.
            sender_id: the conversation id from the path.

        Returns:
            200 with ``{"messages", "cursor"}``; 400 for a bad conversation id, cursor or limit;
            403 when the conversation belongs to another customer or the signature is invalid;
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
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= min(DEFAULT_PAGE_SIZE, MAX_FETCH_LIMIT):
                return _error("invalid_limit", 400)
            limit = int(raw_limit)

        try:
            owner = await conversation_owner(self.redis(), sender_id)
        except _REDIS_FAILURES as error:
            logger.error("app.messages.owner_failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        if owner is None:
            return _error("conversation_not_found", 404)
        if owner != ANONYMOUS_OWNER:
            customer_id = self.resolve_identity(request.args.get("customer_id"), request.args.get("signature"))
            if customer_id != owner:
                logger.warning("app.messages.forbidden sender=%s", sender_id)
                return _error("conversation_forbidden", 403)

        try:
            messages, cursor = await self.outbox().fetch(sender_id, after=after, limit=limit)
        except InvalidCursor:
            return _error("invalid_cursor", 400)
        except _REDIS_FAILURES as error:
            logger.error("app.messages.fetch_failed sender=%s error=%s", sender_id, type(error).__name__)
            return _error("bot_unavailable", 503)
        return _json({"messages": messages, "cursor": cursor if cursor is not None else "0-0"})

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """Routes of the channel; Rasa mounts them under ``/webhooks/app``.

        Args:
            on_new_message: Rasa's handler of user messages.

        Returns:
            The channel's blueprint.
        """
        app_webhook = Blueprint("app_webhook")

        @app_webhook.listener("after_server_stop")
        async def close_redis(*_: Any) -> None:
            await self.close()

        @app_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return _json({"status": "ok"})

        @app_webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_webhook(request, on_new_message)

        @app_webhook.route("/messages/<sender_id:str>", methods=["GET"])
        async def messages(request: Request, sender_id: str) -> HTTPResponse:
            return await self.handle_messages(request, sender_id)

        return app_webhook
