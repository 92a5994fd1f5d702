"""WeChat's customer-service message API (客服消息): an access token shared by every process through
Redis and renewed before it expires or when WeChat refuses it, sending text, and the error codes
that mean renew, give up or retry."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable, Dict, Optional

import aiohttp
from redis.asyncio import Redis

from connectors.common import REDIS_FAILURES
from connectors.wechat_protocol import split_text

logger = logging.getLogger(__name__)

API_TIMEOUT = aiohttp.ClientTimeout(total=5.0, connect=2.0)
"""Timeout of every call to WeChat's API."""

TOKEN_LOCK_MS = 10_000
TOKEN_WAIT_S = 3.0
WAIT_POLL_S = 0.05

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
"""Error codes meaning the access token is invalid or expired: renew it and send again."""

UNDELIVERABLE_ERRORS = frozenset({40003, 43004, 45015, 45047})
"""Error codes no retry can fix (unknown OpenID, unsubscribed, outside the 48-hour window, too
many messages without an answer): the message is dropped and logged."""


# ----------------------------------------------------------------------------- WeChat's API


class WeChatApiError(Exception):
    """WeChat's API answered with an error code, or could not be reached (``errcode`` -1)."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode={errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def undeliverable(self) -> bool:
        """No retry will deliver this message."""
        return self.errcode in UNDELIVERABLE_ERRORS


class WeChatApi:
    """The access token and the customer-service message API of one official account.

    The token is cached in Redis (shared by every process, since each new token WeChat issues
    retires the previous one after a few minutes) until shortly before ``expires_in``; one process
    at a time renews it, under a Redis lock.

    Args:
        api_base: ``https://api.weixin.qq.com`` or the simulator.
        appid: the account's app id.
        appsecret: the account's app secret.
        redis: returns the Redis client to cache the token in.
    """

    def __init__(self, api_base: str, appid: str, appsecret: str, redis: Callable[[], Redis]) -> None:
        self.api_base = api_base.rstrip("/")
        self.appid = appid
        self.appsecret = appsecret
        self._redis = redis
        self._session: Optional[aiohttp.ClientSession] = None
        self._session_loop: Optional[asyncio.AbstractEventLoop] = None
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self.tokens_fetched = 0

    @property
    def token_key(self) -> str:
        """Redis key of the cached access token."""
        return f"wechat:access_token:{self.appid}"

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session, created on first use inside the running event loop."""
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session, self._session_loop = aiohttp.ClientSession(timeout=API_TIMEOUT), loop
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def _call(self, method: str, path: str, params: Dict[str, str], body: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        try:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
            headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
            async with self.session().request(method, f"{self.api_base}{path}", params=params, data=data, headers=headers) as answer:
                if answer.status != 200:
                    raise WeChatApiError(-1, f"http {answer.status}")
                payload = json.loads(await answer.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as error:
            raise WeChatApiError(-1, type(error).__name__) from error
        if not isinstance(payload, dict):
            raise WeChatApiError(-1, "not a JSON object")
        errcode = payload.get("errcode", 0)
        if errcode not in (0, None):
            raise WeChatApiError(int(errcode) if str(errcode).lstrip("-").isdigit() else -1, str(payload.get("errmsg", "")))
        return payload

    async def _cached(self, stale: Optional[str]) -> Optional[str]:
        if self._token and self._token != stale and time.monotonic() < self._token_expires:
            return self._token
        try:
            cached = await self._redis().get(self.token_key)
            ttl_ms = await self._redis().pttl(self.token_key) if cached else -1
        except REDIS_FAILURES:
            return None
        if cached and cached != stale and ttl_ms > 0:
            self._token, self._token_expires = cached, time.monotonic() + ttl_ms / 1000
            return cached
        return None

    async def access_token(self, stale: Optional[str] = None) -> str:
        """A valid access token.

        Args:
            stale: a token WeChat just refused: never returned again, a new one is fetched unless
                another process already did.

        Raises:
            WeChatApiError: the token could not be obtained.
        """
        found = await self._cached(stale)
        if found:
            return found
        redis = self._redis()
        lock = f"{self.token_key}:lock"
        try:
            locked = bool(await redis.set(lock, "1", nx=True, px=TOKEN_LOCK_MS))
        except REDIS_FAILURES:
            locked = True  # no Redis: every process fetches its own
        if not locked:
            deadline = time.monotonic() + TOKEN_WAIT_S
            while time.monotonic() < deadline:
                await asyncio.sleep(WAIT_POLL_S * 2)
                found = await self._cached(stale)
                if found:
                    return found
        try:
            payload = await self._call("GET", "/cgi-bin/token",
                                       {"grant_type": "client_credential", "appid": self.appid, "secret": self.appsecret})
            token = payload.get("access_token")
            expires_in = int(payload.get("expires_in") or 0)
            if not isinstance(token, str) or not token or expires_in <= 0:
                raise WeChatApiError(-1, "no access_token in the answer")
            lifetime = max(1, expires_in - min(300, max(1, expires_in // 10)))
            self.tokens_fetched += 1
            self._token, self._token_expires = token, time.monotonic() + lifetime
            try:
                await redis.set(self.token_key, token, ex=lifetime)
            except REDIS_FAILURES:
                logger.warning("wechat.token.cache_failed")
            logger.info("wechat.token.renewed expires_in=%d", expires_in)
            return token
        finally:
            if locked:
                try:
                    await redis.delete(lock)
                except REDIS_FAILURES:
                    pass

    async def send_text(self, openid: str, text: str) -> None:
        """Send a text as customer-service messages (several when it is long), renewing the token once if refused.

        Raises:
            WeChatApiError: WeChat refused the message or could not be reached.
        """
        for piece in split_text(text):
            token = await self.access_token()
            body = {"touser": openid, "msgtype": "text", "text": {"content": piece}}
            try:
                await self._call("POST", "/cgi-bin/message/custom/send", {"access_token": token}, body)
            except WeChatApiError as error:
                if error.errcode not in TOKEN_ERRORS:
                    raise
                logger.info("wechat.token.refused errcode=%d", error.errcode)
                self._token = None
                token = await self.access_token(stale=token)
                await self._call("POST", "/cgi-bin/message/custom/send", {"access_token": token}, body)
