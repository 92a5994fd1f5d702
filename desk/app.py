"""The agent desk: a Sanic service with the JSON API, the agents' websocket, the console, the
charts page and the Prometheus page.

API (JSON; every route but ``/api/login``, ``/health``, ``/openapi.json`` and ``/metrics`` needs
``Authorization: Bearer <token>``; described by the OpenAPI document at ``/openapi.json``):

- ``POST /api/login {"username", "password"}`` → ``{"token", "agent"}``; attempts are throttled
  per (username, client address), per address and per username (429, see :mod:`desk.auth`);
  ``POST /api/logout`` (also closes the session's websockets)
- ``GET /api/me``: the agent, canned replies, resolution codes, the other agents (for transfers)
- ``POST /api/presence``: heartbeat (the console sends one every 10 s)
- ``GET /api/queue``: waiting conversations in serving order, the agent's own, agents online
- ``GET /api/conversations/{sender}``: summary, transcript, notes, earlier handoffs (who may see
  which conversation: :mod:`desk.access`; 403 ``not_yours`` otherwise)
- ``POST /api/conversations/{sender}/claim``: 200 for exactly one agent, 409 for the others
- ``POST /api/conversations/{sender}/messages {"text"}``: reply to the shopper
- ``POST /api/conversations/{sender}/notes {"text"}``: internal note
- ``POST /api/conversations/{sender}/transfer {"to"}``: hand over to another online agent
- ``POST /api/conversations/{sender}/resolve {"code"}``: end; the bot takes over and asks for a rating
- ``GET /api/canned``; ``GET /api/callbacks``; ``POST /api/callbacks/{id}/complete {"code", "note"}``
- ``GET /health``; websocket ``/api/ws``; pages ``/`` and ``/charts`` (the supervisors' charts of
  ``/api/metrics``)
- ``GET /metrics``: the handoff queue, its waits, agents online, open and overdue tickets and dead
  letters as Prometheus gauges read from Redis at each scrape (:func:`bot.metrics.handoff_gauges`),
  behind ``METRICS_TOKEN`` or loopback only
- ``GET /api/metrics?days=7``, ``GET /api/push/dead-letters?limit=100`` and ``POST
  /api/push/dead-letters/{id}/retry`` (supervisors only, 403 ``forbidden`` for agents): the handoff
  figures and the pushed messages no channel could deliver (:mod:`desk.reports_api`)
- ``GET /api/nlu/inbox``, ``POST /api/nlu/inbox/{id}/label {"intent"}`` (supervisors only): the
  messages the bot did not understand and their labels (:mod:`desk.nlu_inbox`)
- ``GET /api/customers/{customer_id}/overview`` and ``POST /api/conversations/{sender}/actions/{return,
  late-compensation,resend-tracking,callback}``: the agent workspace (:mod:`desk.workspace`)

Errors are JSON ``{"error": {"code", "message"}}`` with a 4xx status (503 when Redis is down).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Coroutine, Dict, List, Mapping, Optional, Sequence
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from redis.asyncio import Redis
from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import metrics as prometheus
from bot.settings import Settings
from desk import auth, views
from desk.access import claim_teams, may_claim, may_see, wrong_team
from desk.intake import Intake
from desk.live import CLOSE_SESSION_ENDED, SESSION_CLOSED, SESSION_ENDED, Hub, fingerprint, instance_name, periodic, relay_events, sweeper
from desk.openapi import build_openapi
from desk.texts import say
from handoff import agents as presence
from handoff import callbacks, conversation, keys, queue
from handoff.context import REDIS_FAILURES, HandoffContext, close_clients, redis_client
from handoff.conversation import publish
from handoff.policy import ServicePolicy, load_policy, opening_hours_text

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}
MAX_TEXT = 2000
MAX_BODY = 64 * 1024
WS_AUTH_TIMEOUT_S = 10.0
WS_RECHECK_S = 15.0
"""How often an open websocket's session is checked again (also on every message from the console)."""
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class DeskRequest(Request):
    """Sanic's request with room for what the websockets library records on a refused handshake
    (``_exception``): without it, a request to the websocket route that is no handshake raised inside
    the handshake and was answered 500 instead of 426 or 400."""

    __slots__ = ("_exception",)


