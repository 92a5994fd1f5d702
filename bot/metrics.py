"""Prometheus metrics of the stack: every metric's definition, the multiprocess store and ``/metrics``.

Each service serves the Prometheus text format at ``GET /metrics`` on its own port (the Rasa
server, the action server, the CRM, the desk); ``docs/operations.md`` lists every metric with its
type and labels. What each service counts:

- Rasa server: the bot's turns and their latency by channel and intent (:func:`timed_turns` around
  Rasa's message handler in each channel, the intent noted by the tracker store when the turn's
  tracker is saved, :func:`note_intent`); the channels' push deliveries, failed attempts, retries
  and dead letters (:mod:`bot.push`).
- action server: each action's latency and errors by action name (:func:`observe_action`).
- CRM: each request's latency and outcome by route template, never the raw path (:func:`observe_crm`).
- desk: gauges read from Redis at scrape time (:func:`handoff_gauges`): the handoff queue, its
  waits, agents online, open and overdue tickets, dead letters kept.

Labels are bounded and carry no personal data: a channel name, an intent of the domain (any other
``other``), an action that the action server ran, a route template, a method, a status class.

Sanic forks several workers in the Rasa server, so every service keeps its counters in
prometheus-client's multiprocess mode: :func:`prepare`, called by the service's entry point before
anything counts, points ``PROMETHEUS_MULTIPROC_DIR`` at ``VAR_DIR/metrics/<service>-<port>`` (wiped
at each start), and a scrape sums every worker's file. Without :func:`prepare` (a channel or an app
run inside a test process) the counters live in this process.

Access (:func:`refusal`): with ``METRICS_TOKEN`` set, ``/metrics`` needs
``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise); without it, only a loopback client
that came through no proxy is answered (403 otherwise).
"""

from __future__ import annotations

import contextvars
import functools
import hmac
import ipaddress
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Collection, Iterable, List, Optional, Sequence, TypeVar

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric
    from sanic import Sanic
    from sanic.request import Request
    from sanic.response import HTTPResponse

    from handoff.context import HandoffContext

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The environment variable that switches prometheus-client to its multiprocess mode."""

PATH = "/metrics"

OTHER = "other"
"""The label value of anything outside a label's known values (an intent not in the domain, an
action the action server does not have, a path no route matches)."""

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)
"""Histogram buckets of every latency, seconds (a turn waits at most ACTION_TIMEOUT_S for an action)."""

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
"""Headers a proxy adds: a request carrying one is not taken for a loopback client."""

DUE_SOON_S = 3600
"""Open callbacks due within this many seconds are counted as due soon."""


# ------------------------------------------------------------------------------ the store
def prepare(service: str, var_dir: Path, port: int) -> Optional[Path]:
    """Keep this service's counters in ``VAR_DIR/metrics/<service>-<port>``, emptied now (multiprocess mode).

    Called by the service's entry point before it serves (and before Sanic forks its workers).
    When the directory cannot be made, the counters stay in the process (logged).

    Returns:
        The directory, or None when it could not be made.
    """
    directory = var_dir / "metrics" / f"{service}-{port}"
    try:
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        logger.warning("metrics.prepare_failed dir=%s error=%s: counters stay in this process", directory, type(error).__name__)
        return None
    os.environ[MULTIPROC_ENV] = str(directory)
    values = sys.modules.get("prometheus_client.values")
    if values is not None:  # imported already: the value class is chosen again for the metrics made from now on
        values.ValueClass = values.get_value_class()  # type: ignore[attr-defined]
    _metrics.cache_clear()
    return directory


def _multiprocess_dir() -> Optional[str]:
    directory = os.environ.get(MULTIPROC_ENV)
    return directory if directory and os.path.isdir(directory) else None


@dataclass(frozen=True)
class _Metrics:
    registry: CollectorRegistry
    turns: Counter
    turn_seconds: Histogram
    turn_errors: Counter
    action_seconds: Histogram
    action_errors: Counter
    crm_seconds: Histogram
    crm_responses: Counter
    push_delivered: Counter
    push_failures: Counter
    push_retries: Counter
    push_dead_letters: Counter


@functools.lru_cache(maxsize=1)
def _metrics() -> _Metrics:
    """Every counted metric, made on first use (after :func:`prepare`, which chooses where values live)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()

    def counter(name: str, documentation: str, labels: Sequence[str]) -> Counter:
        return Counter(name, documentation, labels, registry=registry)

    def histogram(name: str, documentation: str, labels: Sequence[str]) -> Histogram:
        return Histogram(name, documentation, labels, registry=registry, buckets=LATENCY_BUCKETS)

    return _Metrics(
        registry=registry,
        turns=counter("shop_turns_total", "Shopper messages the bot answered, by channel and intent.", ("channel", "intent")),
        turn_seconds=histogram("shop_turn_duration_seconds", "Time Rasa took for one shopper message, by channel and intent.",
                               ("channel", "intent")),
        turn_errors=counter("shop_turn_errors_total", "Shopper messages whose turn failed in Rasa, by channel.", ("channel",)),
        action_seconds=histogram("shop_action_duration_seconds", "Time the action server took for one action, by action.", ("action",)),
        action_errors=counter("shop_action_errors_total", "Actions that failed (answered 500), by action.", ("action",)),
        crm_seconds=histogram("shop_crm_request_duration_seconds", "Time the CRM took for one request, by route template and method.",
                              ("endpoint", "method")),
        crm_responses=counter("shop_crm_responses_total", "CRM answers by route template, method and status class (5xx: errors).",
                              ("endpoint", "method", "status_class")),
        push_delivered=counter("shop_push_delivered_total", "Pushed messages delivered, by channel.", ("channel",)),
        push_failures=counter("shop_push_delivery_failures_total", "Failed delivery attempts of pushed messages, by channel.",
                              ("channel",)),
        push_retries=counter("shop_push_retries_total", "Notices taken up again after a failed delivery, by channel.", ("channel",)),
        push_dead_letters=counter("shop_push_dead_letters_total", "Conversations whose pushed messages became a dead letter, by channel.",
                                  ("channel",)),
    )


