"""Logs of every service: text by default, one JSON object per line with ``LOG_FORMAT=json``.

Each service's entry point calls :func:`configure_logging` with its name (``rasa``, ``actions``,
``crm``, ``desk``, ``shop``, ``wechat-sim``, ``launcher``): one handler on the root logger, on
standard error (the launcher writes it to ``VAR_DIR/logs/<name>.log``). With ``LOG_FORMAT=json``
every line is a JSON object (:class:`JsonFormatter`)::

    {"time": "2026-12-04T08:15:02.113Z", "level": "INFO", "logger": "connectors.app",
     "message": "app.message.received sender=... chars=6", "service": "rasa",
     "correlation_id": "4f1c0a9e2b7d4c55a0e3f6b1d2c4e8a7"}

Sanic's loggers, Python's warnings and an uncaught exception go through the same handler; the
Rasa server's entry point (:func:`rasa_entry`) puts Rasa's own logging on it too. Every message
and traceback goes through :func:`bot.pii.mask_text` first; the services never log a shopper's
text (they log its length).

The correlation id of a turn lives in a context variable. The shopper channels bind one when a
message arrives: the app channel takes the request's ``X-Request-ID`` when it matches
:data:`REQUEST_ID_PATTERN` (else a new one) and answers with it; the others make one
(:func:`turn_correlation_id`). It travels in the message's metadata (``correlation_id``) to the
action server, which binds it from ``tracker.latest_message.metadata`` for the request
(:func:`correlate_requests` with :func:`correlation_of_action_call`), and the CRM client sends it
as ``X-Request-ID`` to the CRM, which binds it the same way and logs each request with it.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import re
import sys
import uuid
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, Type, Union

from bot.pii import mask_text
from bot.settings import SettingsError

if TYPE_CHECKING:
    from sanic import Sanic
    from sanic.request import Request
    from sanic.response import HTTPResponse

REQUEST_ID_HEADER = "X-Request-ID"
"""Header carrying a request's correlation id (read by the app channel and the CRM, sent by the CRM client)."""

METADATA_KEY = "correlation_id"
"""Key of the correlation id in a message's metadata, as the action server reads it."""

REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{8,64}")
"""What an incoming correlation id must be, whole; anything else is replaced by a new one."""

FORMATS = ("text", "json")
"""The values of ``LOG_FORMAT``."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""The default text line."""

CLOCK_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
"""The text line of the desk, the demo shop and the WeChat simulator (with ``%H:%M:%S`` times)."""

SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.access")

OWN_HANDLERS = ("jieba",)
"""Libraries of the Rasa server that print through a handler of their own, added when they are imported."""

QUIET_PATHS = frozenset({"/health", "/metrics"})
"""Paths whose requests :func:`correlate_requests` does not log (probes and scrapes)."""

_LINE_BREAKS = {ord(character): f"\\u{ord(character):04x}" for character in "\x85\u2028\u2029"}
"""Line breaks JSON leaves as they are (it escapes those below U+0020): escaped, so a line stays one line."""

_CORRELATION: ContextVar[Optional[str]] = ContextVar("shop_correlation_id", default=None)

Level = Union[int, str]


class LogFormatError(SettingsError):
    """``LOG_FORMAT`` names no known format."""


def new_correlation_id() -> str:
    """A fresh correlation id (32 hexadecimal digits)."""
    return uuid.uuid4().hex


def valid_correlation_id(value: Any) -> Optional[str]:
    """``value`` when it is a correlation id that :data:`REQUEST_ID_PATTERN` accepts, else None."""
    return value if isinstance(value, str) and REQUEST_ID_PATTERN.fullmatch(value) else None


def correlation_id() -> Optional[str]:
    """The correlation id bound in this context, None outside any turn or request."""
    return _CORRELATION.get()


def bind(value: Any = None) -> Tuple[str, Token[Optional[str]]]:
    """Bind ``value`` as this context's correlation id when it is valid, else a new one.

    Returns:
        The id bound and the token that :func:`unbind` takes.
    """
    chosen = valid_correlation_id(value) or new_correlation_id()
    return chosen, _CORRELATION.set(chosen)