class ApiError(Exception):
    """A request the desk refuses, answered as JSON with a 4xx status."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def _json(body: Any, status: int = 200) -> HTTPResponse:
    return response.json(body, status=status, dumps=json.dumps, ensure_ascii=False, headers={"Cache-Control": "no-store"})


def _error(status: int, code: str, message: str, **extra: Any) -> HTTPResponse:
    return _json({"error": {"code": code, "message": message, **extra}}, status=status)


def _body(request: Request) -> Dict[str, Any]:
    raw = request.body or b""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "invalid_json", say("invalid_json")) from error
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", say("json_not_object"))
    return data


def _text(body: Mapping[str, Any], field: str = "text") -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_text", say("invalid_text"))
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise ApiError(413, "text_too_long", say("text_too_long", max_chars=MAX_TEXT))
    return value


def _sender(sender: str) -> str:
    if not keys.SENDER.fullmatch(sender):
        raise ApiError(400, "invalid_sender", say("invalid_sender"))
    return sender


def _path_sender(segment: str) -> str:
    """The conversation id of a path segment, percent-decoded (the console puts ids in paths with
    encodeURIComponent: ``app:1`` arrives as ``app%3A1``); 400 when it is no conversation id."""
    return _sender(unquote(segment))


REFUSALS = {
    "not_found": (404, "not_found_conversation"),
    "taken": (409, "taken"),
    "offered_to_other": (409, "offered_to_other"),
    "at_capacity": (409, "at_capacity"),
    "not_assigned": (409, "not_assigned"),
    "not_yours": (403, "not_yours"),
    "same_agent": (400, "same_agent"),
    "offline": (409, "offline"),
    "done": (409, "done"),
    "invalid_client_id": (400, "invalid_client_id"),
}
"""Refusals of the handoff's operations by its status: the HTTP status and the text of desk/texts.yml."""


