"""The OpenAPI 3.0 document of the agent desk, served at ``/openapi.json``.

Written by hand next to the routes of :mod:`desk.app` (``desk/tests/test_openapi.py`` checks that
every route is described and nothing else), so the API can be fuzzed with schemathesis.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

Schema = Dict[str, Any]

SENDER_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
CALLBACK_PATTERN = r"^c[0-9a-f]{24}$"
INBOX_ITEM_PATTERN = r"^[0-9a-f]{20}$"
DEAD_LETTER_PATTERN = r"^(web|wechat|app):[0-9]{1,20}-[0-9]{1,20}$"
LIMIT_PATTERN = r"^(?:[1-9][0-9]?|[1-4][0-9]{2}|500)$"
"""1 to 500, as the list routes read ``limit``."""
DAYS_PATTERN = r"^(?:[1-9]|[1-8][0-9]|90)$"
"""1 to 90, as ``/api/metrics`` reads ``days``."""


def ref(name: str) -> Schema:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: Tuple[str, ...] = (), extra: bool = True, **properties: Schema) -> Schema:
    """An object schema with the given properties."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = list(required)
    return schema


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
TEXT: Schema = {"type": "string", "minLength": 1, "maxLength": 2000, "description": "trimmed; at most 2000 characters"}


def array(items: Schema) -> Schema:
    """An array schema."""
    return {"type": "array", "items": items}


ORDER_ID: Schema = {"type": "string", "pattern": r"^[0-9]{12}$"}
REQUEST_ID: Schema = {"type": "string", "pattern": SENDER_PATTERN, "description": "the console's id of the action, the same on a retry"}

