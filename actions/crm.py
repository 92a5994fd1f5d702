"""The one client through which actions talk to the shop's CRM.

Async (aiohttp, one pooled session per event loop), explicit timeouts, retries with exponential
backoff on connection errors, timeouts and 5xx only (a 4xx is an answer, not a failure), and one
exception hierarchy so an action can tell "the CRM said no" from "the CRM could not answer".
Every request carries the turn's correlation id as ``X-Request-ID`` (:mod:`bot.logs`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import aiohttp

from bot import logs
from bot.settings import Settings, get_settings

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
        reason: the finer reason of a refusal where the CRM gives one (``window_passed``), else empty.
    """

    def __init__(self, status: int, code: str, message: str, reason: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason


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


@dataclass(frozen=True)
class Written:
    """The CRM's answer to an idempotent write.

    Attributes:
        record: the record as the CRM returns it.
        created: True when this request created it (201), False when it already existed (200).
    """

    record: Dict[str, Any]
    created: bool


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
        settings = settings or get_settings()
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
        _status, body = await self._exchange(method, path, params=params, json=json)
        return body

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json: Any = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> Tuple[int, Any]:
        """One request with retries; the status and decoded body of a 2xx or 3xx answer."""
        url = f"{self.base_url}{path}"
        delays = self.retry.delays()
        last_error = "no attempt made"
        for attempt in range(len(delays) + 1):
            try:
                async with self._get_session().request(method, url, params=params, json=json, headers=logs.with_request_id(headers)) as response:
                    if response.status >= 500:
                        last_error = f"HTTP {response.status}"
                    else:
                        body = await response.json(content_type=None)
                        if response.status >= 400:
                            raise self._request_error(response.status, body)
                        return response.status, body
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
        reason = str(error.get("reason") or "") if isinstance(error, dict) else ""
        kind = CRMNotFound if status == 404 else CRMRequestError
        return kind(status, code, message, reason)

    # Customers -----------------------------------------------------------------------------
    async def get_customer(self, customer_id: str) -> Dict[str, Any]:
        """The customer's profile: name, phone, tier, growth value, points balance."""
        return await self._request("GET", f"/api/customers/{customer_id}")

    async def list_orders(self, customer_id: str, limit: int = 20, offset: int = 0,
                          statuses: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
        """The customer's orders, newest first, each in full form; only those in ``statuses`` when given."""
        params: Dict[str, Any] = {"limit": limit, "offset": offset}
        if statuses:
            params["status"] = ",".join(statuses)
        body = await self._request("GET", f"/api/customers/{customer_id}/orders", params=params)
        return list(body.get("items", []))

    # Orders ----------------------------------------------------------------------------------
    async def get_order(self, order_id: str) -> Dict[str, Any]:
        """One order with items, status, promised date and shipment with its tracking events."""
        return await self._request("GET", f"/api/orders/{order_id}")

    async def verify_order(self, order_id: str, phone_last4: str) -> Optional[str]:
        """The owning customer id when ``phone_last4`` matches the order's phone, else None."""
        body = await self._request("POST", f"/api/orders/{order_id}/verify", json={"phone_last4": phone_last4})
        return body.get("customer_id") if body.get("verified") else None

    async def cancel_order(self, order_id: str) -> Dict[str, Any]:
        """Cancel an order that has not shipped; the cancelled order.

        Raises:
            CRMRequestError: 409 ``not_allowed`` when the order's state no longer allows it.
        """
        return await self._request("POST", f"/api/orders/{order_id}/cancel", json={})

    async def change_address(self, order_id: str, receiver_name: str, receiver_phone: str, address: str) -> Dict[str, Any]:
        """Change the receiver of an order that has not shipped; the updated order.

        Raises:
            CRMRequestError: 409 ``not_allowed`` after shipping, 400 for an invalid phone or address.
        """
        body = {"receiver_name": receiver_name, "receiver_phone": receiver_phone, "address": address}
        return await self._request("POST", f"/api/orders/{order_id}/address", json=body)

    # Late deliveries -------------------------------------------------------------------------
    async def urge_order(self, order_id: str, answer_due_at: Optional[datetime] = None) -> Written:
        """File an urge (催件) of an order in flight, or get the one still open.

        Args:
            order_id: the order.
            answer_due_at: by when the carrier answers, as the delivery policy promises it
                (timezone-aware); the CRM's default window when omitted.

        Raises:
            CRMRequestError: 409 ``not_allowed`` when the order is not awaiting shipment or on its way.
        """
        body = {"answer_due_at": answer_due_at.isoformat(timespec="seconds")} if answer_due_at is not None else {}
        status, urge = await self._exchange("POST", f"/api/orders/{order_id}/urge", json=body)
        return Written(urge, status == 201)

    async def list_order_urges(self, order_id: str, limit: int = 20, offset: int = 0) -> List[Dict[str, Any]]:
        """The urges of one order, newest first."""
        body = await self._request("GET", f"/api/orders/{order_id}/urges", params={"limit": limit, "offset": offset})
        return list(body.get("items", []))

    async def grant_late_compensation(self, order_id: str, points: int, idempotency_key: str) -> Written:
        """Grant late-delivery points; the same key and points always give the same grant.

        Raises:
            CRMRequestError: 409 ``conflict`` when the order was already compensated (or the key
                was used for another request), 409 ``not_allowed`` when the order is not late.
        """
        status, grant = await self._exchange(
            "POST", f"/api/orders/{order_id}/late-compensation", json={"points": points}, headers={"Idempotency-Key": idempotency_key}
        )
        return Written(grant, status == 201)

    async def get_late_compensation(self, order_id: str) -> Optional[Dict[str, Any]]:
        """The late-delivery compensation granted for an order, or None."""
        try:
            return await self._request("GET", f"/api/orders/{order_id}/late-compensation")
        except CRMNotFound:
            return None

    # Price protection ------------------------------------------------------------------------
    async def claim_price_protection(self, order_id: str, idempotency_key: str, line_ids: Optional[Sequence[int]] = None) -> Written:
        """File a price-protection claim (价保) for the order's lines whose price dropped (all lines when
        ``line_ids`` is None); the same key always gives the same claim.

        Raises:
            CRMRequestError: 409 ``not_allowed`` with ``reason`` (``window_passed``, ``no_price_drop``,
                ...) when nothing is protected, 409 ``conflict`` when the key was used for another claim.
        """
        body = {"line_ids": list(line_ids)} if line_ids else {}
        status, claim = await self._exchange(
            "POST", f"/api/orders/{order_id}/price-protection", json=body, headers={"Idempotency-Key": idempotency_key}
        )
        return Written(claim, status == 201)

    async def list_price_protection(self, order_id: str) -> List[Dict[str, Any]]:
        """The price-protection claims of one order, newest first."""
        body = await self._request("GET", f"/api/orders/{order_id}/price-protection")
        return list(body.get("items", []))

    # Returns ---------------------------------------------------------------------------------
    async def list_customer_returns(self, customer_id: str, limit: int = 20, offset: int = 0) -> List[Dict[str, Any]]:
        """The customer's returns, newest first, each with items, status, refund and dates."""
        body = await self._request("GET", f"/api/customers/{customer_id}/returns", params={"limit": limit, "offset": offset})
        return list(body.get("items", []))

    async def list_order_returns(self, order_id: str, limit: int = 20, offset: int = 0) -> List[Dict[str, Any]]:
        """The returns of one order, newest first."""
        body = await self._request("GET", f"/api/orders/{order_id}/returns", params={"limit": limit, "offset": offset})
        return list(body.get("items", []))

    async def get_return(self, return_id: str) -> Dict[str, Any]:
        """One return."""
        return await self._request("GET", f"/api/returns/{return_id}")

    async def create_return(
        self,
        order_id: str,
        lines: List[Dict[str, int]],
        reason: str,
        idempotency_key: str,
        refund_fen: int,
        return_shipping_paid_by: str,
        refund_expected_by: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Create a return; the same key always gives the same return, so retrying is safe.

        Args:
            order_id: the order.
            lines: ``[{"line_id": 1, "quantity": 1}, ...]``.
            reason: a reason code (``quality_issue``, ``wrong_size``, ...).
            idempotency_key: identifies this request across retries.
            refund_fen: the refund promised to the shopper.
            return_shipping_paid_by: ``shopper`` or ``shop``.
            refund_expected_by: ``YYYY-MM-DD`` the refund arrives by, as told to the shopper.

        Raises:
            CRMRequestError: 409 ``not_allowed`` when the order cannot be returned (not signed for),
                409 ``conflict`` when the key was used for another return, 422 when a line has
                fewer units left or the refund exceeds what the order has left.
        """
        body: Dict[str, Any] = {
            "order_id": order_id,
            "items": lines,
            "reason": reason,
            "idempotency_key": idempotency_key,
            "refund_fen": refund_fen,
            "return_shipping_paid_by": return_shipping_paid_by,
        }
        if refund_expected_by:
            body["refund_expected_by"] = refund_expected_by
        return await self._request("POST", "/api/returns", json=body)

    # Points and membership -------------------------------------------------------------------------
    async def get_points(self, customer_id: str) -> Dict[str, Any]:
        """Balance, expiring points grouped by date, recent ledger lines."""
        return await self._request("GET", f"/api/customers/{customer_id}/points")

    async def get_tiers(self) -> List[Dict[str, Any]]:
        """The membership tier table."""
        body = await self._request("GET", "/api/tiers")
        return list(body.get("items", body) if isinstance(body, dict) else body)

    async def get_policy(self, name: str) -> Dict[str, Any]:
        """One of the shop's service policies (``invoices``, ``price_protection``, ``after_sales``,
        ``coupon_rules``) as the CRM serves it.

        Raises:
            CRMNotFound: the CRM has no policy of that name.
        """
        body = await self._request("GET", f"/api/policies/{name}")
        return dict(body) if isinstance(body, dict) else {}

    async def get_points_ledger(self, customer_id: str, limit: int = 10, offset: int = 0) -> List[Dict[str, Any]]:
        """The customer's points ledger lines, newest first."""
        body = await self._request("GET", f"/api/customers/{customer_id}/points/ledger", params={"limit": limit, "offset": offset})
        return list(body.get("items", []))

    async def list_coupons(self) -> List[Dict[str, Any]]:
        """The coupons that can be redeemed with points."""
        body = await self._request("GET", "/api/coupons")
        return list(body.get("items", []))

    async def redeem_points(self, customer_id: str, coupon_id: str, idempotency_key: str) -> Dict[str, Any]:
        """Exchange points for a coupon; the same key always gives the same redemption.

        Raises:
            CRMRequestError: 409 ``not_allowed`` when the points are not enough, 409 ``conflict``
                when the key was used for another redemption.
        """
        body = {"coupon_id": coupon_id, "idempotency_key": idempotency_key}
        return await self._request("POST", f"/api/customers/{customer_id}/points/redeem", json=body)


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