def unbind(token: Token[Optional[str]]) -> None:
    """Put back the correlation id that was bound before :func:`bind`."""
    _CORRELATION.reset(token)


@contextmanager
def correlated(value: Any = None) -> Iterator[str]:
    """The ``with`` block runs under ``value`` as its correlation id (a new one when ``value`` is not valid)."""
    chosen, token = bind(value)
    try:
        yield chosen
    finally:
        unbind(token)


@contextmanager
def continued(value: Any) -> Iterator[Optional[str]]:
    """The ``with`` block runs under ``value`` as its correlation id when it is valid, else under the one bound (if any)."""
    if valid_correlation_id(value) is None:
        yield _CORRELATION.get()
        return
    with correlated(value) as chosen:
        yield chosen


def turn_correlation_id() -> str:
    """The correlation id of the turn under way: the one bound, else a new one, bound from now on in this context."""
    current = _CORRELATION.get()
    if current is None:
        current, _ = bind()
    return current


def correlation_of_action_call(call: Any) -> Optional[str]:
    """The correlation id in a call of the action server: ``tracker.latest_message.metadata.correlation_id``."""
    tracker = call.get("tracker") if isinstance(call, dict) else None
    latest = tracker.get("latest_message") if isinstance(tracker, dict) else None
    metadata = latest.get("metadata") if isinstance(latest, dict) else None
    return valid_correlation_id(metadata.get(METADATA_KEY)) if isinstance(metadata, dict) else None


def with_request_id(headers: Optional[Mapping[str, str]] = None) -> Optional[Dict[str, str]]:
    """``headers`` with ``X-Request-ID`` of the bound correlation id (unchanged outside a turn)."""
    current = _CORRELATION.get()
    if current is None:
        return dict(headers) if headers is not None else None
    return {**(headers or {}), REQUEST_ID_HEADER: current}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (masked), service, correlation id, exception.

    Args:
        service: the service's name, the ``service`` field of every line.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:  # a wrong format string still leaves a line
            message = f"{record.msg} (unformattable arguments)"
        entry: Dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(message),
            "service": self.service,
        }
        correlation = valid_correlation_id(getattr(record, METADATA_KEY, None)) or _CORRELATION.get()
        if correlation:
            entry[METADATA_KEY] = correlation
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = mask_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False).translate(_LINE_BREAKS)


def log_format_of(value: Optional[str]) -> str:
    """The format ``LOG_FORMAT`` names (``text`` when empty).

    Raises:
        LogFormatError: neither ``text`` nor ``json``.
    """
    chosen = (value or "text").strip().lower()
    if chosen not in FORMATS:
        raise LogFormatError(f"LOG_FORMAT={value!r} is not a log format: one of {', '.join(FORMATS)}")
    return chosen


