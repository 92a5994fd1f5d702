"""The CRM HTTP service: a Sanic app over the synchronous use cases in :mod:`crm.service`.

Database work runs in a small thread pool so the event loop never blocks on SQL.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import itertools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional

from sanic import Request, Sanic
from sanic.exceptions import MethodNotSupported, NotFound, SanicException
from sanic.response import HTTPResponse
from sanic.response import json as json_response
from sqlalchemy.exc import IntegrityError

from bot import logs, metrics
from bot.settings import Settings, load_settings
from crm import late_delivery, price_protection, service, validation
from crm.clock import Clock, offset_file_from_env
from crm.db import Database, database_url_for
from crm.errors import ApiError, invalid, not_found
from crm.openapi import build_openapi
from crm.policy import load_service_policies, load_tiers
from crm.texts import text
from crm.vocab import MOBILE_RE, ORDER_STATUSES, PHONE_LAST4_RE, RETURN_REASONS, RETURN_SHIPPING_PAYERS

LOGGER = logging.getLogger("crm")
DB_THREADS = 4
MAX_COMPENSATION_POINTS = 100_000
_APP_NUMBERS = itertools.count()
_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))
JSON_TYPE = "application/json; charset=utf-8"


def respond(body: Any, status: int = 200) -> HTTPResponse:
    """A UTF-8 JSON response with Chinese kept readable."""
    return json_response(body, status=status, dumps=_dumps, content_type=JSON_TYPE)


def error_response(error: ApiError) -> HTTPResponse:
    """The JSON error body for ``error``."""
    return respond(error.to_json(), error.status)


class Runner:
    """Runs use cases on the database thread pool.

    Attributes:
        database: the database.
        context: clock and policy passed to every use case.
    """

    def __init__(self, database: Database, context: service.Context, threads: int = DB_THREADS) -> None:
        self.database = database
        self.context = context
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="crm-db")

    async def read(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work(session, context, *args)`` in a read-only session."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.database.run_read, work, self.context, *args)
        return await loop.run_in_executor(self.executor, call)

    async def write(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run ``work`` in a write transaction, retrying once after a unique-key race."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.database.run_write, work, self.context, *args)
        try:
            return await loop.run_in_executor(self.executor, call)
        except IntegrityError:
            LOGGER.info("unique constraint race in %s; retrying once", getattr(work, "__name__", work))
            return await loop.run_in_executor(self.executor, call)

    async def ping(self) -> bool:
        """Whether the database answers."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.database.ping)

    def close(self) -> None:
        """Stop the threads and close pooled connections."""
        self.executor.shutdown(wait=True)
        self.database.dispose()


def _runner(request: Request) -> Runner:
    return request.app.ctx.runner


def _return_request(body: Dict[str, Any]) -> service.ReturnRequest:
    order_id = validation.string_field(body, "order_id", max_length=40)
    assert order_id is not None
    return service.ReturnRequest(
        order_id=validation.order_id(order_id),
        lines=validation.return_lines(body),
        reason=validation.enum_field(body, "reason", RETURN_REASONS),
        idempotency_key=validation.string_field(body, "idempotency_key", max_length=128) or "",
        refund_fen=validation.int_field(body, "refund_fen", minimum=0, maximum=10**10),
        return_shipping_paid_by=validation.enum_field(body, "return_shipping_paid_by", RETURN_SHIPPING_PAYERS),
        refund_expected_by=validation.date_field(body, "refund_expected_by"),
    )


def _address_change(body: Dict[str, Any]) -> service.AddressChange:
    name = validation.string_field(body, "receiver_name", max_length=32)
    phone = validation.string_field(body, "receiver_phone", max_length=11, pattern=MOBILE_RE, hint=text("validation.mobile_hint"))
    address = validation.string_field(body, "address", max_length=200)
    assert name and phone and address
    if len(address) < 5:
        raise invalid(text("validation.short_address"))
    return service.AddressChange(name, phone, address)


