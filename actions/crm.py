"""The one client through which actions talk to the shop's CRM.

Async (aiohttp, one pooled session per event loop), explicit timeouts, retries with exponential
backoff on connection errors, timeouts and 5xx only (a 4xx is an answer, not a failure), and one
exception hierarchy so an action can tell "the CRM said no" from "the CRM could not answer".
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import aiohttp

from bot.settings import Settings, load_settings

logger = logging.getLogger(__name__)


class CRMError(Exception):
    """Base class of every CRM client error."""


class CRMUnavailable(CRMError):
    """The CRM did not answer usefully: connection refused, timeout, or 5xx after all retries."""


class CRMRequestError(CRMError):
    """The CRM answered with a 4xx: the request was understood and refused.

    Attributes:
        status: HTTP status code.
        code: the CRM's error code (``not_found``, ``not_allowed``, ...).
        message: the CRM's human-readable message.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class CRMNotFound(CRMRequestError):
    """The customer, order or return does not exist."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a failed request.

    Attributes:
        retries: attempts after the first one.
        backoff_s: delay before the first retry; doubles on each further one.
    """

    retries: int = 2
    backoff_s: float = 0.05

    def delays(self) -> List[float]:
        """The delays before each retry."""
        return [self.backoff_s * (2**attempt) for attempt in range(self.retries)]


class CRMClient:
    """Typed async access to the CRM's HTTP API.

    Args:
        base_url: e.g. ``http://127.0.0.1:7000``.
        api_key: value of the ``X-API-Key`` header.
        timeout_s: total time allowed for one attempt.
        retry: retry policy for connection errors, timeouts and 5xx.
    """

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 2.0, retry: Optional[RetryPolicy] = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry or RetryPolicy()
        self._session: Optional[aiohttp.ClientSession] = None
        self._session_loop: Optional[asyncio.AbstractEventLoop] = None

    @classmethod
    def from_settings(cls, settings: Optional[Settings] = None) -> CRMClient:
        """A client configured from CRM_URL, CRM_API_KEY, CRM_TIMEOUT_S and CRM_RETRIES."""
        settings = settings or load_settings()
        return cls(
            settings.effective_crm_url,
            settings.crm_api_key,
            timeout_s=min(settings.crm_timeout_s, 3.0),
            retry=RetryPolicy(retries=settings.crm_retries),
        )

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            connector = aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout,
                headers={"X-API-Key": self.api_key, "Accept": "application/json"},
            )
            self._session_loop = loop
        return self._session

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def _request(self, method: str, path: str, *, params: Optional[Mapping[str, Any]] = None, json: Any = None) -> Any:
        url = f"{self.base_url}{path}"
        delays = self.retry.delays()
        last_error = "no attempt made"
        for attempt in range(len(delays) + 1):
            try:
                async with self._get_session().request(method, url, params=params, json=json) as response:
                    if response.status >= 500:
                        last_error = f"HTTP {response.status}"
                    else:
                        body = await response.json(content_type=None)
                        if response.status >= 400:
                            raise self._request_error(response.status, body)
                        return body
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError, aiohttp.ClientPayloadError) as error:
                last_error = type(error).__name__
            except (ValueError, aiohttp.ContentTypeError) as error:
                raise CRMUnavailable(f"{method} {path}: the CRM answered with something that is not JSON") from error
            if attempt < len(delays):
                await asyncio.sleep(delays[attempt])
        logger.warning("CRM request %s %s failed after %d attempts: %s", method, path, len(delays) + 1, last_error)
        raise CRMUnavailable(f"{method} {path}: {last_error}")

    @staticmethod
    def _request_error(status: int, body: Any) -> CRMRequestError:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = str(error.get("code", "error")) if isinstance(error, dict) else "error"
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        kind = CRMNotFound if status == 404 else CRMRequestError
        return kind(status, code, message)

    # Customers -----------------------------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Dict[str, Any]:
        """The customer's profile: name, phone, tier, growth value, points balance."""
        return await self._request("GET", f"/api/customers/{customer_id}")

    async def list_orders(self, customer_id: str, limit: int = 20, offset: int = 0) -> List[Dict[str, Any]]:
        """The customer's orders, newest first, each in full form."""
        body = await self._request("GET", f"/api/customers/{customer_id}/orders", params={"limit": limit, "offset": offset})
        return list(body.get("items", []))

    # Orders ----------------------------------------------------------------------------------
    async def get_order(self, order_id: str) -> Dict[str, Any]:
        """One order with items, status, promised date and shipment with its tracking events."""
        return await self._request("GET", f"/api/orders/{order_id}")

    async def verify_order(self, order_id: str, phone_last4: str) -> Optional[str]:
        """The owning customer id when ``phone_last4`` matches the order's phone, else None."""
        body = await self._request("POST", f"/api/orders/{order_id}/verify", json={"phone_last4": phone_last4})
        return body.get("customer_id") if body.get("verified") else None

    # Points and membership -------------------------------------------------------------------------
    async def get_points(self, customer_id: str) -> Dict[str, Any]:
        """Balance, expiring points grouped by date, recent ledger lines."""
        return await self._request("GET", f"/api/customers/{customer_id}/points")

    async def get_tiers(self) -> List[Dict[str, Any]]:
        """The membership tier table."""
        body = await self._request("GET", "/api/tiers")
        return list(body.get("items", body) if isinstance(body, dict) else body)


_client: Optional[CRMClient] = None


def get_crm_client() -> CRMClient:
    """The action server's shared CRM client (one connection pool per process)."""
    global _client
    if _client is None:
        _client = CRMClient.from_settings()
    return _client


def set_crm_client(client: Optional[CRMClient]) -> None:
    """Replace the shared client (a shop's own adapter, or a test's client)."""
    global _client
    _client = client