SCHEMAS: Dict[str, Schema] = {
    "WorkspaceReturnBody": obj(("order_id", "lines", "reason"), order_id=ORDER_ID,
                               lines=array(obj(("line_id", "quantity"), line_id=INT, quantity=INT)), reason=STR, opened=BOOL,
                               request_id=REQUEST_ID),
    "WorkspaceOrderBody": obj(("order_id",), order_id=ORDER_ID),
    "WorkspaceCallbackBody": obj((), note={"type": "string", "maxLength": 2000}, request_id=REQUEST_ID),
    "Error": obj(("error",), error=obj(
        ("code", "message"),
        code={"type": "string", "description": "machine-readable, e.g. unauthorized, forbidden, not_yours, too_many_attempts"},
        message={"type": "string", "description": "for the agent, in Chinese"},
        agent={"type": "string", "description": "the agent concerned, on some refusals"},
        agent_name=STR,
        allowed=array(STR),
        retry_after_s={"type": "integer", "description": "on 429: seconds until another attempt is counted"},
    )),
    "Agent": obj(("username", "display_name", "role"), username=STR, display_name=STR,
                 role={"type": "string", "enum": ["agent", "supervisor"]}),
    "LoginRequest": obj(("username", "password"), False,
                        username={"type": "string", "minLength": 1, "maxLength": 64},
                        password={"type": "string", "minLength": 1, "maxLength": 256}),
    "LoginResponse": obj(("token", "agent", "expires_in_s"), token=STR, agent=ref("Agent"), expires_in_s=INT),
    "Status": obj(("status",), status=STR),
    "Presence": obj(("online", "ttl_s"), online=BOOL, ttl_s=INT),
    "Canned": obj(("title", "text"), title=STR, text=STR),
    "CannedList": obj(("canned_replies",), canned_replies=array(ref("Canned"))),
    "AgentState": obj(("username", "display_name", "online", "load", "capacity"), username=STR, display_name=STR, online=BOOL,
                      load=INT, capacity=INT),
    "Me": obj(("agent", "canned_replies", "resolution_codes", "agents"), agent=ref("Agent"), canned_replies=array(ref("Canned")),
              resolution_codes=array(obj(("code", "label"), code=STR, label=STR)), reasons=ANY_OBJECT,
              agents=array(ref("AgentState")), opening_hours=STR, timezone=STR, first_response_s=INT,
              after_sales_resolution_s=INT, heartbeat_s=INT),
    "Queue": obj(("now", "waiting", "mine", "agents", "callbacks_overdue"), now=NUM, waiting=array(ANY_OBJECT), mine=array(ANY_OBJECT),
                 agents=array(ref("AgentState")), callbacks_overdue=INT,
                 in_service={"type": "array", "items": ANY_OBJECT, "description": "supervisors only: every agent's conversations"}),
    "Conversation": obj(("sender", "handoff", "transcript", "notes", "history", "can_reply"), sender=STR, handoff=ANY_OBJECT,
                        agent_name=STR, summary=ANY_OBJECT, summary_text=STR, summary_pending=BOOL, transcript=array(ANY_OBJECT),
                        notes=array(ANY_OBJECT), history=array(ANY_OBJECT),
                        history_hidden={"type": "integer", "description": "earlier handoffs other agents handled (not shown)"},
                        can_reply=BOOL),
    "Claimed": obj(("status", "handoff_id", "agent"), status=STR, handoff_id=STR, agent=STR, wait_s=NUM),
    "TextBody": obj(("text",), text=TEXT),
    "ReviewCloseBody": obj(("note",), note=TEXT),
    "DedicatedAgentBody": obj(("agent",), agent=STR),
    "ReplyBody": obj(("text",), text=TEXT, client_id={"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$",
                                                      "description": "the client's id of this reply: a retry with it is written once"}),
    "Sent": obj(("handoff_id",), handoff_id=STR, entry=ANY_OBJECT, cursor=STR),
    "Noted": obj(("note",), note=ANY_OBJECT),
    "TransferBody": obj(("to",), to={"type": "string", "minLength": 1, "description": "the username of an online agent"}),
    "Transferred": obj(("status", "agent", "handoff_id"), status=STR, agent=STR, handoff_id=STR),
    "ResolveBody": obj(("code",), code={"type": "string", "minLength": 1, "description": "a resolution code of the service policy"}),
    "Resolved": obj(("status", "handoff_id", "code"), status=STR, handoff_id=STR, code=STR, handle_s=NUM),
    "Callbacks": obj(("now", "callbacks"), now=NUM, callbacks=array(ANY_OBJECT)),
    "CompleteBody": obj(("code",), code={"type": "string", "minLength": 1, "description": "a resolution code of the service policy"},
                        note={"type": "string", "maxLength": 2000}),
    "Completed": obj(("status", "callback_id"), status=STR, callback_id=STR),
    "Metrics": {"type": "object", "additionalProperties": True,
                "properties": {"push_dead_letters": {"type": "integer", "description": "dead letters the channels keep"}}},
    "DeadLetter": obj(("id", "channel", "sender", "reason", "attempts", "first_undelivered", "at"),
                      id={"type": "string", "pattern": DEAD_LETTER_PATTERN, "description": "channel:stream entry id"},
                      channel={"type": "string", "enum": ["web", "wechat", "app"]}, sender=STR,
                      reason={"type": "string", "description": "why the last attempt failed: http_500, redirect, forbidden_address, "
                                                               "timeout, origin_not_allowed ..."},
                      attempts=INT,
                      first_undelivered={"type": "string", "description": "outbox entry id of the first message not delivered; "
                                                                          "it is still in the outbox"},
                      at={"type": "number", "description": "when delivery was given up, Unix time"}),
    "DeadLetters": obj(("dead_letters", "count"), dead_letters=array(ref("DeadLetter")),
                       count={"type": "integer", "description": "every dead letter kept, not only those listed"}),
    "DeadLetterRetried": obj(("status", "id", "sender"), status={"type": "string", "enum": ["requeued"]}, id=STR, sender=STR),
    "InboxItem": obj(("id", "text", "intent", "confidence", "reasons", "at", "label"),
                     id={"type": "string", "pattern": INBOX_ITEM_PATTERN}, text={"type": "string", "description": "masked"},
                     intent={"type": "string", "description": "what the NLU predicted (nlu_fallback: nothing)"}, intent_label=STR,
                     confidence=NUM, ranking=array(obj(("name", "confidence"), name=STR, confidence=NUM, label=STR)), entities=array(STR),
                     reasons=array({"type": "string", "enum": ["fallback", "low_confidence", "correction", "handoff_after_miss"]}),
                     reason_labels=array(STR), at={"type": "number", "description": "when the shopper wrote it, Unix time"},
                     channel=STR, label={"type": "string", "description": "the supervisor's intent; empty: not labelled"},
                     label_name=STR, labelled_by=STR, labelled_at={"type": "number", "nullable": True},
                     expires_in_s={"type": "integer", "description": "until the retention removes it"}),
    "Inbox": obj(("items", "total", "labelled", "intents", "retention_days"), items=array(ref("InboxItem")), total=INT, labelled=INT,
                 intents=array(obj(("name", "label"), name=STR, label=STR)), retention_days=INT, confidence_threshold=NUM),
    "LabelBody": obj(("intent",), intent={"type": "string", "minLength": 1, "maxLength": 100,
                                          "description": "an intent of the domain, or a retrieval sub-intent such as faq/invoice"}),
    "Labelled": obj(("status", "item"), status={"type": "string", "enum": ["labelled", "unchanged"]}, item=ref("InboxItem")),
    "Health": obj(("status", "redis"), status=STR, redis=STR, intake_processed=INT),
}