def _register_routes(app: Sanic) -> None:
    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        runner = _runner(request)
        backend = runner.database.backend
        if await runner.ping():
            return respond({"status": "ok", "database": backend})
        return respond(
            {"status": "unavailable", "database": backend, "error": {"code": "internal", "message": text("http.database_unavailable")}}, 503
        )

    @app.get("/openapi.json")
    async def openapi(request: Request) -> HTTPResponse:
        return respond(build_openapi())

    @app.get("/api/customers")
    async def customers(request: Request) -> HTTPResponse:
        limit, offset = validation.pagination(request.args)
        phone = validation.optional_string(request.args, "phone")
        if phone is not None and not MOBILE_RE.match(phone):
            raise invalid(text("validation.bad_phone"))
        return respond(await _runner(request).read(service.list_customers, limit, offset, phone))

    @app.get("/api/customers/<customer_id>")
    async def customer(request: Request, customer_id: str) -> HTTPResponse:
        cid = validation.customer_id(customer_id)
        return respond(await _runner(request).read(service.get_customer, cid))

    @app.get("/api/customers/<customer_id>/orders")
    async def customer_orders(request: Request, customer_id: str) -> HTTPResponse:
        cid = validation.customer_id(customer_id)
        limit, offset = validation.pagination(request.args)
        statuses = validation.choices(request.args, "status", ORDER_STATUSES)
        return respond(await _runner(request).read(service.list_customer_orders, cid, limit, offset, statuses))

    @app.get("/api/customers/<customer_id>/returns")
    async def customer_returns(request: Request, customer_id: str) -> HTTPResponse:
        cid = validation.customer_id(customer_id)
        limit, offset = validation.pagination(request.args)
        return respond(await _runner(request).read(service.list_customer_returns, cid, limit, offset))

    @app.get("/api/customers/<customer_id>/points")
    async def points(request: Request, customer_id: str) -> HTTPResponse:
        cid = validation.customer_id(customer_id)
        return respond(await _runner(request).write(service.points_summary, cid))

    @app.get("/api/customers/<customer_id>/points/ledger")
    async def ledger(request: Request, customer_id: str) -> HTTPResponse:
        cid = validation.customer_id(customer_id)
        limit, offset = validation.pagination(request.args)
        return respond(await _runner(request).read(service.points_ledger, cid, limit, offset))

    @app.post("/api/customers/<customer_id>/points/redeem")
    async def redeem(request: Request, customer_id: str) -> HTTPResponse:
        cid = validation.customer_id(customer_id)
        body = validation.json_object(request.body)
        coupon_id = validation.string_field(body, "coupon_id", max_length=16)
        key = validation.string_field(body, "idempotency_key", max_length=128)
        result, created = await _runner(request).write(service.redeem, cid, coupon_id, key)
        return respond(result, 201 if created else 200)

    @app.get("/api/coupons")
    async def coupons(request: Request) -> HTTPResponse:
        return respond(await _runner(request).read(service.list_coupons))

    @app.get("/api/tiers")
    async def tiers(request: Request) -> HTTPResponse:
        return respond({"items": [tier.to_json() for tier in _runner(request).context.tiers]})

    @app.get("/api/policies/<name>")
    async def service_policy(request: Request, name: str) -> HTTPResponse:
        policies = request.app.ctx.policies
        if name not in policies:
            raise not_found(text("http.no_such_policy", name=name))
        return respond(policies[name])

    @app.get("/api/orders/<order_id>")
    async def order(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        return respond(await _runner(request).read(service.get_order, oid))

    @app.post("/api/orders/<order_id>/verify")
    async def verify(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        body = validation.json_object(request.body)
        last4 = body.get("phone_last4")
        if not isinstance(last4, str) or not PHONE_LAST4_RE.match(last4):
            raise invalid(text("validation.bad_phone_last4"))
        return respond(await _runner(request).read(service.verify_order, oid, last4))

    @app.post("/api/orders/<order_id>/cancel")
    async def cancel(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        validation.optional_json_object(request.body)
        return respond(await _runner(request).write(service.cancel_order, oid))

    @app.post("/api/orders/<order_id>/address")
    async def address(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        change = _address_change(validation.json_object(request.body))
        return respond(await _runner(request).write(service.change_address, oid, change))

    @app.post("/api/orders/<order_id>/urge")
    async def urge(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        due = validation.datetime_field(validation.optional_json_object(request.body), "answer_due_at")
        result, created = await _runner(request).write(late_delivery.urge_order, oid, due)
        return respond(result, 201 if created else 200)

    @app.get("/api/orders/<order_id>/urges")
    async def urges(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        limit, offset = validation.pagination(request.args)
        return respond(await _runner(request).read(late_delivery.list_order_urges, oid, limit, offset))

    @app.post("/api/orders/<order_id>/late-compensation")
    async def grant_late_compensation(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        key = validation.idempotency_key(request.headers)
        points = validation.int_field(validation.json_object(request.body), "points", minimum=1, maximum=MAX_COMPENSATION_POINTS)
        result, created = await _runner(request).write(late_delivery.grant_late_compensation, oid, points, key)
        return respond(result, 201 if created else 200)

    @app.get("/api/orders/<order_id>/late-compensation")
    async def late_compensation(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        return respond(await _runner(request).read(late_delivery.get_late_compensation, oid))

    @app.post("/api/orders/<order_id>/price-protection")
    async def claim_price_protection(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        key = validation.idempotency_key(request.headers)
        lines = validation.line_ids(validation.optional_json_object(request.body))
        policy = request.app.ctx.policies["price_protection"]
        result, created = await _runner(request).write(price_protection.claim, oid, lines, key, policy)
        return respond(result, 201 if created else 200)

    @app.get("/api/orders/<order_id>/price-protection")
    async def price_protection_claims(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        policy = request.app.ctx.policies["price_protection"]
        return respond(await _runner(request).read(price_protection.list_claims, oid, policy))

    @app.get("/api/orders/<order_id>/returns")
    async def order_returns(request: Request, order_id: str) -> HTTPResponse:
        oid = validation.order_id(order_id)
        limit, offset = validation.pagination(request.args)
        return respond(await _runner(request).read(service.list_order_returns, oid, limit, offset))

    @app.get("/api/returns/<return_id>")
    async def return_detail(request: Request, return_id: str) -> HTTPResponse:
        rid = validation.return_id(return_id)
        return respond(await _runner(request).read(service.get_return, rid))

    @app.post("/api/returns")
    async def create_return(request: Request) -> HTTPResponse:
        return_request = _return_request(validation.json_object(request.body))
        result, created = await _runner(request).write(service.create_return, return_request)
        return respond(result, 201 if created else 200)


def _register_error_handling(app: Sanic, api_key: str) -> None:
    expected_key = api_key.encode("utf-8")

    @app.middleware("request")
    async def authenticate(request: Request) -> Optional[HTTPResponse]:
        if request.path == "/api" or request.path.startswith("/api/"):
            given = request.headers.get("x-api-key", "").encode("utf-8", "replace")
            if not hmac.compare_digest(given, expected_key):
                return error_response(ApiError("unauthorized", text("http.bad_api_key")))
        return None

    @app.exception(Exception)
    async def on_error(request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, ApiError):
            return error_response(exception)
        if isinstance(exception, NotFound):
            return error_response(ApiError("not_found", text("http.no_such_route", method=request.method, path=request.path)))
        if isinstance(exception, MethodNotSupported):
            return error_response(ApiError("not_allowed", text("http.method_not_allowed", method=request.method), 405))
        if isinstance(exception, SanicException) and 400 <= (exception.status_code or 500) < 500:
            return error_response(ApiError("invalid_argument", str(exception) or text("http.bad_request"), exception.status_code))
        LOGGER.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError("internal", text("http.internal"), 500))


def create_app(settings: Optional[Settings] = None) -> Sanic:
    """Build the CRM app.

    The database (``settings.effective_database_url``) is opened when the server starts; missing
    tables are created then. Seeding is separate (``python -m crm seed``).

    Args:
        settings: configuration; read from the environment when omitted.
    """
    settings = settings or load_settings()
    number = next(_APP_NUMBERS)
    app = Sanic("crm" if number == 0 else f"crm_{number}")
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    metrics.time_requests(app, metrics.crm_observer)  # first: the time includes the other middleware
    logs.correlate_requests(app, "crm")  # before the API key's check: a refused request is logged with its id

    async def start(app: Sanic, _loop: Any) -> None:
        database = Database(database_url_for(settings), pool_size=DB_THREADS)
        database.create_schema()
        context = service.Context(Clock.for_timezone(settings.shop_timezone, offset_file_from_env()), load_tiers())
        app.ctx.policies = load_service_policies()
        app.ctx.runner = Runner(database, context)
        LOGGER.info("CRM using %s database", database.backend)
        if context.clock.offset_file is not None:
            LOGGER.warning("CRM clock moved on by the seconds in %s (a test clock)", context.clock.offset_file)

    async def stop(app: Sanic, _loop: Any) -> None:
        runner: Optional[Runner] = getattr(app.ctx, "runner", None)
        if runner is not None:
            runner.close()

    app.register_listener(start, "before_server_start")
    app.register_listener(stop, "after_server_stop")
    _register_error_handling(app, settings.crm_api_key)
    _register_routes(app)
    metrics.add_route(app, settings.metrics_token)
    return app
