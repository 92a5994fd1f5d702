"""Callback tickets an agent answers in the shopper's conversation.

Routes (registered by :func:`desk.app.create_app` through :func:`register`):

- ``GET /api/callbacks/{callback_id}``: the ticket, the handoff an agent opened by answering it
  (``live_handoff``, empty before) and the exchange in that conversation (masked transcript).
- ``POST /api/callbacks/{callback_id}/messages {"text", "client_id"}``: the agent's message reaches
  the shopper on every channel the conversation lives on, through the agent-reply path. The first
  message opens a live handoff held by the agent (:mod:`handoff.tickets`), or claims the one
  waiting in the queue since the shopper came back to the conversation; the shopper's answer
  then reaches that agent with the ticket's summary. 201 with the handoff id and the transcript
  entry. Refusals: 400 ``invalid_callback`` (not a ticket id), ``invalid_text``,
  ``invalid_client_id``; 413 ``text_too_long``; 404 ``not_found``; 409 ``done`` (completed),
  ``in_conversation`` (the shopper is in another live conversation), ``busy``, ``at_capacity``;
  403 ``not_yours`` (another agent answers this ticket).

Completing the ticket stays ``POST /api/callbacks/{callback_id}/complete {"code", "note"}``; the
ticket's live handoff, when the completing agent holds it, ends there the normal way with that code
(the outcome and the rating prompt reach the shopper: :func:`handoff.callbacks.end_live`).

Carrier-urge tickets (:mod:`handoff.carrier_urges`): the bot's promise that a carrier answers an
urge by a time. ``GET /api/carrier-urges`` lists the unsettled ones by due time (overdue flagged;
``include_done=1`` adds the settled ones), ``GET /api/carrier-urges/{ticket_id}`` shows one, and
``POST /api/carrier-urges/{ticket_id}/answer {"text"}`` sends an agent's answer to the shopper's
conversation and settles the ticket (400 ``invalid_ticket``, ``invalid_text``; 404 ``not_found``;
409 ``done``). Every desk instance runs the worker that polls the CRM for these tickets
(:func:`desk.live.carrier_urge_worker`, started here after the desk's own tasks).
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Dict

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from desk import auth, views
from desk.app import MAX_TEXT, ApiError, _body, _json, _refusal, _text
from desk.live import carrier_urge_worker
from desk.texts import say
from desk.workspace import desk_text
from handoff import carrier_urges, keys, reviews, tickets
from handoff.context import HandoffContext

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]

REFUSALS = {
    "in_conversation": (409, "in_conversation"),
    "busy": (409, "busy"),
    "not_found": (404, "callback_not_found"),
    "review_not_found": (404, "review_not_found"),
    "review_done": (409, "review_done"),
}
"""Refusals of callback tickets and reviews: status and the text of desk/texts.yml."""
URGE_REFUSALS = {"urge_not_found": (404, "unknown_urge_ticket"), "urge_done": (409, "urge_ticket_done")}
"""Refusals of carrier-urge tickets: status and the text of desk/workspace.yml."""


def _ticket_id(callback_id: str) -> str:
    if not keys.CALLBACK_ID.fullmatch(callback_id):
        raise ApiError(400, "invalid_callback", say("invalid_callback"))
    return callback_id


def _review_id(review_id: str) -> str:
    if not reviews.REVIEW_ID.fullmatch(review_id):
        raise ApiError(400, "invalid_review", say("invalid_review"))
    return review_id


def _urge_ticket_id(ticket_id: str) -> str:
    if not carrier_urges.TICKET_ID.fullmatch(ticket_id):
        raise ApiError(400, "invalid_ticket", desk_text("invalid_urge_ticket"))
    return ticket_id


def _note(body: Dict[str, Any]) -> str:
    note = body.get("note")
    if not isinstance(note, str) or not note.strip():
        raise ApiError(400, "invalid_note", say("review_note_missing"))
    if len(note) > MAX_TEXT:
        raise ApiError(413, "text_too_long", say("note_too_long", max_chars=MAX_TEXT))
    return note.strip()


def _client_id(body: Dict[str, Any]) -> str:
    value = body.get("client_id")
    if value is not None and not isinstance(value, str):
        raise _refusal("invalid_client_id")
    return value or ""


def refusal(status: str, detail: str, names: Dict[str, str]) -> ApiError:
    """The API error of a refused ticket operation."""
    if status in REFUSALS:
        code, text = REFUSALS[status]
        return ApiError(code, status, say(text))
    if status in URGE_REFUSALS:
        code, text = URGE_REFUSALS[status]
        return ApiError(code, status.removeprefix("urge_"), desk_text(text))
    return _refusal(status, detail, names)


def register(app: Sanic, authed: Callable[[Handler], Handler]) -> None:
    """Add the ticket routes to the desk (``app.ctx.handoff``: its handoff context, ``app.ctx.agents``: its agents)."""
    names: Dict[str, str] = {u: a.display_name for u, a in app.ctx.agents.items()}

    def handoff() -> HandoffContext:
        return app.ctx.handoff  # type: ignore[no-any-return]

    async def start_carrier_urge_worker(app: Sanic, loop: Any) -> None:
        # after the desk's own start: its handoff context, stop event and task list exist; its stop awaits the task
        app.ctx.tasks.append(loop.create_task(carrier_urge_worker(app.ctx.handoff, app.ctx.crm, app.ctx.stop)))

    app.register_listener(start_carrier_urge_worker, "after_server_start")

    @app.get("/api/callbacks/<callback_id:str>")
    @authed
    async def callback_view(request: Request, agent: auth.Agent, callback_id: str) -> HTTPResponse:
        ctx = handoff()
        record = await tickets.ticket(ctx, _ticket_id(callback_id))
        if record is None:
            raise refusal("not_found", "", names)
        return _json({
            "callback": views.callback_item(record, ctx.policy),
            "live_handoff": record.get(tickets.LIVE_FIELD) or "",
            "exchange": await tickets.exchange(ctx, record),
        })

    @app.post("/api/callbacks/<callback_id:str>/messages")
    @authed
    async def callback_message(request: Request, agent: auth.Agent, callback_id: str) -> HTTPResponse:
        body = _body(request)
        result = await tickets.answer(handoff(), _ticket_id(callback_id), agent.username, agent.display_name, _text(body),
                                      _client_id(body))
        if not result.ok:
            raise refusal(result.status, result.detail, names)
        return _json({"callback_id": callback_id, "handoff_id": result.handoff_id, **(result.data or {})}, status=201)

    def supervisor(agent: auth.Agent) -> None:
        if agent.role != "supervisor":
            raise ApiError(403, "supervisors_only", say("forbidden_reviews"))

    @app.get("/api/reviews")
    @authed
    async def review_list(request: Request, agent: auth.Agent) -> HTTPResponse:
        supervisor(agent)
        include_closed = request.args.get("include_closed") in ("1", "true")
        ctx = handoff()
        return _json({"now": ctx.now(), "reviews": await reviews.list_reviews(ctx, include_closed=include_closed)})

    @app.post("/api/reviews/<review_id:str>/close")
    @authed
    async def review_close(request: Request, agent: auth.Agent, review_id: str) -> HTTPResponse:
        supervisor(agent)
        result = await reviews.close_review(handoff(), _review_id(review_id), agent.username, _note(_body(request)))
        if not result.ok:
            raise refusal(f"review_{result.status}", result.detail, names)
        return _json({"status": "closed", "review_id": review_id})

    @app.get("/api/tickets/overdue")
    @authed
    async def overdue(request: Request, agent: auth.Agent) -> HTTPResponse:
        return _json({"overdue": await tickets.overdue_counts(handoff())})

    @app.get("/api/carrier-urges")
    @authed
    async def carrier_urge_list(request: Request, agent: auth.Agent) -> HTTPResponse:
        include_done = request.args.get("include_done") in ("1", "true")
        ctx = handoff()
        return _json({"now": ctx.now(), "tickets": await carrier_urges.list_tickets(ctx, include_done=include_done)})

    @app.get("/api/carrier-urges/<ticket_id:str>")
    @authed
    async def carrier_urge_view(request: Request, agent: auth.Agent, ticket_id: str) -> HTTPResponse:
        found = await carrier_urges.get_ticket(handoff(), _urge_ticket_id(ticket_id))
        if found is None:
            raise refusal("urge_not_found", "", names)
        return _json({"ticket": found})

    @app.post("/api/carrier-urges/<ticket_id:str>/answer")
    @authed
    async def carrier_urge_answer(request: Request, agent: auth.Agent, ticket_id: str) -> HTTPResponse:
        checked = _urge_ticket_id(ticket_id)
        result = await carrier_urges.answer(handoff(), checked, agent.username, agent.display_name, _text(_body(request)))
        if not result.ok:
            raise refusal(f"urge_{result.status}", result.detail, names)
        return _json({"status": "closed", "ticket_id": checked})