ERRORS = {
    "400": "malformed request (invalid_json, invalid_text, invalid_sender, invalid_code...)",
    "401": "no valid session (unauthorized)",
    "403": "not this agent's conversation (not_yours) or supervisors only (forbidden)",
    "404": "no such conversation, ticket, dead letter or route (not_found)",
    "409": "the state does not allow it (already_claimed, offered_to_other, at_capacity, offline, done...)",
    "413": "text or body too large",
    "426": "not a websocket handshake (bad_request)",
    "429": "too many login attempts (too_many_attempts; see Retry-After)",
    "503": "Redis unavailable (unavailable) or no turn to check a password (login_busy)",
}


def _error(code: str) -> Schema:
    return {"description": ERRORS[code], "content": {"application/json": {"schema": ref("Error")}}}


def _ok(status: str, schema: Schema, description: str = "") -> Tuple[str, Schema]:
    return status, {"description": description or "done", "content": {"application/json": {"schema": schema}}}


def _param(name: str, pattern: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string", "pattern": pattern}}


SENDER = _param("sender", SENDER_PATTERN, "the conversation id")
CALLBACK = _param("callback_id", CALLBACK_PATTERN, "the callback ticket id")
URGE_TICKET = _param("ticket_id", r"^u[0-9a-f]{24}$", "the carrier-urge ticket id")
INBOX_ITEM = _param("item_id", INBOX_ITEM_PATTERN, "the inbox item's id")
DEAD_LETTER = _param("dead_letter_id", DEAD_LETTER_PATTERN, "the dead letter's id")
CUSTOMER = _param("customer_id", r"^C[0-9]{6}$", "the CRM's customer id")


def op(summary: str, ok: Tuple[str, Schema], errors: str = "", body: Optional[str] = None, params: Optional[List[Schema]] = None,
       public: bool = False, tag: str = "desk") -> Schema:
    """One operation: its success response, the error statuses it may answer, body and parameters."""
    responses: Dict[str, Schema] = {ok[0]: ok[1]}
    statuses = set(errors.split()) | ({"400", "503"} if body else {"503"}) | (set() if public else {"401"})
    for status in sorted(statuses):
        responses[status] = _error(status)
    operation: Schema = {"summary": summary, "tags": [tag], "responses": responses}
    if not public:
        operation["security"] = [{"bearer": []}]
    else:
        operation["security"] = []
    if body:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(body)}}}
    if params:
        operation["parameters"] = params
    return operation


def _page(summary: str) -> Schema:
    return {"summary": summary, "tags": ["pages"], "security": [],
            "responses": {"200": {"description": "the page", "content": {"text/html": {"schema": STR}}}}}