# ------------------------------------------------------------------------------ what is counted
F = TypeVar("F", bound=Callable[..., None])


def _never_fails(count: F) -> F:
    """Counting never fails a turn, a request or a delivery: an error is logged and the work goes on."""

    @functools.wraps(count)
    def quiet(*args: Any, **kwargs: Any) -> None:
        try:
            count(*args, **kwargs)
        except Exception:
            logger.exception("metrics.count_failed what=%s", count.__name__)

    return quiet  # type: ignore[return-value]


@dataclass
class _Turn:
    intent: str = OTHER


_TURN: contextvars.ContextVar[Optional[_Turn]] = contextvars.ContextVar("shop_metrics_turn", default=None)

Handler = Callable[[Any], Awaitable[Any]]


def timed_turns(channel: str, handler: Handler) -> Handler:
    """Rasa's message handler of a channel, counting each turn with its latency and intent.

    The intent is the one the tracker store notes when the turn's tracker is saved
    (:func:`note_intent`); a turn that saved none counts as ``other``.
    """

    @functools.wraps(handler)
    async def handle(message: Any) -> Any:
        turn = _Turn()
        token = _TURN.set(turn)
        started = time.perf_counter()
        failed = False
        try:
            return await handler(message)
        except Exception:
            failed = True
            raise
        finally:
            _TURN.reset(token)
            _count_turn(channel, turn.intent, time.perf_counter() - started, failed)

    return handle


@_never_fails
def _count_turn(channel: str, intent: str, seconds: float, failed: bool) -> None:
    metrics = _metrics()
    metrics.turns.labels(channel, intent).inc()
    metrics.turn_seconds.labels(channel, intent).observe(seconds)
    if failed:
        metrics.turn_errors.labels(channel).inc()


def note_intent(intent: Any, known: Collection[str]) -> None:
    """The intent of the turn under way (:func:`timed_turns`): one of ``known`` (the domain's), else ``other``."""
    turn = _TURN.get()
    if turn is not None:
        turn.intent = intent if isinstance(intent, str) and intent in known else OTHER


@_never_fails
def observe_action(action: Any, status: int, seconds: float) -> None:
    """One action server webhook call: ``action`` as Rasa named it, ``status`` as the server answered.

    A 404 means the action server has no such action: the name counts as ``other``, so only the
    names of actions it has become labels. A status of 500 or more counts as an error.
    """
    name = action if isinstance(action, str) and action and status != 404 else OTHER
    metrics = _metrics()
    metrics.action_seconds.labels(name).observe(seconds)
    if status >= 500:
        metrics.action_errors.labels(name).inc()


@_never_fails
def observe_crm(endpoint: Optional[str], method: str, status: int, seconds: float) -> None:
    """One CRM request: the route template (None: no route matched), its method and status."""
    method = method if method in HTTP_METHODS else OTHER
    endpoint = endpoint or OTHER
    metrics = _metrics()
    metrics.crm_seconds.labels(endpoint, method).observe(seconds)
    metrics.crm_responses.labels(endpoint, method, f"{status // 100}xx").inc()


