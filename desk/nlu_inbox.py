"""The desk's NLU inbox routes (supervisors only): the messages the bot did not understand, and their labels.

- ``GET /api/nlu/inbox?status=all|unlabelled|labelled&limit=100``: the kept messages newest first
  (masked text, predicted intent and confidence, when, why kept, the label if any), the counts,
  the intents a message may be labelled with and the retention;
- ``POST /api/nlu/inbox/{id}/label {"intent"}``: label one (again with the same intent: nothing
  changes; with another: the new label counts). ``make review-export`` writes the labelled ones as
  training data (:mod:`bot.nlu_export`).

An agent gets ``403 forbidden`` (:func:`desk.access.may_review_nlu`), no session ``401``; an
intent that is not the domain's ``400 unknown_intent``; an unknown id ``404 not_found``.
Registered by :func:`desk.app.create_app` through :func:`register`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Coroutine, Dict, Optional

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import nlu_inbox
from desk import auth
from desk.access import may_review_nlu
from desk.app import ApiError, _body, _json
from desk.texts import say

logger = logging.getLogger(__name__)

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]
MAX_LIMIT = 500
MAX_INTENT_CHARS = 100
STATUSES = ("all", "unlabelled", "labelled")


def _supervisor(agent: auth.Agent) -> None:
    if not may_review_nlu(agent):
        raise ApiError(403, "forbidden", say("forbidden_nlu_inbox"))


def _limit(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", say("invalid_limit", max_limit=MAX_LIMIT))
    return int(raw)


def register(app: Sanic, authed: Callable[[Handler], Handler], choices: Optional[Dict[str, str]] = None) -> None:
    """Add the inbox routes to the desk.

    Args:
        app: the desk; ``app.ctx.handoff.redis`` is its Redis, ``app.ctx.settings`` its settings.
        authed: the desk's decorator that resolves the session's agent (401 without one).
        choices: the intents a message may be labelled with (the domain's by default).
    """
    intents = choices if choices is not None else nlu_inbox.label_choices()
    intent_list = [{"name": name, "label": label} for name, label in intents.items()]

    def retention_s() -> int:
        return nlu_inbox.InboxConfig.from_settings(app.ctx.settings).retention_s

    @app.get("/api/nlu/inbox")
    @authed
    async def inbox_list(request: Request, agent: auth.Agent) -> HTTPResponse:
        _supervisor(agent)
        status = request.args.get("status", "all")
        if status not in STATUSES:
            raise ApiError(400, "invalid_status", say("invalid_status"))
        limit = _limit(request.args.get("limit", "100"))
        page = await nlu_inbox.list_items(app.ctx.handoff.redis, status, limit, retention_s())
        config = nlu_inbox.InboxConfig.from_settings(app.ctx.settings)
        return _json({"items": page.items, "total": page.total, "labelled": page.labelled, "intents": intent_list,
                      "retention_days": app.ctx.settings.nlu_inbox_retention_days, "confidence_threshold": config.confidence})

    @app.post("/api/nlu/inbox/<item_id:str>/label")
    @authed
    async def inbox_label(request: Request, agent: auth.Agent, item_id: str) -> HTTPResponse:
        _supervisor(agent)
        if not nlu_inbox.ITEM_ID.fullmatch(item_id):
            raise ApiError(400, "invalid_item", say("invalid_item"))
        intent = _body(request).get("intent")
        if not isinstance(intent, str) or not intent.strip() or len(intent) > MAX_INTENT_CHARS:
            raise ApiError(400, "invalid_intent", say("invalid_intent"))
        intent = intent.strip()
        if intent not in intents:
            raise ApiError(400, "unknown_intent", say("unknown_intent"))
        redis = app.ctx.handoff.redis
        outcome = await nlu_inbox.label_item(redis, item_id, intent, agent.username)
        item = await nlu_inbox.get_item(redis, item_id, retention_s()) if outcome != "not_found" else None
        if item is None:
            raise ApiError(404, "not_found", say("inbox_item_not_found"))
        if outcome == "labelled":
            logger.info("desk.nlu_inbox.labelled id=%s intent=%s agent=%s", item_id, intent, agent.username)
        return _json({"status": outcome, "item": item})