def build_openapi(resolution_codes: Sequence[str] = ()) -> Schema:
    """The OpenAPI 3.0 document of every route of the desk.

    Args:
        resolution_codes: the service policy's resolution codes, the only ``code`` a resolution or a
            completed callback takes (without them the document says a non-empty string).
    """
    schemas = copy.deepcopy(SCHEMAS)
    if resolution_codes:
        for body in ("ResolveBody", "CompleteBody"):
            schemas[body]["properties"]["code"]["enum"] = list(resolution_codes)
    conversation = "/api/conversations/{sender}"
    paths: Dict[str, Dict[str, Schema]] = {
        "/": {"get": _page("the agents' console")},
        "/charts": {"get": _page("the supervisors' charts page (its figures come from /api/metrics, supervisors only)")},
        "/metrics": {"get": {
            "summary": "Prometheus gauges of the handoff queue, tickets and dead letters (METRICS_TOKEN as a Bearer token; "
                       "without one, loopback clients only)", "tags": ["service"], "security": [],
            "responses": {"200": {"description": "Prometheus text format 0.0.4", "content": {"text/plain": {"schema": STR}}},
                          "401": {"description": "METRICS_TOKEN is set and the request does not carry it"},
                          "403": {"description": "METRICS_TOKEN is not set and the client is not on loopback"}}}},
        "/favicon.ico": {"get": {"summary": "no icon", "tags": ["pages"], "security": [], "responses": {"204": {"description": "empty"}}}},
        "/static/{name}": {"get": {
            "summary": "the console's scripts and styles", "tags": ["pages"], "security": [],
            "parameters": [_param("name", r"^[A-Za-z0-9_.-]+$", "a file of desk/static")],
            "responses": {"200": {"description": "the file", "content": {"text/javascript": {"schema": STR}, "text/css": {"schema": STR}}},
                          "404": _error("404")}}},
        "/health": {"get": op("health (checks Redis)", _ok("200", ref("Health")), public=True, tag="service")},
        "/openapi.json": {"get": {"summary": "this document", "tags": ["service"], "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {"schema": ANY_OBJECT}}}}}},
        "/api/login": {"post": op(
            "log in: attempts are counted before the password is checked, per (username, client address) 5 per 5 minutes, "
            "per address 20 per 5 minutes, per username 100 per 15 minutes; a success clears its (username, address) count",
            _ok("200", ref("LoginResponse"), "the session"), "401 413 429", body="LoginRequest", public=True)},
        "/api/logout": {"post": op("end the session; its websockets are closed", _ok("200", ref("Status")))},
        "/api/presence": {"post": op("heartbeat", _ok("200", ref("Presence")))},
        "/api/me": {"get": op("the agent and the desk's settings", _ok("200", ref("Me")))},
        "/api/canned": {"get": op("canned replies", _ok("200", ref("CannedList")))},
        "/api/queue": {"get": op("waiting conversations, the agent's own (a supervisor's: everyone's), agents online",
                                 _ok("200", ref("Queue")))},
        conversation: {"get": op(
            "a conversation: waiting ones for every agent; taken or resolved ones for their agent and supervisors",
            _ok("200", ref("Conversation")), "400 403 404", params=[SENDER])},
        f"{conversation}/claim": {"post": op(
            "take a waiting conversation (exactly one agent wins); only agents of its team (or the agent it is offered to) and "
            "supervisors: 403 wrong_team with the conversation's team and the agent's", _ok("200", ref("Claimed")),
            "400 403 404 409", params=[SENDER])},
        f"{conversation}/messages": {"post": op("reply to the shopper", _ok("201", ref("Sent")), "400 403 404 409 413",
                                                body="ReplyBody", params=[SENDER])},
        f"{conversation}/notes": {"post": op("internal note", _ok("201", ref("Noted")), "403 404 409 413", body="TextBody",
                                             params=[SENDER])},
        f"{conversation}/transfer": {"post": op("hand over to another online agent", _ok("200", ref("Transferred")), "403 404 409",
                                                body="TransferBody", params=[SENDER])},
        f"{conversation}/resolve": {"post": op("end the handoff; the bot asks for a rating", _ok("200", ref("Resolved")),
                                               "403 404 409", body="ResolveBody", params=[SENDER])},
        "/api/callbacks": {"get": op("callback tickets by due time", _ok("200", ref("Callbacks")), params=[
            {"name": "include_done", "in": "query", "required": False, "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}])},
        "/api/callbacks/{callback_id}": {"get": op("a callback ticket and the exchange in its conversation once an agent answered it",
                                                   _ok("200", ANY_OBJECT), "400 404", params=[CALLBACK])},
        "/api/callbacks/{callback_id}/messages": {"post": op(
            "answer a callback ticket in the shopper's conversation (every channel it lives on); the first message opens a live "
            "conversation held by the agent", _ok("201", ANY_OBJECT), "400 403 404 409 413", body="ReplyBody", params=[CALLBACK])},
        "/api/reviews": {"get": op("supervisor review items (a rating of 1-2, a missed first-response target, a complaint about an agent) "
                                   "by due time, overdue ones flagged (supervisors only)",
                                   _ok("200", ANY_OBJECT), "403", params=[
            {"name": "include_closed", "in": "query", "required": False, "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}])},
        "/api/reviews/{review_id}/close": {"post": op("close a review item with a note (supervisors only)", _ok("200", ANY_OBJECT),
                                                      "400 403 404 409 413", body="ReviewCloseBody",
                                                      params=[_param("review_id", r"^r[0-9a-f]{24}$", "a review item")])},
        "/api/tickets/overdue": {"get": op("open tickets past their due time, by kind (callbacks, reviews, carrier_urges)",
                                           _ok("200", ANY_OBJECT))},
        "/api/carrier-urges": {"get": op("carrier-urge tickets not yet settled by due time, overdue ones flagged", _ok("200", ANY_OBJECT),
                                         params=[{"name": "include_done", "in": "query", "required": False,
                                                  "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}])},
        "/api/carrier-urges/{ticket_id}": {"get": op("one carrier-urge ticket", _ok("200", ANY_OBJECT), "400 404", params=[URGE_TICKET])},
        "/api/carrier-urges/{ticket_id}/answer": {"post": op(
            "an agent's answer to a carrier-urge ticket, sent to the shopper's conversation; settles the ticket",
            _ok("200", ANY_OBJECT), "400 404 409 413", body="ReplyBody", params=[URGE_TICKET])},
        "/api/callbacks/{callback_id}/complete": {"post": op("close a callback ticket", _ok("200", ref("Completed")), "403 404 409",
                                                             body="CompleteBody", params=[CALLBACK])},
        "/api/metrics": {"get": op("the metrics page's figures (supervisors only)", _ok("200", ref("Metrics")), "400 403", params=[
            {"name": "days", "in": "query", "required": False, "schema": {"type": "string", "pattern": DAYS_PATTERN, "default": "7"},
             "description": "1 to 90"}])},
        "/api/push/dead-letters": {"get": op(
            "pushed messages a channel gave up on after PUSH_MAX_ATTEMPTS, newest first (supervisors only); the messages "
            "stay in the outbox", _ok("200", ref("DeadLetters")), "400 403", params=[
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": LIMIT_PATTERN, "default": "100"}, "description": "1 to 500"}])},
        "/api/push/dead-letters/{dead_letter_id}/retry": {"post": op(
            "announce the conversation again so its channel delivers what it has not (supervisors only); the dead letter "
            "is removed", _ok("200", ref("DeadLetterRetried")), "400 403 404", params=[DEAD_LETTER])},
        "/api/nlu/inbox": {"get": op(
            "messages the bot did not understand, newest first, masked, with their parse, why kept and label (supervisors only)",
            _ok("200", ref("Inbox")), "400 403", params=[
                {"name": "status", "in": "query", "required": False,
                 "schema": {"type": "string", "enum": ["all", "unlabelled", "labelled"], "default": "all"}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": LIMIT_PATTERN, "default": "100"}, "description": "1 to 500"}])},
        "/api/nlu/inbox/{item_id}/label": {"post": op(
            "label a message with its right intent (supervisors only; the same label again changes nothing); "
            "make review-export writes the labelled ones as training data",
            _ok("200", ref("Labelled")), "400 403 404 413", body="LabelBody", params=[INBOX_ITEM])},
        "/api/customers/{customer_id}/overview": {"get": op(
            "the agent workspace: a customer's tier, points, orders with shipment and what the policy allows, returns, earlier "
            "conversations on every channel, masked as the role allows (an agent: customers of conversations they hold)",
            _ok("200", ANY_OBJECT), "400 403 404", params=[CUSTOMER])},
        "/api/customers/{customer_id}/dedicated-agent": {
            "get": op("a customer's dedicated agent (一对一专属客服) and whether they are online, null when none yet",
                      _ok("200", ANY_OBJECT), "400", params=[CUSTOMER]),
            "put": op("make an agent the customer's dedicated agent: their next handoff is offered to that agent (supervisors only)",
                      _ok("200", ANY_OBJECT), "403", body="DedicatedAgentBody", params=[CUSTOMER]),
            "delete": op("remove a customer's dedicated agent: the next agent who serves them becomes it (supervisors only)",
                         _ok("200", ANY_OBJECT), "400 403", params=[CUSTOMER])},
        f"{conversation}/actions/return": {"post": op(
            "start a return the return policy allows, written to the CRM with an idempotency key and told to the shopper",
            _ok("201", ANY_OBJECT), "403 404 409", body="WorkspaceReturnBody", params=[SENDER])},
        f"{conversation}/actions/late-compensation": {"post": op(
            "grant the late-delivery compensation the delivery policy allows (once per order)", _ok("201", ANY_OBJECT),
            "403 404 409", body="WorkspaceOrderBody", params=[SENDER])},
        f"{conversation}/actions/resend-tracking": {"post": op(
            "send the shopper the order's latest tracking", _ok("201", ANY_OBJECT), "403 404 409", body="WorkspaceOrderBody",
            params=[SENDER])},
        f"{conversation}/actions/callback": {"post": op(
            "book a callback in the first window of the service policy with room (409 when none within three weeks)",
            _ok("201", ANY_OBJECT), "403 404 409", body="WorkspaceCallbackBody", params=[SENDER])},
        "/api/ws": {"get": {
            "summary": "websocket of live events: first message {\"type\":\"auth\",\"token\"}; the session is checked again "
                       "every 15 s and on each message, and the socket closed with code 4401 once it is gone or expired",
            "tags": ["desk"], "security": [],
            "responses": {"101": {"description": "switching to the websocket protocol"}, "400": _error("400"),
                          "426": _error("426")}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Agent desk API", "version": "1.0.0",
                 "description": "The human agents' desk: login, queue, conversations, callbacks, metrics. "
                                "Errors are {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "token from /api/login"}}},
    }
