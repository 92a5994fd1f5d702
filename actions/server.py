"""The action server: rasa-sdk's app, bound to loopback, answering only Rasa.

``python -m actions.server [--host H] [--port N]`` serves the actions of this package with
rasa-sdk's own webhook (``POST /webhook``, ``GET /actions``, ``GET /health``), plus what a server
reachable by strangers needs:

- every request but ``/health`` and ``/metrics`` carries the shared secret ``ACTION_SERVER_TOKEN`` in
  the header ``X-Action-Token`` (Rasa sends it from ``endpoints.yml``), else ``401`` and nothing runs;
- ``GET /metrics``: each action's latency and errors in the Prometheus text format, behind
  ``METRICS_TOKEN`` or loopback only (:mod:`bot.metrics`);
- bodies over ``ACTION_MAX_BODY_BYTES`` get ``413``; compressed bodies (which rasa-sdk would
  inflate without a limit) get ``415``;
- a failing action answers ``500`` with a code only, never the tracker it was sent;
- it listens on ``ACTION_HOST`` (``127.0.0.1`` by default), never on every interface unasked.

The identity of the shopper is not taken from the tracker either: see :mod:`actions.shopper`.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import re
from typing import List, Optional

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import logs, metrics, production
from bot.settings import Settings, load_settings

logger = logging.getLogger(__name__)

TOKEN_HEADER = "X-Action-Token"
"""Header carrying the shared secret of Rasa and the action server."""

OPEN_PATHS = frozenset({"/health", metrics.PATH})
"""Paths answered without the shared secret (``/metrics`` has its own rule: :func:`bot.metrics.refusal`)."""


ACTION_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
"""What an action's name in a request log line may be (anything else is logged as ``none``)."""


class ActionServerConfigError(RuntimeError):
    """The action server cannot start safely with this configuration."""


def _refusal(status: int, code: str) -> HTTPResponse:
    return response.json({"error": {"code": code}}, status=status)


def _action_named(request: Request) -> str:
    call = getattr(request, "parsed_json", None)
    action = call.get("next_action") if isinstance(call, dict) else None
    return f"action={action}" if isinstance(action, str) and ACTION_NAME.fullmatch(action) else "action=none"


def token_matches(expected: str, given: Optional[str]) -> bool:
    """Whether the request's token is the shared secret (constant time; an empty secret matches nothing)."""
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def create_action_app(token: str, max_body_bytes: int, package: str = "actions", metrics_token: str = "") -> Sanic:
    """rasa-sdk's action app behind the shared token and the body limit, with its Prometheus page.

    Args:
        token: the shared secret every request must carry.
        max_body_bytes: the largest body read.
        package: the package whose actions are served.
        metrics_token: ``METRICS_TOKEN`` of ``/metrics`` (empty: loopback clients only).

    Returns:
        The Sanic app.

    Raises:
        ActionServerConfigError: the token is empty.
    """
    if not token:
        raise ActionServerConfigError("ACTION_SERVER_TOKEN is empty: the action server answers no one without it")
    from rasa_sdk.endpoint import create_app  # imported once the logging is set up: importing it warns

    app = create_app(package, cors_origins=None)
    app.config.REQUEST_MAX_SIZE = max_body_bytes
    metrics.time_requests(app, metrics.action_observer)
    metrics.add_route(app, metrics_token)

    @app.middleware("request")
    async def guard(request: Request) -> Optional[HTTPResponse]:
        if request.path in OPEN_PATHS:
            return None
        if not token_matches(token, request.headers.get(TOKEN_HEADER)):
            logger.warning("actions.request.unauthorised path=%s", request.path)
            return _refusal(401, "unauthorised")
        if request.headers.get("Content-Encoding"):
            return _refusal(415, "unsupported_encoding")
        return None

    logs.correlate_requests(app, "actions", read_id=lambda request: logs.correlation_of_action_call(request.json), describe=_action_named)

    async def failed(request: Request, exception: Exception) -> HTTPResponse:
        status = getattr(exception, "status_code", 500)
        if status == 413:
            return _refusal(413, "payload_too_large")
        if isinstance(status, int) and 400 <= status < 500:
            return _refusal(status, "bad_request")
        logger.error("actions.request.failed path=%s error=%s", request.path, type(exception).__name__, exc_info=exception)
        return _refusal(500, "action_failed")

    app.error_handler.add(Exception, failed)
    return app


def main(argv: Optional[List[str]] = None, settings: Optional[Settings] = None) -> None:
    """Run the action server (one Sanic worker) until stopped."""
    settings = settings or load_settings()
    parser = argparse.ArgumentParser(prog="python -m actions.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=settings.action_host)
    parser.add_argument("--port", type=int, default=settings.action_port)
    args = parser.parse_args(argv)
    production.enforce(settings, "action server", hosts=[args.host], check_agents=False)
    logs.configure_logging("actions", settings.log_format)
    metrics.prepare("actions", settings.var_dir, args.port)
    app = create_action_app(settings.action_server_token, settings.action_max_body_bytes, metrics_token=settings.metrics_token)
    logger.info("actions.server.listening host=%s port=%d", args.host, args.port)
    app.run(host=args.host, port=args.port, access_log=False, workers=1)


if __name__ == "__main__":
    main()