@_never_fails
def push_delivered(channel: str, messages: int) -> None:
    """Pushed messages delivered to a conversation of ``channel``."""
    if messages:
        _metrics().push_delivered.labels(channel).inc(messages)


@_never_fails
def push_failed(channel: str) -> None:
    """A delivery attempt on ``channel`` failed (it is retried later, or becomes a dead letter)."""
    _metrics().push_failures.labels(channel).inc()


@_never_fails
def push_retried(channel: str, notices: int) -> None:
    """Notices of ``channel`` taken up again after their backoff."""
    if notices:
        _metrics().push_retries.labels(channel).inc(notices)


@_never_fails
def push_dead_lettered(channel: str) -> None:
    """A conversation of ``channel`` got a new dead letter."""
    _metrics().push_dead_letters.labels(channel).inc()


# ------------------------------------------------------------------------------ desk gauges
def _gauge(name: str, documentation: str, value: Optional[float] = None, labels: Sequence[str] = (),
           samples: Iterable[Any] = ()) -> Metric:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, value=value, labels=labels or None)
    for label_values, sample in samples:
        family.add_metric(label_values, sample)
    return family


async def handoff_gauges(ctx: HandoffContext) -> List[Metric]:
    """The human service as it stands in Redis now (the desk's ``/metrics``).

    Redis failing to answer gives ``shop_desk_redis_up 0`` and no other gauge.
    """
    from bot.push import PUSH_CHANNELS, dead_letter_count
    from handoff import agents, keys, queue, tickets
    from handoff.context import REDIS_FAILURES
    from handoff.policy import queued_since

    try:
        now = ctx.now()
        waiting = await queue.waiting(ctx)
        waits = [now - queued_since(record.get("enqueued_at") or now, record.get("requeued_at")) for record in waiting]
        told = await queue.estimated_wait(ctx, len(waiting) + 1)
        available = await agents.availability(ctx)
        open_callbacks = int(await ctx.redis.zcard(keys.CALLBACKS_OPEN))
        due_soon = int(await ctx.redis.zcount(keys.CALLBACKS_OPEN, now, now + DUE_SOON_S))
        overdue = await tickets.overdue_counts(ctx)
        dead = {channel: await dead_letter_count(ctx.redis, (channel,)) for channel in PUSH_CHANNELS}
    except REDIS_FAILURES as error:
        logger.warning("metrics.handoff_gauges_failed error=%s", type(error).__name__)
        return [_gauge("shop_desk_redis_up", "Whether Redis answered the desk's scrape (1) or not (0).", 0)]
    return [
        _gauge("shop_desk_redis_up", "Whether Redis answered the desk's scrape (1) or not (0).", 1),
        _gauge("shop_handoff_queue_depth", "Conversations waiting for a human agent.", len(waiting)),
        _gauge("shop_handoff_queue_oldest_wait_seconds", "How long the longest-waiting conversation has waited (0: none waits).",
               max(0.0, max(waits, default=0.0))),
        _gauge("shop_handoff_estimated_wait_seconds", "The wait a shopper asking for a human now is told (absent: cannot be estimated).",
               samples=[((), float(told))] if told is not None else ()),
        _gauge("shop_handoff_agents_online", "Human agents online.", len(available.online)),
        _gauge("shop_handoff_free_slots", "Conversations the online agents can still take.", available.free_slots),
        _gauge("shop_callbacks_open", "Callback tickets not yet done.", open_callbacks),
        _gauge("shop_callbacks_due_soon", f"Open callback tickets due within {DUE_SOON_S // 60} minutes and not overdue yet.", due_soon),
        _gauge("shop_tickets_overdue", "Open tickets past their due time, by kind.", labels=("kind",),
               samples=[((kind,), count) for kind, count in sorted(overdue.items())]),
        _gauge("shop_push_dead_letters", "Dead letters kept for supervisors to retry, by channel.", labels=("channel",),
               samples=[((channel,), count) for channel, count in dead.items()]),
    ]