def configure_logging(service: str, log_format: Optional[str] = None, level: Optional[Level] = logging.INFO,
                      text_format: str = TEXT_FORMAT, datefmt: Optional[str] = None) -> logging.Handler:
    """Send every log record of this process to one handler on standard error, in the format ``LOG_FORMAT`` says.

    The root logger's other handlers go, and Sanic's loggers (also of apps made later) pass their
    records to it instead of printing them themselves. With ``json``, Python's warnings are logged
    too, and an uncaught exception is logged before the process ends.

    Args:
        service: the ``service`` field of JSON lines.
        log_format: ``text`` or ``json``; the settings' ``LOG_FORMAT`` when None.
        level: the root logger's level (None: left as it is).
        text_format: the text line (``text`` only).
        datefmt: the text line's time format (``text`` only).

    Returns:
        The handler.

    Raises:
        LogFormatError: an unknown format.
    """
    if log_format is None:
        from bot.settings import load_settings

        log_format = load_settings().log_format
    json_lines = log_format_of(log_format) == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_lines else logging.Formatter(text_format, datefmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    if level is not None:
        root.setLevel(level)
    route_sanic_loggers()
    if json_lines:
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
    return handler


def _log_uncaught(kind: Type[BaseException], error: BaseException, traceback: Optional[TracebackType]) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("uncaught").critical("uncaught %s", kind.__name__, exc_info=(kind, error, traceback))


def route_sanic_loggers() -> None:
    """Sanic's loggers without handlers of their own, passing their records to the root logger's.

    Sanic configures its loggers when an app is made (``sanic.log.LOGGING_CONFIG_DEFAULTS``, its
    documented default configuration); their entries there lose their handlers too, so an app
    made later keeps it so.
    """
    from sanic.log import LOGGING_CONFIG_DEFAULTS

    loggers = LOGGING_CONFIG_DEFAULTS.setdefault("loggers", {})
    for name in SANIC_LOGGERS:
        loggers[name] = {**loggers.get(name, {}), "handlers": [], "propagate": True}
        sanic_logger = logging.getLogger(name)
        for old in list(sanic_logger.handlers):
            sanic_logger.removeHandler(old)
        sanic_logger.propagate = True


def correlate_requests(app: Sanic, name: str, read_id: Optional[Callable[[Request], Any]] = None,
                       describe: Optional[Callable[[Request], str]] = None) -> None:
    """Bind each request's correlation id, answer with it in ``X-Request-ID`` and log the request.

    A request refused by middleware registered before this one is logged all the same, under a
    new id. Probes and scrapes (:data:`QUIET_PATHS`) are not logged.

    Args:
        app: the service's app.
        name: the service's name: the logger is ``<name>.requests``, the line ``<name>.request ...``.
        read_id: where a request's id is (default: its ``X-Request-ID``); an invalid one is replaced.
        describe: more ``key=value`` words for the line (never a text a person wrote).
    """
    from bot.metrics import route_template

    log = logging.getLogger(f"{name}.requests")
    reader = read_id or (lambda request: request.headers.get(REQUEST_ID_HEADER))

    @app.middleware("request")
    async def correlation_bind(request: Request) -> None:
        try:
            given = reader(request)
        except Exception:  # an unreadable body is the handler's to refuse
            given = None
        request.ctx.correlation_id, _ = bind(given)

    @app.middleware("response")
    async def correlation_log(request: Request, response: HTTPResponse) -> None:
        correlation = getattr(request.ctx, "correlation_id", None)
        if correlation is None:
            correlation, _ = bind()
        response.headers[REQUEST_ID_HEADER] = correlation
        if request.path in QUIET_PATHS:
            return
        extra = f" {describe(request)}" if describe is not None else ""
        log.info("%s.request method=%s route=%s status=%d%s", name, request.method, route_template(request) or "unmatched",
                 response.status, extra, extra={METADATA_KEY: correlation})


def rasa_entry(log_format: str) -> None:
    """Rasa's own logging on :func:`configure_logging`'s handler (``python -m bot.rasa_patches run``).

    With ``json``, the root logger gets the JSON handler now (the libraries of :data:`OWN_HANDLERS`
    lose their own), ``rasa.utils.io.configure_colored_logging``
    (where ``rasa``'s command sets its text lines) sets it again at Rasa's log level instead, and
    ``rasa.utils.common.update_sanic_log_level`` leaves Sanic's loggers passing their records to
    it. With ``text`` Rasa logs as it always does.

    Raises:
        LogFormatError: an unknown format.
    """
    if log_format_of(log_format) != "json":
        return
    import rasa.utils.common
    import rasa.utils.io

    configure_logging("rasa", "json", level=None)
    for name in OWN_HANDLERS:  # their records reach the JSON handler at the root's level instead
        importlib.import_module(name)
        library = logging.getLogger(name)
        for old in list(library.handlers):
            library.removeHandler(old)
        library.setLevel(logging.NOTSET)
    if getattr(rasa.utils.io.configure_colored_logging, "shop_logs", False):
        return

    def configure_colored_logging(loglevel: Optional[Level]) -> None:
        configure_logging("rasa", "json", level=loglevel or os.environ.get("LOG_LEVEL") or "INFO")

    update_sanic = rasa.utils.common.update_sanic_log_level

    def update_sanic_log_level(*positional: Any, **keywords: Any) -> None:
        update_sanic(*positional, **keywords)
        route_sanic_loggers()

    configure_colored_logging.shop_logs = True  # type: ignore[attr-defined]
    rasa.utils.io.configure_colored_logging = configure_colored_logging
    rasa.utils.common.update_sanic_log_level = update_sanic_log_level
