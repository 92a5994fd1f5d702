"""The supervisors' reports on the desk: the handoff figures, and the pushed messages no channel could deliver.

Routes (registered by :func:`desk.app.create_app` through :func:`register`; supervisors only, 403
``forbidden`` for agents):

- ``GET /api/metrics?days=7``: the handoff figures of the last 1–90 days (:func:`handoff.stats.metrics`),
  with ``push_dead_letters`` (the pushed messages no channel could deliver) and ``overdue_tickets``;
  400 ``invalid_days``.
- ``GET /api/push/dead-letters?limit=100``: the most recent dead letters of the channels' push
  delivery (:mod:`bot.push`) and their count; 400 ``invalid_limit``.
- ``POST /api/push/dead-letters/{id}/retry``: announce that conversation again, so its channel
  delivers what it has not delivered (the dead letter is removed); 400 ``invalid_dead_letter``,
  404 ``not_found``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine
from urllib.parse import unquote

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.push import dead_letter_count, dead_letters, parse_dead_letter_id, retry_dead_letter
from desk import auth
from desk.app import ApiError, _json
from desk.texts import say
from handoff import stats, tickets
from handoff.context import HandoffContext

logger = logging.getLogger(__name__)

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]
MAX_DAYS = 90
"""Most days ``GET /api/metrics`` covers."""
MAX_DEAD_LETTERS = 500
"""Most dead letters one ``GET /api/push/dead-letters`` lists."""


def _supervisors_only(agent: auth.Agent, text: str) -> None:
    if not agent.supervisor:
        raise ApiError(403, "forbidden", say(text))


def _whole_number(request: Request, name: str, default: str, highest: int, message: str) -> int:
    """The query argument ``name``: a whole number from 1 to ``highest`` (400 ``invalid_<name>`` with ``message`` otherwise)."""
    raw = request.args.get(name, default)
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(highest))) or not 1 <= int(raw) <= highest:
        raise ApiError(400, f"invalid_{name}", message)
    return int(raw)


def register(app: Sanic, authed: Callable[[Handler], Handler]) -> None:
    """Add the report routes to the desk (``app.ctx.handoff``: its handoff context)."""

    def handoff() -> HandoffContext:
        return app.ctx.handoff  # type: ignore[no-any-return]

    @app.get("/api/metrics")
    @authed
    async def metrics(request: Request, agent: auth.Agent) -> HTTPResponse:
        _supervisors_only(agent, "forbidden_metrics")
        days = _whole_number(request, "days", "7", MAX_DAYS, say("invalid_days", max_days=MAX_DAYS))
        figures = await stats.metrics(handoff(), days)
        figures["push_dead_letters"] = await dead_letter_count(handoff().redis)
        figures["overdue_tickets"] = await tickets.overdue_counts(handoff())
        return _json(figures)

    @app.get("/api/push/dead-letters")
    @authed
    async def dead_letter_list(request: Request, agent: auth.Agent) -> HTTPResponse:
        _supervisors_only(agent, "forbidden_dead_letters")
        limit = _whole_number(request, "limit", "100", MAX_DEAD_LETTERS, say("invalid_limit", max_limit=MAX_DEAD_LETTERS))
        redis = handoff().redis
        letters = await dead_letters(redis, count=limit)
        return _json({"dead_letters": [letter.as_json() for letter in letters], "count": await dead_letter_count(redis)})

    @app.post("/api/push/dead-letters/<dead_letter_id:str>/retry")
    @authed
    async def dead_letter_retry(request: Request, agent: auth.Agent, dead_letter_id: str) -> HTTPResponse:
        _supervisors_only(agent, "forbidden_dead_letters")
        dead_letter_id = unquote(dead_letter_id)  # as sent: a client may percent-encode its ":"
        if parse_dead_letter_id(dead_letter_id) is None:
            raise ApiError(400, "invalid_dead_letter", say("invalid_dead_letter"))
        sender = await retry_dead_letter(handoff().redis, dead_letter_id)
        if sender is None:
            raise ApiError(404, "not_found", say("dead_letter_not_found"))
        logger.info("desk.dead_letter.retried id=%s sender=%s agent=%s", dead_letter_id, sender, agent.username)
        return _json({"status": "requeued", "id": dead_letter_id, "sender": sender})