# ------------------------------------------------------------------------------ exposition
class _Fixed:
    """A collector of metric families computed before the scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> List[Metric]:
        return self.families


def exposition(extra: Iterable[Metric] = ()) -> bytes:
    """The Prometheus text of every counted metric (summed over the service's workers) and of ``extra``."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    directory = _multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_Fixed(_metrics().registry.collect()))
    registry.register(_Fixed(extra))
    return bytes(generate_latest(registry))


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def refusal(request: Request, token: str) -> Optional[HTTPResponse]:
    """Why ``request`` may not read ``/metrics`` (401 or 403), or None when it may.

    Args:
        request: the scrape.
        token: ``METRICS_TOKEN``; empty: only loopback clients that came through no proxy.
    """
    from sanic import response

    if token:
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        if given and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8")):
            return None
        return response.text("unauthorized: /metrics needs Authorization: Bearer <METRICS_TOKEN>\n", status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if _loopback(request.ip or "") and not any(request.headers.get(name) for name in FORWARDING_HEADERS):
        return None
    return response.text("forbidden: /metrics answers loopback clients only while METRICS_TOKEN is not set\n", status=403)


Gauges = Callable[[], Awaitable[Iterable["Metric"]]]


def add_route(app: Sanic, token: str, gauges: Optional[Gauges] = None) -> None:
    """Serve ``GET /metrics`` on ``app``: the counted metrics and, when given, ``gauges()`` computed per scrape.

    Args:
        app: the service's Sanic app.
        token: ``METRICS_TOKEN`` (see :func:`refusal`).
        gauges: what the service reads fresh at each scrape.
    """
    from prometheus_client import CONTENT_TYPE_LATEST
    from sanic import response

    async def prometheus_metrics(request: Request) -> HTTPResponse:
        refused = refusal(request, token)
        if refused is not None:
            return refused
        extra = list(await gauges()) if gauges is not None else []
        return response.raw(exposition(extra), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    app.add_route(prometheus_metrics, PATH, methods=["GET"], name="prometheus_metrics")


def time_requests(app: Sanic, observe: Callable[[Request, HTTPResponse, float], None]) -> None:
    """Call ``observe(request, response, seconds)`` for every answered request but the scrapes.

    Register it before the app's other middleware, so the time includes theirs.
    """

    @app.middleware("request")
    async def metrics_clock(request: Request) -> None:
        request.ctx.metrics_started = time.perf_counter()

    @app.middleware("response")
    async def metrics_observe(request: Request, response: HTTPResponse) -> None:
        started = getattr(request.ctx, "metrics_started", None)
        if started is None or request.path == PATH:
            return
        try:
            observe(request, response, time.perf_counter() - started)
        except Exception:  # counting never fails a request
            logger.exception("metrics.observe_failed path=%s", request.path)


_PARAMETER_TYPE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*):[^>]*>")


def route_template(request: Request) -> Optional[str]:
    """The route a request matched, as declared (``/api/orders/<order_id>``), or None when none matched."""
    route = getattr(request, "route", None)
    return _PARAMETER_TYPE.sub(r"<\1>", f"/{route.path}") if route is not None else None


def crm_observer(request: Request, response: HTTPResponse, seconds: float) -> None:
    """:func:`time_requests`' observer of the CRM."""
    observe_crm(route_template(request), request.method, response.status, seconds)


def action_observer(request: Request, response: HTTPResponse, seconds: float) -> None:
    """:func:`time_requests`' observer of the action server: the webhook calls that ran, named by the body Rasa sent.

    Only a body the webhook parsed itself counts (a request refused before, for its token, size or
    encoding, is neither parsed here nor counted).
    """
    call = getattr(request, "parsed_json", None)
    if request.path == "/webhook" and isinstance(call, dict):
        observe_action(call.get("next_action"), response.status, seconds)


def rasa_entry(settings: Any, args: Sequence[str]) -> None:
    """Set up the Rasa server's metrics before ``rasa run`` (``python -m bot.rasa_patches run``).

    Prepares the multiprocess store for the port in ``args`` and adds ``/metrics`` to the Sanic app
    Rasa builds, by wrapping ``rasa.core.run.configure_app`` (Rasa's own function, unchanged, with
    the speed patches on or off).
    """
    import rasa.core.run

    port = settings.rasa_port
    for flag in ("--port", "-p"):
        if flag in args[:-1]:
            try:
                port = int(args[list(args).index(flag) + 1])
            except ValueError:
                pass  # rasa's own parser refuses it
    prepare("rasa", settings.var_dir, port)
    configure = rasa.core.run.configure_app
    if getattr(configure, "shop_metrics", False):
        return

    @functools.wraps(configure)
    def configure_app(*positional: Any, **keywords: Any) -> Sanic:
        app = configure(*positional, **keywords)
        add_route(app, settings.metrics_token)
        return app

    configure_app.shop_metrics = True  # type: ignore[attr-defined]
    rasa.core.run.configure_app = configure_app

