"""The ``wechat`` input channel: a WeChat official account (公众号) in safe mode (安全模式) or, for
development only, plaintext mode (明文模式).

Registered in ``credentials.yml`` as ``connectors.wechat.WeChatInput`` (token, appid, appsecret,
encoding_aes_key, api_base: each optional, else WECHAT_TOKEN, WECHAT_APPID, WECHAT_APPSECRET,
WECHAT_ENCODING_AES_KEY, WECHAT_API_BASE; docs/channels.md).

With an EncodingAESKey the channel is in safe mode (:mod:`connectors.wechat_crypto`): a message
must come encrypted with a ``msg_signature`` over its ``<Encrypt>`` and this account's app id (else
403), and the passive reply goes back encrypted. Without the key (development, the simulator's
default) messages are read in plaintext.

Rasa mounts the routes under ``/webhooks/wechat``:

- ``GET /webhook?signature=&timestamp=&nonce=&echostr=``: WeChat's URL verification; ``echostr``
  echoed when ``signature`` is the SHA-1 of the sorted token, timestamp and nonce, the timestamp is
  at most 5 minutes away and the nonce is new; 403 otherwise. In safe mode an encrypted ``echostr``
  comes with ``msg_signature`` (SHA-1 of the token, timestamp, nonce and ``echostr``) instead, and
  its decrypted plaintext is the answer.
- ``POST /webhook?signature=&timestamp=&nonce=[&encrypt_type=aes&msg_signature=]``: messages
  (XML). Text goes to the bot (or, while a human handoff has the conversation, to the agent); the
  answer is a passive XML reply when it is ready within the reply budget (4 s; WeChat waits 5 s),
  else ``success`` and the answer follows as customer-service messages (客服消息). WeChat's retries
  of one message reach the bot once (:mod:`connectors.wechat_leases`). Bad signature 403, bad XML
  or fields 400, body over 64 KB 413; never a 500.
- ``POST /bind {"openid", "customer_id", "timestamp", "signature"}``: the shop's account page
  binds an OpenID to a customer;
  ``signature = hex(HMAC-SHA256(key, "wechat-bind\\n{openid}\\n{customer_id}\\n{timestamp}"))``
  under the ``wechat-bind`` key derived from SHOP_IDENTITY_SECRET (``key = HMAC-SHA256(
  SHOP_IDENTITY_SECRET, "key|wechat-bind")``, :func:`bot.identity.purpose_key`), timestamp within
  5 minutes.
- ``POST /unbind {"openid", "timestamp", "signature"}``: the same with ``wechat-unbind``, no customer.
- ``GET /``: health check.

A conversation id is ``wx-`` and a hash of the app id and OpenID (never the OpenID itself). Messages
from an OpenID bound to a customer carry ``{"channel": "wechat", "verified": True, "customer_id"}``,
others are anonymous. Bot buttons become numbered options (「回复数字选择」) and a number sent back
becomes the button's payload. A text is admitted like every channel's message, in one Redis round
trip (:meth:`WeChatInput.admitted`). Pushed messages (agent replies, notices, the rating question)
go out through :class:`bot.push.PushDelivery` and the customer-service message API
(:mod:`connectors.wechat_api`). OpenIDs, customer ids and message text never appear in the logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
import traceback
import unicodedata
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Set, Tuple

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import metrics
from bot.identity import is_valid_customer_id
from bot.push import DeliveryFailed, register_conversation
from bot.settings import Settings, load_settings
from connectors.binding import Admission, owner_key
from connectors.common import MESSAGES, REDIS_FAILURES, ShopperChannel, check_text, credential
from connectors.payloads import neutralised
from connectors.wechat_api import WeChatApi, WeChatApiError
from connectors.wechat_crypto import InvalidAppId, MessageCrypto, WeChatCryptoError
from connectors.wechat_leases import LEASE_MS, MessageLeases, json_object
from connectors.wechat_protocol import (
    _NONCE_PATTERN,
    _OPTION_PATTERN,
    _SIGNATURE_PATTERN,
    MAX_BODY_BYTES,
    MAX_TEXT_BYTES,
    OPENID_PATTERN,
    SILENT_EVENTS,
    TEXTS,
    TIMESTAMP_WINDOW_S,
    InboundMessage,
    InvalidMessage,
    _ascii_digits,
    binding_signature,
    combine_replies,
    conversation_id,
    parse_message,
    render,
    text_reply,
    wechat_signature,
)
from handoff.stats import note_conversation_started

logger = logging.getLogger(__name__)

NONCE_TTL_S = 2 * TIMESTAMP_WINDOW_S + 60
"""How long a nonce is remembered: longer than any timestamp still accepted."""

OPTIONS_TTL_S = 24 * 3600
"""How long the numbered options last offered to a conversation stay valid."""

WECHAT_OWNER = "~wechat"
"""Owner of a WeChat conversation whose OpenID is not bound to a customer (``~``: never a customer id)."""

BIND_ERRORS: Dict[str, Tuple[int, str]] = {
    "invalid_json": (400, "the body must be a JSON object"),
    "invalid_openid": (400, "openid is missing or malformed"),
    "invalid_customer_id": (400, "customer_id must match ^[A-Za-z0-9_-]{1,64}$"),
    "invalid_timestamp": (400, "timestamp must be the Unix time in seconds"),
    "stale_timestamp": (403, "timestamp is more than 5 minutes away from now"),
    "invalid_signature": (403, "signature does not match"),
    "unavailable": (503, "the binding store is unavailable, try again"),
}


def _plain(text: str, status: int = 200) -> HTTPResponse:
    return response.text(text, status=status, headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _xml(body: str) -> HTTPResponse:
    return response.text(body, content_type="application/xml; charset=utf-8", headers={"Cache-Control": "no-store"})


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, dumps=json.dumps, ensure_ascii=False)


def _bind_error(code: str) -> HTTPResponse:
    status, message = BIND_ERRORS[code]
    return _json({"error": {"code": code, "message": message}}, status=status)


class RefusedRequest(Exception):
    """A POST refused with 403; the message is the reason logged."""


OnNewMessage = Callable[[UserMessage], Awaitable[Any]]


class WeChatInput(ShopperChannel):
    """Input channel of a WeChat official account.

    Args:
        token: the account's server token (``WECHAT_TOKEN``).
        appid: the account's app id (``WECHAT_APPID``).
        appsecret: the account's app secret (``WECHAT_APPSECRET``).
        encoding_aes_key: the account's EncodingAESKey (``WECHAT_ENCODING_AES_KEY``): safe mode;
            empty: plaintext mode (development).
        api_base: WeChat's API (``WECHAT_API_BASE``; the simulator by default).
        reply_budget_s: how long a request waits for the bot before answering ``success``.
        redis_url: Redis of the stack (``REDIS_URL`` or the embedded server).
        identity_secret: the secret the shop's binding key derives from (``SHOP_IDENTITY_SECRET``).
        lease_ms: the in-progress lease of a message (:data:`LEASE_MS`).
        settings: defaults for every argument left out.

    Raises:
        ValueError: the EncodingAESKey is not 43 characters of base64.
    """

    def __init__(
        self,
        token: Optional[str] = None,
        appid: Optional[str] = None,
        appsecret: Optional[str] = None,
        api_base: Optional[str] = None,
        reply_budget_s: Optional[float] = None,
        redis_url: Optional[str] = None,
        identity_secret: Optional[str] = None,
        settings: Optional[Settings] = None,
        encoding_aes_key: Optional[str] = None,
        lease_ms: int = LEASE_MS,
    ) -> None:
        settings = settings or load_settings()
        super().__init__(redis_url=redis_url, identity_secret=identity_secret, settings=settings)
        self.token: str = token or settings.wechat_token
        self.appid: str = appid or settings.wechat_appid
        self.appsecret: str = appsecret or settings.wechat_appsecret
        sim_host = "127.0.0.1" if settings.wechat_sim_host in ("0.0.0.0", "", "::") else settings.wechat_sim_host
        self.api_base: str = (api_base or settings.wechat_api_base or f"http://{sim_host}:{settings.wechat_sim_port}").rstrip("/")
        self.reply_budget_s: float = float(reply_budget_s if reply_budget_s is not None else settings.wechat_reply_budget_s)
        self.binding_ttl_s: int = settings.wechat_binding_ttl_s
        aes_key = encoding_aes_key or settings.wechat_encoding_aes_key
        self.crypto: Optional[MessageCrypto] = MessageCrypto.from_settings(self.token, aes_key, self.appid) if aes_key else None
        self.lease_ms: int = int(lease_ms)
        self.leases = MessageLeases(self.redis, self.lease_ms)
        self.api = WeChatApi(self.api_base, self.appid, self.appsecret, self.redis)
        self._turns: Dict[str, asyncio.Task[None]] = {}
        self._background: Set[asyncio.Task[Any]] = set()

    @classmethod
    def name(cls) -> str:
        """Name of the channel; also its URL prefix under ``/webhooks/``."""
        return "wechat"

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[str, Any]]) -> WeChatInput:
        """Build the channel from its ``credentials.yml`` section (every key optional).

        Args:
            credentials: ``token``, ``appid``, ``appsecret``, ``encoding_aes_key``, ``api_base``,
                ``reply_budget_s``, ``redis_url``, ``identity_secret``.
        """
        budget = credential(credentials, "reply_budget_s")
        return cls(
            token=credential(credentials, "token"),
            appid=credential(credentials, "appid"),
            appsecret=credential(credentials, "appsecret"),
            encoding_aes_key=credential(credentials, "encoding_aes_key"),
            api_base=credential(credentials, "api_base"),
            reply_budget_s=float(budget) if budget is not None else None,
            redis_url=credential(credentials, "redis_url"),
            identity_secret=credential(credentials, "identity_secret"),
        )

    # ------------------------------------------------------------------ request checks

    def _check(self, args: Mapping[str, Any], name: str, expected: Callable[[str, str], str]) -> Optional[str]:
        signature, timestamp, nonce = (args.get(key) or "" for key in (name, "timestamp", "nonce"))
        if not signature or not timestamp or not nonce:
            return "missing"
        if _SIGNATURE_PATTERN.fullmatch(signature) is None or _NONCE_PATTERN.fullmatch(nonce) is None:
            return "malformed"
        if not _ascii_digits(timestamp) or len(timestamp) > 12 or abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_S:
            return "stale"
        if not hmac.compare_digest(expected(timestamp, nonce), signature.lower()):
            return "forged"
        return None

    def check_signature(self, args: Mapping[str, Any]) -> Optional[str]:
        """Why a request's ``signature``, ``timestamp`` and ``nonce`` are refused; None when valid."""
        return self._check(args, "signature", lambda timestamp, nonce: wechat_signature(self.token, timestamp, nonce))

    def check_msg_signature(self, args: Mapping[str, Any], encrypt: str) -> Optional[str]:
        """Why a safe-mode request's ``msg_signature`` over ``encrypt`` is refused; None when valid.

        The plain ``signature`` WeChat sends beside it must be valid too when present.
        """
        crypto = self.crypto
        if crypto is None:
            return "plaintext_mode"
        problem = self._check(args, "msg_signature", lambda timestamp, nonce: crypto.signature(timestamp, nonce, encrypt))
        if problem is None and args.get("signature"):
            problem = self.check_signature(args)
        return problem

    async def fresh_nonce(self, timestamp: str, nonce: str, fingerprint: str, same_is_retry: bool) -> bool:
        """Remember a request's nonce; False for a replay.

        Args:
            timestamp: the request's timestamp.
            nonce: the request's nonce.
            fingerprint: what the request carried (hash of the body).
            same_is_retry: a nonce seen before with the same fingerprint is WeChat retrying the
                same request (allowed); with another fingerprint it is always a replay.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
        """
        key = f"wechat:nonce:{timestamp}:{nonce}"
        if await self.redis().set(key, fingerprint, nx=True, ex=NONCE_TTL_S):
            return True
        return same_is_retry and await self.redis().get(key) == fingerprint

    def _request_args(self, request: Request) -> Dict[str, str]:
        names = ("signature", "timestamp", "nonce", "echostr", "encrypt_type", "msg_signature")
        return {name: request.args.get(name) or "" for name in names}

    def read_message(self, args: Mapping[str, str], body: bytes) -> InboundMessage:
        """The message a POST carries: signature checked and, in safe mode, decrypted.

        Args:
            args: the query arguments (``signature``, ``timestamp``, ``nonce``, ``encrypt_type``,
                ``msg_signature``).
            body: the POST body.

        Raises:
            RefusedRequest: a missing, forged or stale signature, plaintext in safe mode or another
                account's app id (403).
            InvalidMessage: not a WeChat message, or a ciphertext that does not decrypt (400).
        """
        if self.crypto is None:
            problem = self.check_signature(args)
            if problem is not None:
                raise RefusedRequest(problem)
            return InboundMessage.from_fields(parse_message(body))
        if args.get("encrypt_type", "").lower() != "aes":
            raise RefusedRequest("plaintext")
        encrypt = parse_message(body).get("Encrypt", "").strip()
        problem = self.check_msg_signature(args, encrypt) if encrypt else "no_encrypt"
        if problem is not None:
            raise RefusedRequest(problem)
        try:
            plaintext = self.crypto.decrypt(encrypt)
        except InvalidAppId as error:
            raise RefusedRequest("appid") from error
        except WeChatCryptoError as error:
            raise InvalidMessage(f"Encrypt: {error}") from error
        return InboundMessage.from_fields(parse_message(plaintext))

    def passive_reply(self, args: Mapping[str, str], message: InboundMessage, text: str) -> HTTPResponse:
        """A passive text reply to a message, in the encrypted envelope in safe mode."""
        xml = text_reply(message.openid, message.account, text)
        if self.crypto is not None:
            xml = self.crypto.seal(xml, str(int(time.time())), args.get("nonce") or secrets.token_hex(8))
        return _xml(xml)

    # ------------------------------------------------------------------ routes

    async def handle_verify(self, request: Request) -> HTTPResponse:
        """``GET /webhook``: WeChat's URL verification (服务器配置).

        In safe mode a request with ``msg_signature`` carries an encrypted ``echostr``: the
        signature covers it and the answer is its plaintext. Otherwise ``echostr`` is echoed.

        Returns:
            200 with ``echostr``; 403 for a missing, forged or stale signature, a reused nonce or
            another account's app id; 400 without ``echostr`` or with one that does not decrypt;
            503 when Redis cannot check the nonce.
        """
        args = self._request_args(request)
        echostr = args["echostr"]
        encrypted = self.crypto is not None and bool(args["msg_signature"])
        problem = self.check_msg_signature(args, echostr) if encrypted else self.check_signature(args)
        if problem is not None:
            logger.warning("wechat.verify.refused reason=%s", problem)
            return _plain("forbidden", 403)
        if not echostr or len(echostr) > (1024 if encrypted else 256):
            return _plain("echostr is missing", 400)
        answer = echostr
        if self.crypto is not None and encrypted:
            try:
                answer = self.crypto.decrypt(echostr).decode("utf-8")
            except InvalidAppId:
                logger.warning("wechat.verify.refused reason=appid")
                return _plain("forbidden", 403)
            except (WeChatCryptoError, UnicodeDecodeError):
                return _plain("echostr does not decrypt", 400)
        try:
            fresh = await self.fresh_nonce(args["timestamp"], args["nonce"], "GET", same_is_retry=False)
        except REDIS_FAILURES as error:
            logger.error("wechat.verify.redis_failed error=%s", type(error).__name__)
            return _plain("unavailable", 503)
        if not fresh:
            logger.warning("wechat.verify.refused reason=replay")
            return _plain("forbidden", 403)
        logger.info("wechat.verify.ok encrypted=%s", encrypted)
        return _plain(answer)

    async def handle_message(self, request: Request, on_new_message: OnNewMessage) -> HTTPResponse:
        """``POST /webhook``: one message or event from WeChat.

        Returns:
            A passive XML reply (encrypted in safe mode), or ``success`` when there is nothing to
            say now (the answer, if any, follows as customer-service messages); 400, 403 or 413 for
            a refused request.
        """
        started = time.monotonic()
        body = request.body or b""
        if len(body) > MAX_BODY_BYTES:
            return _plain("payload too large", 413)
        args = self._request_args(request)
        try:
            message = self.read_message(args, body)
        except RefusedRequest as refused:
            logger.warning("wechat.message.refused reason=%s", refused)
            return _plain("forbidden", 403)
        except InvalidMessage as error:
            logger.warning("wechat.message.invalid reason=%s", error)
            return _plain("invalid message", 400)

        key = f"wechat:msg:{self.appid}:{message.dedup_id()}"
        owner = secrets.token_hex(16)
        try:
            if not await self.fresh_nonce(args["timestamp"], args["nonce"], hashlib.sha256(body).hexdigest(), same_is_retry=True):
                logger.warning("wechat.message.refused reason=replay")
                return _plain("forbidden", 403)
            state = await self.leases.enter(key, owner)
        except REDIS_FAILURES as error:
            logger.error("wechat.message.redis_failed error=%s", type(error).__name__)
            return self.passive_reply(args, message, MESSAGES["bot_unavailable"])
        sender = conversation_id(self.appid, message.openid)
        if state in ("new", "taken_over"):
            logger.info("wechat.message.received sender=%s type=%s chars=%d taken_over=%s", sender, message.msg_type,
                        len(message.content), state == "taken_over")
            task = asyncio.create_task(self._turn(key, owner, sender, message, on_new_message))
            self._turns[key] = task
            task.add_done_callback(lambda _: self._turns.pop(key, None))
        else:
            logger.info("wechat.message.retry sender=%s state=%s", sender, state)

        reply: Optional[Dict[str, Any]] = None
        claimed = False
        try:
            await self.leases.wait_done(key, self.reply_budget_s - (time.monotonic() - started), self._turns.get(key))
            claimed = True
        finally:
            reply = await asyncio.shield(self._leave(key, sender, claim=claimed))
        if reply is None:
            return _plain("success")
        text, _ = render(reply)
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            self._spawn(self._push_late(sender, reply))
            return _plain("success")
        return self.passive_reply(args, message, text)

    async def _leave(self, key: str, sender: str, claim: bool) -> Optional[Dict[str, Any]]:
        """Stop waiting for a message's answer: take it for the passive reply, or push it when nobody else waits."""
        try:
            how, reply = await self.leases.leave(key, claim)
        except REDIS_FAILURES as error:
            logger.error("wechat.message.leave_failed sender=%s error=%s", sender, type(error).__name__)
            return None
        if how == "push" and reply:
            await self._push_late(sender, reply)
        return reply if how == "passive" else None

    async def _turn(self, key: str, owner: str, sender: str, message: InboundMessage, on_new_message: OnNewMessage) -> None:
        """Answer one message (in the background: it outlives WeChat's request if it must).

        The turn holds the message's lease as ``owner`` and renews it while it runs; it completes
        the message only while it still owns it, and releases the lease when it ends without
        completing (cancelled, or Redis failed), so that WeChat's next retry answers the message.
        """
        keeper = asyncio.ensure_future(self.leases.keep(key, owner))
        completed = False
        try:
            try:
                reply = await self.respond(sender, message, on_new_message)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure reaches the shopper as a polite text
                logger.error("wechat.message.failed sender=%s error=%s", sender, type(error).__name__)
                # the frames only: an exception's message may quote the shopper's text
                logger.debug("wechat.message.failed sender=%s at:\n%s", sender, "".join(traceback.format_tb(error.__traceback__)))
                reply = {"text": MESSAGES["bot_unavailable"]}
            try:
                how = await self.leases.finish(key, owner, reply)
            except REDIS_FAILURES as error:
                logger.error("wechat.message.finish_failed sender=%s error=%s", sender, type(error).__name__)
                return
            completed = True
            if how == "lost":  # its lease lapsed and another worker took the message over: that one answers
                logger.warning("wechat.message.superseded sender=%s", sender)
            elif how == "push" and reply:
                await self._push_late(sender, reply)
        finally:
            keeper.cancel()
            if not completed:
                await asyncio.shield(self.leases.release(key, owner))

    async def _push_late(self, sender: str, reply: Mapping[str, Any]) -> None:
        """Put an answer WeChat no longer waits for into the outbox, for the customer-service API."""
        try:
            await self.outbox().push(sender, {**reply, "from": "bot"})
            logger.info("wechat.message.answer_pushed sender=%s", sender)
        except REDIS_FAILURES as error:
            logger.error("wechat.message.push_failed sender=%s error=%s", sender, type(error).__name__)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ the turn

    async def respond(self, sender: str, message: InboundMessage, on_new_message: OnNewMessage) -> Optional[Dict[str, Any]]:
        """What the shopper reads in answer to one message; None for nothing.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
            Exception: whatever the bot raised.
        """
        if message.msg_type == "event":
            if message.event in ("subscribe", "scan"):
                await self.open_conversation(sender, message.openid, await self.bound_customer(message.openid))
                return {"text": TEXTS["welcome"]}
            if message.event in SILENT_EVENTS:
                return None
            return {"text": MESSAGES["unknown_event"]}
        if message.msg_type != "text":
            return {"text": TEXTS["text_only"]}
        text, refusal = check_text(message.content)
        if refusal is not None:
            return {"text": MESSAGES[refusal]}

        customer_id = await self.bound_customer(message.openid)
        admission = await self.admitted(sender, message.openid, customer_id, text)
        async with self.conversation_turn(sender, held=admission.turn_token):
            turn = await self.handoff_turn(sender, text, customer_id, admission=admission)
            if turn is not None:
                return {"text": turn.notice}
            chosen = await self.chosen_option(sender, text)
            # a number picks one of the offered buttons; a typed /payload is read as words
            text = chosen if chosen != text else neutralised(text)

            collector = CollectingOutputChannel()
            metadata = await self.message_metadata(sender, text, customer_id, admission)
            await on_new_message(UserMessage(text, collector, sender, input_channel=self.name(), metadata=metadata))
            reply = combine_replies(collector.messages)
            await self.store_options(sender, render(reply)[1] if reply else {})
            if reply is None:
                code = await self.silent_turn_code(sender)
                return {"text": MESSAGES[code]} if code else None
            return reply

    async def admitted(self, sender: str, openid: str, customer_id: Optional[str], text: str) -> Admission:
        """Admit a message through the channels' one round trip (:meth:`ShopperChannel.admit`), for
        the OpenID's owner (the bound customer or ``~wechat``), and register it for pushed messages.

        WeChat vouches for the OpenID, so the owner follows the binding: when the OpenID was bound or
        unbound since the conversation began, the conversation passes to its new owner.

        Raises:
            redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
        """
        owner = customer_id or WECHAT_OWNER
        admission = await self.admit(sender, customer_id, text, owner=owner)
        if not admission.binding.allowed:  # nothing was done: hand the conversation over, then admit
            await self.redis().set(owner_key(sender), owner, ex=self.ttl_s)
            admission = await self.admit(sender, customer_id, text, owner=owner)
        await register_conversation(self.redis(), sender, self.name(), {"openid": openid}, ttl_s=self.ttl_s)
        return admission

    def binding_key(self, openid: str) -> str:
        """Redis key of the customer an OpenID is bound to: ``wechat:openid:{openid}``."""
        return f"wechat:openid:{openid}"

    async def bound_customer(self, openid: str) -> Optional[str]:
        """The customer id bound to an OpenID, or None (anonymous)."""
        customer_id = await self.redis().get(self.binding_key(openid))
        return customer_id if is_valid_customer_id(customer_id) else None

    async def open_conversation(self, sender: str, openid: str, customer_id: Optional[str]) -> None:
        """Make the conversation the OpenID's (bound customer or ``~wechat``) and register it for pushed messages.

        WeChat vouches for the OpenID, so the owner follows the binding: a shopper who binds or
        unbinds keeps the conversation. Another channel cannot use the conversation id.
        """
        redis = self.redis()
        owner = customer_id or WECHAT_OWNER
        if await redis.set(owner_key(sender), owner, nx=True, ex=self.ttl_s):
            try:
                await note_conversation_started(self.handoff_context())
            except REDIS_FAILURES:
                logger.warning("wechat.stats.conversation_not_counted sender=%s", sender)
        else:
            await redis.set(owner_key(sender), owner, ex=self.ttl_s)
        await register_conversation(redis, sender, self.name(), {"openid": openid}, ttl_s=self.ttl_s)

    def options_key(self, sender: str) -> str:
        """Redis hash of the numbered options last offered to a conversation."""
        return f"wechat:options:{sender}"

    async def store_options(self, sender: str, options: Mapping[str, str]) -> None:
        """Replace the numbered options offered to a conversation (none: forget them)."""
        async with self.redis().pipeline(transaction=True) as pipe:
            pipe.delete(self.options_key(sender))
            if options:
                pipe.hset(self.options_key(sender), mapping=dict(options))
                pipe.expire(self.options_key(sender), OPTIONS_TTL_S)
            await pipe.execute()

    async def chosen_option(self, sender: str, text: str) -> str:
        """The payload of the option a numeric reply picks, else the text unchanged."""
        number = unicodedata.normalize("NFKC", text).strip()
        if _OPTION_PATTERN.fullmatch(number) is None:
            return text
        payload = await self.redis().hget(self.options_key(sender), number.lstrip("0") or "0")
        return payload or text

    # ------------------------------------------------------------------ pushed messages

    async def deliver_pushed(self, sender: str, registration: Dict[str, str], entries: List[Tuple[str, Dict[str, Any]]]) -> Optional[str]:
        """Send a conversation's pushed messages through the customer-service API, in order.

        Args:
            sender: the conversation id.
            registration: the conversation's registration (``openid``).
            entries: ``(outbox entry id, message)`` pairs, oldest first.

        Returns:
            The id of the last entry handled (undeliverable ones are dropped and logged).

        Raises:
            DeliveryFailed: WeChat could not be reached or refused for a reason a retry may fix;
                carries the last entry sent before.
        """
        openid = registration.get("openid", "")
        if OPENID_PATTERN.fullmatch(openid) is None:
            logger.warning("wechat.push.no_openid sender=%s dropped=%d", sender, len(entries))
            return entries[-1][0] if entries else None
        last: Optional[str] = None
        for entry_id, message in entries:
            text, options = render(message, agent_prefix=True)
            if options:
                await self.store_options(sender, options)
            if text:
                try:
                    await self.api.send_text(openid, text)
                except WeChatApiError as error:
                    if not error.undeliverable:
                        raise DeliveryFailed(f"wechat errcode {error.errcode}", last_delivered=last) from error
                    logger.warning("wechat.push.dropped sender=%s errcode=%d", sender, error.errcode)
                else:
                    logger.info("wechat.push.sent sender=%s from=%s", sender, message.get("from", ""))
            last = entry_id
        return last

    # ------------------------------------------------------------------ binding

    async def handle_binding(self, request: Request, action: str) -> HTTPResponse:
        """``POST /bind`` and ``POST /unbind``: the shop binds an OpenID to a customer, or unbinds it.

        Returns:
            200 ``{"status": "bound"|"unbound"}``; 400 for malformed fields; 403 for a bad
            signature or a timestamp more than 5 minutes away; 503 when Redis is unavailable.
        """
        body = request.body or b""
        payload = json_object(body.decode("utf-8", errors="replace")) if len(body) <= 4096 else None
        if payload is None:
            return _bind_error("invalid_json")
        openid, customer_id = payload.get("openid"), payload.get("customer_id", "") if action == "bind" else ""
        timestamp, signature = str(payload.get("timestamp", "")), payload.get("signature")
        if not isinstance(openid, str) or OPENID_PATTERN.fullmatch(openid) is None:
            return _bind_error("invalid_openid")
        if action == "bind" and not is_valid_customer_id(customer_id):
            return _bind_error("invalid_customer_id")
        if not _ascii_digits(timestamp) or len(timestamp) > 12:
            return _bind_error("invalid_timestamp")
        if abs(time.time() - int(timestamp)) > TIMESTAMP_WINDOW_S:
            return _bind_error("stale_timestamp")
        expected = binding_signature(self.identity_secret, action, openid, str(customer_id), timestamp) if self.identity_secret else ""
        if not expected or not isinstance(signature, str) or not hmac.compare_digest(expected, signature.lower()):
            logger.warning("wechat.%s.forged", action)
            return _bind_error("invalid_signature")
        sender = conversation_id(self.appid, openid)
        try:
            if action == "bind":
                await self.redis().set(self.binding_key(openid), str(customer_id), ex=self.binding_ttl_s)
            else:
                await self.redis().delete(self.binding_key(openid))
            await self.outbox().push(sender, {"text": TEXTS["bound" if action == "bind" else "unbound"], "from": "system"})
        except REDIS_FAILURES as error:
            logger.error("wechat.%s.redis_failed error=%s", action, type(error).__name__)
            return _bind_error("unavailable")
        logger.info("wechat.%s.ok sender=%s", action, sender)
        return _json({"status": "bound" if action == "bind" else "unbound"})

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start delivering pushed messages (on server start)."""
        await self.start_push(self.deliver_pushed)

    async def stop(self) -> None:
        """Stop pushing, let answers under way finish (10 s at most), close connections."""
        await self.stop_push()
        pending = [*self._turns.values(), *self._background]
        if pending:
            _, late = await asyncio.wait(pending, timeout=10)
            for task in late:
                task.cancel()
        await self.api.close()
        await self.close()

    def blueprint(self, on_new_message: OnNewMessage) -> Blueprint:
        """Routes of the channel; Rasa mounts them under ``/webhooks/wechat``."""
        wechat_webhook = Blueprint("wechat_webhook")
        on_new_message = metrics.timed_turns(self.name(), on_new_message)

        @wechat_webhook.listener("after_server_start")
        async def start_push(*_: Any) -> None:
            await self.start()

        @wechat_webhook.listener("before_server_stop")
        async def stop_push(*_: Any) -> None:
            await self.stop()

        @wechat_webhook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return _json({"status": "ok"})

        @wechat_webhook.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            return await self.handle_verify(request)

        @wechat_webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            return await self.handle_message(request, on_new_message)

        @wechat_webhook.route("/bind", methods=["POST"])
        async def bind(request: Request) -> HTTPResponse:
            return await self.handle_binding(request, "bind")

        @wechat_webhook.route("/unbind", methods=["POST"])
        async def unbind(request: Request) -> HTTPResponse:
            return await self.handle_binding(request, "unbind")

        return wechat_webhook