def _refusal(status: str, detail: str = "", names: Optional[Mapping[str, str]] = None) -> ApiError:
    code, text = REFUSALS.get(status, (409, "refused"))
    extra: Dict[str, Any] = {}
    if detail and status in ("taken", "offered_to_other", "not_yours", "offline", "done"):
        extra["agent"] = detail
        if names and detail in names:
            extra["agent_name"] = names[detail]
    return ApiError(code, "already_claimed" if status == "taken" else status, say(text), **extra)


Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def create_app(settings: Settings, name: str = "desk", trusted_proxies: Sequence[auth.Network] = (),
               ws_recheck_s: float = WS_RECHECK_S, login_limits: auth.LoginLimits = auth.DEFAULT_LIMITS) -> Sanic:
    """Build the desk application.

    Args:
        settings: the stack's settings (Redis, policy file, agents file, timezone, port).
        name: the Sanic app name (unique per process).
        trusted_proxies: the reverse proxies whose ``X-Forwarded-For`` names the client (none by
            default: the client is the peer address; ``DESK_TRUSTED_PROXIES`` in ``python -m desk``).
        ws_recheck_s: how often an open websocket's session is checked again.
        login_limits: the limits of login attempts.

    Raises:
        handoff.policy.PolicyError, desk.auth.AgentsFileError: a configuration file is invalid.
    """
    app = Sanic(name, request_class=DeskRequest)
    app.config.REQUEST_MAX_SIZE = MAX_BODY
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False
    app.config.WEBSOCKET_MAX_SIZE = MAX_BODY
    policy: ServicePolicy = load_policy(settings.handoff_policy_file)
    agents: Dict[str, auth.Agent] = auth.load_agents(settings.desk_agents_file)
    names = {username: agent.display_name for username, agent in agents.items()}
    gate = auth.LoginGate(agents, login_limits)
    static_files = {path.name: path.read_bytes() for path in STATIC_DIR.iterdir() if path.suffix in STATIC_TYPES}
    app.ctx.settings = settings
    app.ctx.agents = agents

    def handoff() -> HandoffContext:
        return app.ctx.handoff  # type: ignore[no-any-return]

    async def start(app: Sanic, loop: asyncio.AbstractEventLoop) -> None:
        url = settings.effective_redis_url
        redis = redis_client(url, settings.handoff_redis_timeout_s, max_connections=100)
        app.ctx.handoff = HandoffContext(redis, policy, ZoneInfo(settings.shop_timezone), outbox_ttl_s=settings.tracker_ttl_s,
                                         redeliver_idle_ms=settings.handoff_redeliver_idle_ms)
        app.ctx.blocking = Redis.from_url(url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=1.0)
        app.ctx.hub = Hub()
        app.ctx.stop = asyncio.Event()
        me = instance_name(settings.desk_port)
        app.ctx.intake = Intake(app.ctx.handoff, app.ctx.blocking, me)
        app.ctx.tasks = [
            loop.create_task(app.ctx.intake.run(app.ctx.stop)),
            loop.create_task(relay_events(app.ctx.blocking, app.ctx.hub, app.ctx.stop)),
            loop.create_task(periodic(app.ctx.handoff, me, app.ctx.stop)),
            loop.create_task(sweeper(app.ctx.handoff, app.ctx.stop)),
        ]

    async def stop(app: Sanic, loop: asyncio.AbstractEventLoop) -> None:
        app.ctx.stop.set()
        for task in app.ctx.tasks:
            try:
                await asyncio.wait_for(task, timeout=6)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                task.cancel()
            except Exception:  # a background task's own failure must not block shutdown
                logger.exception("desk.task.failed")
        await app.ctx.blocking.close()
        await close_clients()

    app.register_listener(start, "before_server_start")
    app.register_listener(stop, "before_server_stop")

    @app.middleware("response")
    async def security_headers(request: Request, resp: HTTPResponse) -> None:
        for header, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(header, value)

    @app.exception(ApiError)
    async def api_error(request: Request, error: ApiError) -> HTTPResponse:
        resp = _error(error.status, error.code, error.message, **error.extra)
        if "retry_after_s" in error.extra:
            resp.headers["Retry-After"] = str(error.extra["retry_after_s"])
        return resp

    @app.exception(*REDIS_FAILURES)
    async def redis_down(request: Request, error: Exception) -> HTTPResponse:
        logger.error("desk.redis_unavailable path=%s error=%s", request.path, type(error).__name__)
        return _error(503, "unavailable", say("unavailable"))

    @app.exception(SanicException)
    async def sanic_error(request: Request, error: SanicException) -> HTTPResponse:
        status = int(getattr(error, "status_code", 500) or 500)
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(status, "bad_request")
        return _error(status, code, say("not_found_path" if status == 404 else code))

    @app.exception(Exception)
    async def unexpected(request: Request, error: Exception) -> HTTPResponse:
        logger.exception("desk.unexpected path=%s", request.path)
        return _error(500, "internal", say("internal"))

    async def current_agent(request: Request) -> auth.Agent:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        username = await auth.session_agent(handoff().redis, token) if token else None
        agent = agents.get(username or "")
        if agent is None:
            raise ApiError(401, "unauthorized", say("unauthorized"))
        request.ctx.token = token
        return agent

    def agent_json(agent: auth.Agent) -> Dict[str, Any]:
        return {"username": agent.username, "display_name": agent.display_name, "role": agent.role}

    def authed(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
            agent = await current_agent(request)
            return await handler(request, agent, *args, **kwargs)

        return wrapper

    # Pages -------------------------------------------------------------------------------------

    def static(name: str) -> HTTPResponse:
        content = static_files.get(name)
        if content is None:
            raise ApiError(404, "not_found", say("not_found_path"))
        return response.raw(content, content_type=STATIC_TYPES[Path(name).suffix])

    @app.get("/")
    async def console(request: Request) -> HTTPResponse:
        return static("console.html")

    @app.get("/charts")
    async def charts_page(request: Request) -> HTTPResponse:
        return static("metrics.html")

    async def gauges() -> List[Any]:
        return await prometheus.handoff_gauges(handoff())

    prometheus.add_route(app, settings.metrics_token, gauges)

    @app.get("/favicon.ico")
    async def favicon(request: Request) -> HTTPResponse:
        return response.empty()

    @app.get("/static/<name:str>")
    async def static_file(request: Request, name: str) -> HTTPResponse:
        return static(name)

    @app.get("/health")
    async def health(request: Request) -> HTTPResponse:
        try:
            await handoff().redis.ping()
        except REDIS_FAILURES:
            return _json({"status": "degraded", "redis": "unavailable"}, status=503)
        return _json({"status": "ok", "redis": "ok", "intake_processed": app.ctx.intake.processed})

    # Login and presence --------------------------------------------------------------------------

    @app.post("/api/login")
    async def login(request: Request) -> HTTPResponse:
        body = _body(request)
        username, password = body.get("username"), body.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password or len(password) > 256:
            raise ApiError(400, "invalid_credentials_format", say("invalid_credentials_format"))
        username = username.strip()[: auth.USERNAME_MAX]
        redis = handoff().redis
        client = auth.client_address(request.ip, request.headers.get("x-forwarded-for"), trusted_proxies)
        result = await gate.login(redis, username, password, client)
        if result.status == "throttled":
            logger.warning("desk.login.throttled scope=%s client=%s", result.scope, client)
            raise ApiError(429, "too_many_attempts", say("too_many_attempts", minutes=math.ceil(result.retry_after_s / 60)),
                           retry_after_s=result.retry_after_s)
        if result.status == "busy":
            raise ApiError(503, "login_busy", say("login_busy"))
        agent = result.agent
        if agent is None:
            logger.info("desk.login.refused client=%s", client)
            raise ApiError(401, "invalid_credentials", say("invalid_credentials"))
        token = await auth.open_session(redis, agent.username, settings.desk_session_ttl_s)
        await presence.heartbeat(handoff(), agent.username)
        logger.info("desk.login agent=%s role=%s", agent.username, agent.role)
        return _json({"token": token, "agent": agent_json(agent), "expires_in_s": settings.desk_session_ttl_s})

    @app.post("/api/logout")
    @authed
    async def logout(request: Request, agent: auth.Agent) -> HTTPResponse:
        await auth.close_session(handoff().redis, request.ctx.token)
        await presence.go_offline(handoff(), agent.username)
        session = fingerprint(request.ctx.token)
        await app.ctx.hub.close_session(session)
        await publish(handoff(), SESSION_CLOSED, session=session)  # the other desk instances close theirs
        return _json({"status": "logged_out"})

    @app.post("/api/presence")
    @authed
    async def heartbeat(request: Request, agent: auth.Agent) -> HTTPResponse:
        await presence.heartbeat(handoff(), agent.username)
        return _json({"online": True, "ttl_s": policy.heartbeat_ttl_s})

    def canned_for(agent: auth.Agent) -> List[Dict[str, str]]:
        return [{"title": c.title, "text": c.text.replace("{agent}", agent.display_name)} for c in policy.canned_replies]

    async def agent_list() -> List[Dict[str, Any]]:
        states = {s.username: s for s in await presence.agent_states(handoff(), list(agents))}
        return [{"username": u, "display_name": a.display_name, "online": states[u].online, "load": states[u].load,
                 "capacity": states[u].capacity} for u, a in agents.items()]

    @app.get("/api/me")
    @authed
    async def me(request: Request, agent: auth.Agent) -> HTTPResponse:
        return _json({
            "agent": agent_json(agent),
            "canned_replies": canned_for(agent),
            "resolution_codes": [{"code": c, "label": label} for c, label in policy.resolution_codes.items()],
            "reasons": dict(policy.reasons),
            "agents": await agent_list(),
            "opening_hours": opening_hours_text(policy),
            "timezone": settings.shop_timezone,
            "first_response_s": policy.first_response_s,
            "after_sales_resolution_s": policy.after_sales_resolution_s,
            "heartbeat_s": max(5, policy.heartbeat_ttl_s // 3),
        })

    @app.get("/api/canned")
    @authed
    async def canned(request: Request, agent: auth.Agent) -> HTTPResponse:
        return _json({"canned_replies": canned_for(agent)})

    # Queue and conversations ---------------------------------------------------------------------

    @app.get("/api/queue")
    @authed
    async def queue_view(request: Request, agent: auth.Agent) -> HTTPResponse:
        ctx = handoff()
        now = ctx.now()
        waiting = [views.queue_item(r, agent.username, now, policy, names, may_claim(agent, r)) for r in await queue.waiting(ctx)]
        mine_ids = sorted(await ctx.redis.smembers(keys.agent_load(agent.username)))
        mine = views.sort_mine([views.mine_item(r, now) for r in await queue.records(ctx, mine_ids) if r.get("status") == "assigned"])
        overdue = sum(1 for t in await callbacks.list_callbacks(ctx) if t.get("overdue"))
        body = {"now": now, "waiting": waiting, "mine": mine, "agents": await agent_list(), "callbacks_overdue": overdue}
        if agent.supervisor:
            body["in_service"] = await in_service(now)
        return _json(body)

    async def in_service(now: float) -> List[Dict[str, Any]]:
        """Every agent's conversations (for supervisors), oldest claim first."""
        ctx = handoff()
        async with ctx.redis.pipeline(transaction=False) as pipe:
            for username in agents:
                pipe.smembers(keys.agent_load(username))
            loads = await pipe.execute()
        ids = sorted({handoff_id for load in loads for handoff_id in load})
        found = [r for r in await queue.records(ctx, ids) if r.get("status") == "assigned"]
        return views.sort_mine([{**views.mine_item(r, now), "agent": r.get("agent"), "agent_name": names.get(r.get("agent") or "", "")}
                                for r in found])

    async def visible_record(agent: auth.Agent, sender: str) -> Dict[str, Any]:
        """The current handoff record of the conversation ``sender`` (read by :func:`_path_sender`), if the agent
        may see it (404, 403 otherwise)."""
        ctx = handoff()
        handoff_id = await conversation.current_handoff(ctx, sender)
        found = await queue.records(ctx, [handoff_id]) if handoff_id else []
        if not found:
            raise ApiError(404, "not_found", say("not_found_conversation"))
        record = found[0]
        if not may_see(agent, record):
            owner = str(record.get("agent") or "")
            raise ApiError(403, "not_yours", say("not_yours_to_see"), agent=owner, agent_name=names.get(owner, owner))
        return record

    @app.get("/api/conversations/<sender:str>")
    @authed
    async def conversation_view(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        sender = _path_sender(sender)
        ctx = handoff()
        record = await visible_record(agent, sender)
        handoff_id = record["handoff_id"]
        earlier_ids = [h for h in await ctx.redis.lrange(keys.history(sender), -20, -1) if h != handoff_id]
        earlier = await queue.records(ctx, earlier_ids)
        shown = [r for r in earlier if may_see(agent, r)]
        return _json({
            "sender": sender,
            "handoff": views.record_view(record),
            "agent_name": names.get(record.get("agent") or "", ""),
            "summary": record.get("summary") or {},
            "summary_text": record.get("summary_text") or "",
            "summary_pending": views.summary_pending(record),
            "transcript": await conversation.transcript(ctx, record["handoff_id"]),
            "notes": await conversation.notes(ctx, record["handoff_id"]),
            "history": [views.history_item(r, names) for r in shown],
            "history_hidden": len(earlier) - len(shown),
            "can_reply": record.get("status") == "assigned" and record.get("agent") == agent.username,
        })

    @app.post("/api/conversations/<sender:str>/claim")
    @authed
    async def claim(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        sender = _path_sender(sender)
        result = await queue.claim(handoff(), sender, agent.username, agent.display_name, claim_teams(agent))
        if result.status == "wrong_team":
            raise ApiError(403, "wrong_team", **wrong_team(agent, result.detail, policy))
        if result.status != "ok":
            raise _refusal(result.status, result.detail, names)
        logger.info("desk.claimed sender=%s handoff=%s agent=%s", sender, result.handoff_id, agent.username)
        return _json({"status": "assigned", "handoff_id": result.handoff_id, "agent": agent.username, "wait_s": float(result.detail or 0)})

    async def reply(agent: auth.Agent, sender: str, text: str, client_id: Any = None) -> Dict[str, Any]:
        """Send an agent's reply; a retry with the same ``client_id`` is written once."""
        if client_id is not None and not isinstance(client_id, str):
            raise _refusal("invalid_client_id")
        result = await conversation.agent_message(handoff(), _sender(sender), agent.username, agent.display_name, text,
                                                  client_id=client_id or "")
        if not result.ok:
            raise _refusal(result.status, result.detail, names)
        return {"handoff_id": result.handoff_id, **(result.data or {})}

    @app.post("/api/conversations/<sender:str>/messages")
    @authed
    async def send_message(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        body = _body(request)
        return _json(await reply(agent, _path_sender(sender), _text(body), body.get("client_id")), status=201)

    @app.post("/api/conversations/<sender:str>/notes")
    @authed
    async def add_note(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        sender = _path_sender(sender)
        text = _text(_body(request))
        await visible_record(agent, sender)
        result = await conversation.add_note(handoff(), sender, agent.username, agent.display_name, text)
        if not result.ok:
            raise _refusal(result.status)
        return _json(result.data, status=201)

    @app.post("/api/conversations/<sender:str>/transfer")
    @authed
    async def transfer(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        sender = _path_sender(sender)
        body = _body(request)
        target = agents.get(str(body.get("to") or ""))
        if target is None:
            raise ApiError(400, "unknown_agent", say("unknown_agent"))
        result = await queue.transfer(handoff(), sender, agent.username, agent.display_name, target.username, target.display_name)
        if not result.ok:
            raise _refusal(result.status, result.detail, names)
        return _json({"status": "transferred", "agent": target.username, "handoff_id": result.handoff_id})

    @app.post("/api/conversations/<sender:str>/resolve")
    @authed
    async def resolve(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        sender = _path_sender(sender)
        code = _body(request).get("code")
        if not isinstance(code, str) or code not in policy.resolution_codes:
            raise ApiError(400, "invalid_code", say("invalid_code"), allowed=list(policy.resolution_codes))
        result = await queue.resolve(handoff(), sender, agent.username, agent.display_name, code)
        if not result.ok:
            raise _refusal(result.status, result.detail, names)
        logger.info("desk.resolved sender=%s handoff=%s agent=%s code=%s", sender, result.handoff_id, agent.username, code)
        return _json({"status": "resolved", "handoff_id": result.handoff_id, "code": code, **(result.data or {})})

    # Callbacks -----------------------------------------------------------------------------------

    @app.get("/api/callbacks")
    @authed
    async def callback_list(request: Request, agent: auth.Agent) -> HTTPResponse:
        include_done = request.args.get("include_done") in ("1", "true")
        tickets = await callbacks.list_callbacks(handoff(), include_done=include_done)
        return _json({"now": time.time(), "callbacks": [views.callback_item(t, policy) for t in tickets]})

    @app.post("/api/callbacks/<callback_id:str>/complete")
    @authed
    async def callback_complete(request: Request, agent: auth.Agent, callback_id: str) -> HTTPResponse:
        if not keys.CALLBACK_ID.fullmatch(callback_id):
            raise ApiError(400, "invalid_callback", say("invalid_callback"))
        body = _body(request)
        code = body.get("code")
        if not isinstance(code, str) or code not in policy.resolution_codes:
            raise ApiError(400, "invalid_code", say("invalid_code"), allowed=list(policy.resolution_codes))
        note = body.get("note") or ""
        if not isinstance(note, str) or len(note) > MAX_TEXT:
            raise ApiError(400, "invalid_note", say("invalid_note"))
        result = await callbacks.complete_callback(handoff(), callback_id, agent.username, code, note.strip())
        if not result.ok:
            raise _refusal(result.status, result.detail, names)
        return _json({"status": "done", "callback_id": callback_id})

    # The NLU inbox (supervisors) ---------------------------------------------------------------

    from desk import nlu_inbox  # here, not at the top: it uses this module's errors and JSON helpers

    nlu_inbox.register(app, authed)

    from desk import workspace  # the customer overview and the agent's actions in the CRM (same reason)

    workspace.register(app, authed)
    workspace.register_auto_assign(app)

    from desk import reports_api, routing_api, tickets_api  # callback tickets, dedicated agents, supervisors' reports (same reason)

    tickets_api.register(app, authed)
    routing_api.register(app, authed)
    reports_api.register(app, authed)

    # OpenAPI ------------------------------------------------------------------------------------

    document = build_openapi(tuple(policy.resolution_codes))

    @app.get("/openapi.json")
    async def openapi(request: Request) -> HTTPResponse:
        return _json(document)

    # Websocket ------------------------------------------------------------------------------------

    @app.websocket("/api/ws")
    async def live(request: Request, ws: Any) -> None:
        token = ""
        try:
            first = await ws.recv(timeout=WS_AUTH_TIMEOUT_S)
            data = json.loads(first) if first else {}
            token = str(data.get("token") or "") if isinstance(data, dict) and data.get("type") == "auth" else ""
            username = await auth.session_agent(handoff().redis, token) if token else None
        except (ValueError, AttributeError):
            username = None
        agent = agents.get(username or "")
        if agent is None:
            await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": say("unauthorized")}, ensure_ascii=False))
            await ws.close(code=CLOSE_SESSION_ENDED, reason="unauthorized")
            return
        await presence.heartbeat(handoff(), agent.username)
        app.ctx.hub.add(ws, agent, token)
        await ws.send(json.dumps({"type": "hello", "agent": agent.username, "role": agent.role}))
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while True:
                raw = await ws.recv(timeout=max(0.1, checked + ws_recheck_s - loop.time()))
                if raw is not None or loop.time() - checked >= ws_recheck_s:
                    if not await session_still_open(ws, agent, token):
                        return
                    checked = loop.time()
                if raw is not None:
                    await handle_socket_message(ws, agent, raw)
        finally:
            app.ctx.hub.remove(ws)

    async def session_still_open(ws: Any, agent: auth.Agent, token: str) -> bool:
        """Check a socket's session again; close the socket when it is gone, expired or cannot be checked."""
        try:
            if await auth.session_agent(handoff().redis, token) == agent.username:
                return True
            code, reason, notice = CLOSE_SESSION_ENDED, "session_expired", SESSION_ENDED
        except REDIS_FAILURES:
            code, reason = 1011, "unavailable"
            notice = json.dumps({"type": "error", "code": "unavailable", "message": say("unavailable_live")}, ensure_ascii=False)
        app.ctx.hub.remove(ws)
        logger.info("desk.ws.closed agent=%s reason=%s", agent.username, reason)
        await ws.send(notice)
        await ws.close(code=code, reason=reason)
        return False

    async def handle_socket_message(ws: Any, agent: auth.Agent, raw: Any) -> None:
        try:
            message = json.loads(raw)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            await ws.send(json.dumps({"type": "error", "code": "invalid_json"}))
            return
        kind = message.get("type")
        request_id = message.get("request_id")
        try:
            if kind == "heartbeat":
                await presence.heartbeat(handoff(), agent.username)
                await ws.send(json.dumps({"type": "heartbeat_ok"}))
            elif kind == "reply":
                sender = str(message.get("sender") or "")
                result = await reply(agent, sender, _text(message), message.get("client_id"))
                await ws.send(json.dumps({"type": "reply_result", "request_id": request_id, "ok": True, **result}, ensure_ascii=False))
            else:
                await ws.send(json.dumps({"type": "error", "code": "unknown_type", "request_id": request_id}))
        except ApiError as error:
            await ws.send(json.dumps({"type": "reply_result", "request_id": request_id, "ok": False,
                                      "error": {"code": error.code, "message": error.message}}, ensure_ascii=False))
        except REDIS_FAILURES:
            await ws.send(json.dumps({"type": "reply_result", "request_id": request_id, "ok": False,
                                      "error": {"code": "unavailable", "message": say("unavailable_live")}}, ensure_ascii=False))

    return app
