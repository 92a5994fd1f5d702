"""The agent workspace: the customer beside the transcript, and what an agent can do for them.

Routes (registered by :func:`desk.app.create_app` through :func:`register`):

- ``GET /api/customers/{customer_id}/overview``: the customer's tier and points, orders with status,
  shipment, its price-protection claims (价保: difference, refund window, when filed, ``overdue``
  once the window ended with the refund still open) and what the policy allows for each (return per
  item, late-delivery compensation, resending the latest tracking), returns and refunds, and
  earlier conversations across channels (the desk's handoff records and masked transcripts), with personal data masked as the role
  allows (``desk/workspace.yml``, rules of :mod:`bot.pii`). Who may see which customer:
  :func:`desk.access.may_see_customer` (403 ``not_your_customer``).
- ``POST /api/conversations/{sender}/actions/return {"order_id", "lines": [{"line_id", "quantity"}],
  "reason", "opened", "request_id"}``
- ``POST /api/conversations/{sender}/actions/late-compensation {"order_id"}``
- ``POST /api/conversations/{sender}/actions/resend-tracking {"order_id"}``
- ``POST /api/conversations/{sender}/actions/callback {"note", "request_id"}``

An action needs the conversation to be held by the acting agent (409 ``not_assigned``, 403
``not_yours``) and a verified customer (409 ``no_customer``). Each is checked by the same policy
functions the bot uses (:mod:`actions.return_policy`, :mod:`actions.delivery_policy`,
:mod:`actions.order_tracking`, :func:`handoff.windows.book_window`: a callback takes the first window with room); returns and
compensations are written to the CRM with an idempotency key (a compensation with the bot's own
key, :func:`actions.delivery_policy.compensation_key`: one grant per order whoever grants it), and
the result reaches the shopper as the agent's message through the agent-reply path, whose client
id is derived from the same key, so a retried action is neither written nor told twice. The CRM
has no resource for a resent tracking message or a callback: those are idempotent through the
reply's client id and the callback ticket's id. Every action also leaves an internal note.

Ids that are not ids are 400, unknown ones 404, a CRM that cannot answer 503 ``crm_unavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Coroutine, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml
from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from actions import formatting
from actions.crm import CRMClient, CRMNotFound, CRMRequestError, CRMUnavailable, Written
from actions.delivery_policy import compensation_for, compensation_key
from actions.delivery_policy import default_policy as delivery_policy
from actions.order_tracking import days_overdue, is_late, items_summary, latest_event_line, status_label
from actions.return_policy import Decision, crm_shipping_payer, decide, explain, needs_package_check, payer_text, quote_refund
from actions.return_policy import default_policy as return_policy
from bot import pii
from bot.settings import PROJECT_ROOT
from crm.vocab import CUSTOMER_ID_RE, ORDER_ID_RE
from desk import auth
from desk.access import may_see_customer
from desk.app import MAX_TEXT, ApiError, _body, _json, _path_sender
from handoff import callbacks, conversation, keys, queue, texts, windows
from handoff.context import REDIS_FAILURES, HandoffContext
from handoff.models import CallbackTicket
from handoff.routing import Candidate, auto_assign

logger = logging.getLogger(__name__)

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]
Json = Dict[str, Any]

DESK_FILE = Path(__file__).with_name("workspace.yml")
RESPONSES_FILE = PROJECT_ROOT / "data" / "responses" / "workspace.yml"
MAX_ORDERS = 20
MAX_RETURNS = 20
MAX_CONVERSATIONS = 20
AUTO_ASSIGN_INTERVAL_S = 1.0
TURNS_SHOWN = 8
"""Transcript lines shown per earlier conversation (the most recent ones)."""


# Texts ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _desk_file() -> Json:
    return yaml.safe_load(DESK_FILE.read_text(encoding="utf-8")) or {}


@lru_cache(maxsize=1)
def _responses() -> Mapping[str, str]:
    raw = (yaml.safe_load(RESPONSES_FILE.read_text(encoding="utf-8")) or {}).get("responses") or {}
    return {name: str(variants[0]["text"]) for name, variants in raw.items()}


def shopper_text(name: str, **values: Any) -> str:
    """A shopper-facing response of ``data/responses/workspace.yml`` (``utter_workspace_<name>``), filled in."""
    return _responses()[f"utter_workspace_{name}"].format(**values)


def desk_text(name: str, **values: Any) -> str:
    """An agent-facing text of ``desk/workspace.yml``, filled in."""
    return str(_desk_file()["texts"][name]).format(**values)


def masking(role: str) -> Mapping[str, str]:
    """What a role sees of a customer's name, phone and address: ``masked`` or ``full``."""
    rules = _desk_file().get("masking") or {}
    return {"name": "masked", "phone": "masked", "address": "masked", **(rules.get(role) or {})}


def refuse(status: int, code: str, **values: Any) -> ApiError:
    """An :class:`ApiError` with the desk text ``code``."""
    return ApiError(status, code, desk_text(code, **values))


# Masking ----------------------------------------------------------------------------------------


def _masked(value: Any, kind: str, rules: Mapping[str, str]) -> str:
    text = str(value or "")
    if not text or (rules.get(kind) == "full" and kind != "phone"):
        return text
    if kind == "name":
        return pii.mask_name(text)
    if kind == "phone":
        return pii.mask_phone(text)
    return pii.mask_text(text)


def customer_view(customer: Mapping[str, Any], rules: Mapping[str, str]) -> Json:
    """The customer's profile with name and phone as the role may see them."""
    return {
        "customer_id": customer.get("customer_id"),
        "name": _masked(customer.get("name"), "name", rules),
        "phone": _masked(customer.get("phone"), "phone", rules),
        "tier": customer.get("tier"),
        "tier_name": customer.get("tier_name"),
        "growth_value": customer.get("growth_value"),
        "points_balance": customer.get("points_balance"),
        "next_tier": customer.get("next_tier"),
    }


# Policy over one order ----------------------------------------------------------------------------


def _reason_decisions(order: Mapping[str, Any], item: Mapping[str, Any], today: date) -> List[Json]:
    """Every return reason with the policy's decision for an item (unopened assumed where that matters)."""
    policy = return_policy()
    out = []
    for reason, label in policy.reason_labels.items():
        decision = decide(order, item, reason, today, policy, opened=False if needs_package_check(item, reason, policy) else None)
        out.append({"reason": reason, "label": label, "eligible": decision.eligible, "rule": decision.rule,
                    "why": explain(decision, policy, today), "needs_unopened": needs_package_check(item, reason, policy)})
    return out


def order_view(order: Mapping[str, Any], today: date, tier: Optional[str], compensated: Optional[Mapping[str, Any]],
               rules: Mapping[str, str], claims: Sequence[Mapping[str, Any]] = ()) -> Json:
    """One order as the workspace shows it, with the actions the policy allows on it."""
    shipment = order.get("shipment") or {}
    events = shipment.get("events") or []
    late = is_late(dict(order), today)
    late_days = days_overdue(dict(order), today)
    compensation = compensation_for(delivery_policy(), late_days, tier) if late else None
    items = []
    for item in order.get("items") or []:
        decisions = _reason_decisions(order, item, today)
        items.append({
            "line_id": item.get("line_id"), "product_name": item.get("product_name"), "category_name": item.get("category_name"),
            "quantity": item.get("quantity"), "returned_quantity": item.get("returned_quantity", 0),
            "paid_fen": item.get("paid_fen"), "paid": formatting.money(int(item.get("paid_fen") or 0)),
            "returnable": any(d["eligible"] for d in decisions), "reasons": decisions,
        })
    return {
        "order_id": order.get("order_id"),
        "status": order.get("status"),
        "status_label": status_label(order),
        "placed_at": order.get("placed_at"),
        "promised_date": order.get("promised_date"),
        "signed_at": order.get("signed_at"),
        "paid": formatting.money(int(order.get("paid_fen") or 0)),
        "payment_method_label": order.get("payment_method_label"),
        "summary": items_summary(dict(order)),
        "receiver": {"name": _masked(order.get("receiver_name"), "name", rules), "phone": _masked(order.get("receiver_phone"), "phone", rules),
                     "address": _masked(order.get("address"), "address", rules)},
        "shipment": {"carrier_name": shipment.get("carrier_name") or shipment.get("carrier") or "",
                     "tracking_number": shipment.get("tracking_number") or "",
                     "latest": latest_event_line(dict(order)) or "", "events": len(events)} if shipment else None,
        "late": late,
        "days_late": late_days,
        "items": items,
        "price_protection": [claim_view(c, today) for c in claims],
        "actions": {
            "return": any(i["returnable"] for i in items),
            "late_compensation": bool(compensation) and compensated is None,
            "late_compensation_points": compensation.points if compensation else 0,
            "compensated_points": int(compensated.get("points") or 0) if compensated else 0,
            "resend_tracking": bool(events),
        },
    }


def return_view(ret: Mapping[str, Any]) -> Json:
    """One return and its refund."""
    items = "、".join(f"{i.get('product_name') or '商品'}×{i.get('quantity')}" for i in ret.get("items") or [])
    return {name: ret.get(name) for name in ("return_id", "order_id", "status", "status_label", "reason_label", "refund_method_label",
                                               "refund_expected_by", "refunded_at", "created_at")} | {
        "items": items, "refund": formatting.money(int(ret.get("refund_fen") or 0))}


OPEN_CLAIM_STATUSES = ("refunding",)
"""Price-protection claim statuses whose refund has not arrived yet (a passed window is overdue)."""


def _crm_date(value: Any) -> Optional[date]:
    try:
        return formatting.parse_date(str(value)) if value else None
    except ValueError:
        return None


def claim_view(claim: Mapping[str, Any], today: date) -> Json:
    """One price-protection claim (价保) of an order: the difference, where it goes, the refund window the
    shopper was promised and when it was filed; ``overdue`` when the window ended and the refund is still open."""
    latest = _crm_date(claim.get("refund_expected_by")) or today
    earliest = min(_crm_date(claim.get("refund_expected_from")) or latest, latest)
    window = (desk_text("claim_window_one_day", latest=formatting.day(latest, today)) if earliest == latest
              else desk_text("claim_window", earliest=formatting.day(earliest, today), latest=formatting.day(latest, today)))
    try:
        filed = formatting.moment(formatting.parse_datetime(str(claim.get("created_at"))))
    except ValueError:
        filed = ""
    refund = formatting.money(claim["refund_fen"] if isinstance(claim.get("refund_fen"), int) else 0)
    overdue_days = (today - latest).days if claim.get("status") in OPEN_CLAIM_STATUSES else 0
    return {
        "claim_id": claim.get("claim_id"), "status": claim.get("status"), "status_label": claim.get("status_label"),
        "refund": refund, "refund_method_label": claim.get("refund_method_label"),
        "refund_expected_from": earliest.isoformat(), "refund_expected_by": latest.isoformat(), "created_at": claim.get("created_at"),
        "window": window, "overdue": overdue_days > 0,
        "overdue_text": desk_text("claim_overdue", days=overdue_days) if overdue_days > 0 else "",
        "text": desk_text("claim_line", claim_id=claim.get("claim_id"), status=claim.get("status_label") or claim.get("status"),
                          refund=refund, method=claim.get("refund_method_label") or "", filed=filed),
    }


# Conversations of a customer --------------------------------------------------------------------


async def customer_conversations(ctx: HandoffContext, customer_id: str, names: Mapping[str, str]) -> List[Json]:
    """The customer's handoffs on every channel, newest first, each with its last masked transcript lines."""
    ids = list(await ctx.redis.lrange(keys.customer_handoffs(customer_id), -MAX_CONVERSATIONS, -1))
    latest = await ctx.redis.get(keys.by_customer(customer_id))
    if latest:  # handoffs from before the customer list existed: the conversation's own history
        ids += [h for h in await ctx.redis.lrange(keys.history(latest), -MAX_CONVERSATIONS, -1) if h not in ids]
    found = [r for r in await queue.records(ctx, ids) if r.get("customer_id") == customer_id]
    found.sort(key=lambda r: float(r.get("enqueued_at") or 0), reverse=True)
    out = []
    for record in found[:MAX_CONVERSATIONS]:
        turns = await conversation.transcript(ctx, record["handoff_id"])
        agent = str(record.get("agent") or "")
        out.append({
            "handoff_id": record["handoff_id"], "sender": record.get("sender"), "channel": record.get("channel") or "",
            "channel_name": conversation.CHANNEL_NAMES.get(str(record.get("channel") or ""), str(record.get("channel") or "")),
            "status": record.get("status"), "enqueued_at": record.get("enqueued_at"), "ended_at": record.get("ended_at"),
            "agent": agent, "agent_name": names.get(agent, agent), "reason_label": record.get("reason_label"),
            "resolution_code": record.get("resolution_code"), "rating": record.get("rating"),
            "summary_text": record.get("summary_text") or "",
            "turns": [{"from": t.get("from"), "text": t.get("text"), "at": t.get("at"), "name": t.get("name", "")} for t in turns[-TURNS_SHOWN:]],
        })
    return out


# Routes -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """The conversation an action is taken in: its handoff record and its verified customer."""

    sender: str
    handoff_id: str
    customer_id: str
    record: Mapping[str, Any]


def _customer_id(raw: str) -> str:
    if not CUSTOMER_ID_RE.match(raw):
        raise refuse(400, "invalid_customer")
    return raw


def _order_id(body: Mapping[str, Any]) -> str:
    value = body.get("order_id")
    if not isinstance(value, str) or not ORDER_ID_RE.match(value):
        raise refuse(400, "invalid_order")
    return value


def _request_id(body: Mapping[str, Any]) -> str:
    value = body.get("request_id") or ""
    if not isinstance(value, str) or (value and not keys.CLIENT_ID.fullmatch(value)):
        raise refuse(400, "invalid_request_id")
    return value


def _lines(body: Mapping[str, Any]) -> List[Tuple[int, int]]:
    raw = body.get("lines")
    if not isinstance(raw, list) or not raw or len(raw) > 50:
        raise refuse(400, "invalid_lines")
    lines: Dict[int, int] = {}
    for entry in raw:
        line, quantity = (entry.get("line_id"), entry.get("quantity")) if isinstance(entry, dict) else (None, None)
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10_000 for v in (line, quantity)) or line in lines:
            raise refuse(400, "invalid_lines")
        lines[int(line)] = int(quantity)  # type: ignore[arg-type]
    return sorted(lines.items())


def action_key(kind: str, *parts: str) -> str:
    """The idempotency key of a workspace action: its kind and what identifies it."""
    return f"desk-{kind}-" + hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:40]


def register(app: Sanic, authed: Callable[[Handler], Handler]) -> None:
    """Add the workspace routes to the desk.

    Args:
        app: the desk; ``app.ctx.handoff`` is its handoff context, ``app.ctx.agents`` its agents,
            ``app.ctx.settings`` its settings (``CRM_URL``, ``CRM_API_KEY``: the CRM it calls).
        authed: the desk's decorator that resolves the session's agent (401 without one).
    """
    crm = CRMClient.from_settings(app.ctx.settings)
    app.ctx.crm = crm
    names: Dict[str, str] = {u: a.display_name for u, a in app.ctx.agents.items()}

    def handoff() -> HandoffContext:
        return app.ctx.handoff  # type: ignore[no-any-return]

    async def close_crm(app: Sanic, loop: Any) -> None:
        await crm.close()

    app.register_listener(close_crm, "after_server_stop")

    @app.exception(CRMUnavailable)
    async def crm_down(request: Request, error: CRMUnavailable) -> HTTPResponse:
        logger.error("desk.crm_unavailable path=%s error=%s", request.path, error)
        return _json({"error": {"code": "crm_unavailable", "message": desk_text("crm_unavailable")}}, status=503)

    async def held_customers(agent: auth.Agent) -> List[str]:
        ctx = handoff()
        ids = sorted(await ctx.redis.smembers(keys.agent_load(agent.username)))
        return [str(r.get("customer_id")) for r in await queue.records(ctx, ids)
                if r.get("status") == "assigned" and r.get("agent") == agent.username and r.get("customer_id")]

    async def customer_or_404(customer_id: str) -> Json:
        try:
            return await crm.get_customer(customer_id)
        except CRMNotFound as error:
            raise refuse(404, "unknown_customer") from error

    @app.get("/api/customers/<customer_id:str>/overview")
    @authed
    async def overview(request: Request, agent: auth.Agent, customer_id: str) -> HTTPResponse:
        customer_id = _customer_id(customer_id)
        if not may_see_customer(agent, customer_id, await held_customers(agent)):
            raise refuse(403, "not_your_customer")
        customer = await customer_or_404(customer_id)
        rules = masking(agent.role)
        today = formatting.today_in_shop()
        orders = await crm.list_orders(customer_id, limit=MAX_ORDERS)
        returns = await crm.list_customer_returns(customer_id, limit=MAX_RETURNS)
        points = await crm.get_points(customer_id)
        granted = {o["order_id"]: await crm.get_late_compensation(o["order_id"]) for o in orders if is_late(o, today)}
        claims = await asyncio.gather(*(crm.list_price_protection(o["order_id"]) for o in orders))
        return _json({
            "customer": customer_view(customer, rules),
            "masking": dict(rules),
            "points": {"balance": points.get("balance", customer.get("points_balance")), "expiring": points.get("expiring") or []},
            "orders": [order_view(o, today, customer.get("tier"), granted.get(o["order_id"]), rules, found)
                       for o, found in zip(orders, claims, strict=True)],
            "returns": [return_view(r) for r in returns],
            "conversations": await customer_conversations(handoff(), customer_id, names),
            "today": today.isoformat(),
        })

    async def held(agent: auth.Agent, sender: str) -> Held:
        """The conversation ``sender`` if the agent holds it now and its shopper is a verified customer."""
        ctx = handoff()
        handoff_id = await conversation.active_handoff(ctx, sender)
        found = await queue.records(ctx, [handoff_id]) if handoff_id else []
        if not found:
            raise ApiError(404, "not_found", desk_text("no_handoff_record"))
        record = found[0]
        if record.get("status") != "assigned":
            raise refuse(409, "not_holding")
        if record.get("agent") != agent.username:
            owner = str(record.get("agent") or "")
            raise ApiError(403, "not_yours", desk_text("not_yours"), agent=owner, agent_name=names.get(owner, owner))
        if not record.get("customer_id"):
            raise refuse(409, "no_customer")
        return Held(sender, str(record["handoff_id"]), str(record["customer_id"]), record)

    async def owned_order(conv: Held, order_id: str) -> Json:
        try:
            order = await crm.get_order(order_id)
        except CRMNotFound as error:
            raise refuse(404, "unknown_order") from error
        if order.get("customer_id") != conv.customer_id:
            raise refuse(403, "not_this_customer")
        return order

    async def tell(agent: auth.Agent, conv: Held, text: str, key: str, note: str) -> Json:
        """Send the result to the shopper as the agent's message (once per key) and note it for agents."""
        result = await conversation.agent_message(handoff(), conv.sender, agent.username, agent.display_name, text, client_id=key[:64])
        if not result.ok:
            raise ApiError(409, result.status, desk_text("not_holding"))
        data = result.data or {}
        if not data.get("duplicate"):
            await conversation.add_note(handoff(), conv.sender, agent.username, agent.display_name, note)
        return {"message": data.get("entry"), "duplicate": bool(data.get("duplicate"))}

    async def order_in(request: Request, agent: auth.Agent, sender: str) -> Tuple[Held, str, Json]:
        """The held conversation and the order of the body's ``order_id`` (its customer's)."""
        order_id = _order_id(_body(request))
        conv = await held(agent, _path_sender(sender))
        return conv, order_id, await owned_order(conv, order_id)

    def crm_refusal(error: CRMRequestError) -> ApiError:
        return refuse(409, "crm_refused", message=error.message or error.code) if error.status < 500 else refuse(503, "crm_unavailable")

    @app.post("/api/conversations/<sender:str>/actions/return")
    @authed
    async def start_return(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        body = _body(request)
        sender = _path_sender(sender)
        order_id, lines, request_id = _order_id(body), _lines(body), _request_id(body)
        policy = return_policy()
        reason = body.get("reason")
        if not isinstance(reason, str) or reason not in policy.reason_labels:
            raise ApiError(400, "invalid_reason", desk_text("invalid_reason"), allowed=list(policy.reason_labels))
        opened = body.get("opened")
        if opened is not None and not isinstance(opened, bool):
            raise refuse(400, "invalid_opened")
        conv = await held(agent, sender)
        order = await owned_order(conv, order_id)
        key = action_key("return", conv.handoff_id, order_id, reason, request_id, *(f"{line}x{qty}" for line, qty in lines))
        done = await handoff().redis.get(keys.workspace_done(key))
        if done:  # a retry of a return made already (its answer was lost): the same return, told once
            made = json.loads(done)
            earlier = await crm.get_return(made["return_id"])
            told = await tell(agent, conv, made["text"], key, made["note"])
            return _json({"status": "existing", "return": return_view(earlier), "idempotency_key": key, **told}, status=200)
        today = formatting.today_in_shop()
        items = {int(i["line_id"]): i for i in order.get("items") or []}
        refused: List[Decision] = []
        for line_id, quantity in lines:
            item = items.get(line_id)
            if item is None or quantity > int(item.get("quantity", 0)) - int(item.get("returned_quantity", 0) or 0):
                decision = decide(order, item, reason, today, policy, opened) if item else None
                if decision is not None and not decision.eligible:
                    refused.append(decision)
                    continue
                raise refuse(400, "invalid_lines")
            decision = decide(order, item, reason, today, policy, opened)
            if not decision.eligible:
                refused.append(decision)
        if refused:
            why = " ".join(explain(d, policy, today) for d in refused)
            raise ApiError(409, "not_returnable", desk_text("not_returnable", why=why), rules=[d.rule for d in refused])
        previous = await crm.list_order_returns(order_id)
        quote = quote_refund(order, lines, reason, today, policy, previous)
        try:
            created = await crm.create_return(order_id, [{"line_id": line, "quantity": qty} for line, qty in lines], reason, key,
                                              quote.total_fen, crm_shipping_payer(quote.payer), quote.refund_expected_by.isoformat())
        except CRMRequestError as error:
            raise crm_refusal(error) from error
        items_text = "、".join(f"{line.product_name}×{line.quantity}" for line in quote.lines)
        text = shopper_text("return_started", return_id=created["return_id"], items=items_text, refund=formatting.money(quote.total_fen),
                            refund_method=order.get("payment_method_label") or "原支付方式", payer=payer_text(quote.payer),
                            pickup_date=formatting.day(quote.pickup_date, today), pickup_window=quote.pickup_window,
                            refund_expected_by=formatting.day(quote.refund_expected_by, today))
        note = desk_text("note_return", return_id=created["return_id"], refund=formatting.money(quote.total_fen))
        made = {"return_id": created["return_id"], "text": text, "note": note}
        await handoff().redis.set(keys.workspace_done(key), json.dumps(made, ensure_ascii=False), ex=handoff().outbox_ttl_s)
        told = await tell(agent, conv, text, key, note)
        logger.info("desk.workspace.return sender=%s order=%s return=%s agent=%s", sender, order_id, created["return_id"], agent.username)
        return _json({"status": "created", "return": return_view(created), "idempotency_key": key, **told}, status=201)

    @app.post("/api/conversations/<sender:str>/actions/late-compensation")
    @authed
    async def late_compensation(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        conv, order_id, order = await order_in(request, agent, sender)
        today = formatting.today_in_shop()
        if not is_late(order, today):
            raise refuse(409, "not_late")
        customer = await customer_or_404(conv.customer_id)
        compensation = compensation_for(delivery_policy(), days_overdue(order, today), customer.get("tier"))
        if compensation is None:
            raise refuse(409, "no_compensation")
        key = compensation_key(order_id)
        try:
            written: Written = await crm.grant_late_compensation(order_id, compensation.points, key)
        except CRMRequestError as error:
            earlier = await crm.get_late_compensation(order_id) if (error.status, error.code) == (409, "conflict") else None
            if earlier is None:
                raise crm_refusal(error) from error
            raise ApiError(409, "already_compensated", desk_text("already_compensated", points=earlier.get("points")), grant=earlier) from error
        rule = f"延误 {compensation.days_late} 天补偿 {compensation.base_points} 积分" + (
            f"，{customer.get('tier_name')}×{compensation.multiplier}" if compensation.multiplier > 1 else "")
        text = shopper_text("compensation_granted", order_id=order_id, days_late=compensation.days_late, points=compensation.points, rule=rule)
        told = await tell(agent, conv, text, "desk-" + key, desk_text("note_compensation", order_id=order_id, points=compensation.points))
        return _json({"status": "granted" if written.created else "existing", "grant": written.record, "points": compensation.points,
                      "idempotency_key": key, **told}, status=201 if written.created else 200)

    @app.post("/api/conversations/<sender:str>/actions/resend-tracking")
    @authed
    async def resend_tracking(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        conv, order_id, order = await order_in(request, agent, sender)
        latest = latest_event_line(order)
        shipment = order.get("shipment") or {}
        if not latest:
            raise refuse(409, "no_tracking")
        newest = max(shipment.get("events") or [], key=lambda e: e["time"])
        key = action_key("tracking", conv.handoff_id, order_id, str(newest.get("time")))
        carrier = shipment.get("carrier_name") or shipment.get("carrier", "")
        text = shopper_text("tracking", order_id=order_id, items=items_summary(order), carrier=carrier,
                            tracking_number=shipment.get("tracking_number", ""), latest=latest,
                            status=status_label(order))
        told = await tell(agent, conv, text, key, desk_text("note_tracking", order_id=order_id))
        return _json({"status": "sent", "idempotency_key": key, **told}, status=201)

    @app.post("/api/conversations/<sender:str>/actions/callback")
    @authed
    async def book_callback(request: Request, agent: auth.Agent, sender: str) -> HTTPResponse:
        body = _body(request)
        sender = _path_sender(sender)
        request_id = _request_id(body)
        note = body.get("note") or ""
        if not isinstance(note, str) or len(note) > MAX_TEXT:
            raise refuse(400, "invalid_note")
        conv = await held(agent, sender)
        ctx = handoff()
        now = ctx.now()
        key = action_key("callback", conv.handoff_id, request_id)
        callback_id = "c" + key[-24:]
        window = await windows.book_window(ctx, callback_id, ctx.local(now))  # the first window with room (the held one when repeated)
        if window is None:  # no window opens, or every one is full for three weeks
            raise refuse(409, "no_callback_window")
        record = conv.record
        ticket = CallbackTicket(
            callback_id=callback_id, sender=sender, customer_id=conv.customer_id, phone_masked=callbacks.phone_of(record.get("summary")),
            tier=record.get("tier") or None, reason=str(record.get("reason") or "requested"), summary=record.get("summary") or {},
            summary_text=desk_text("callback_summary", agent=agent.display_name, note=pii.mask_text(note.strip()),
                                   summary=str(record.get("summary_text") or "")),
            window_start=window[0].timestamp(), window_end=window[1].timestamp(),
            created_at=now, after_sales=bool(record.get("after_sales")), source_handoff=conv.handoff_id,
        )
        created = await callbacks.create_callback(ctx, ticket)
        when = texts.window(*window, ctx.local(now))
        told = await tell(agent, conv, shopper_text("callback_booked", window=when), key,
                          desk_text("note_callback", callback_id=ticket.callback_id, window=when, note=pii.mask_text(note.strip())))
        return _json({"status": "booked" if created else "existing", "callback_id": ticket.callback_id, "window": when,
                      "window_start": ticket.window_start, "window_end": ticket.window_end, "idempotency_key": key, **told},
                     status=201 if created else 200)



def register_auto_assign(app: Sanic) -> None:
    """Run auto-assignment (:mod:`handoff.routing`) every second while the policy switches it on."""
    candidates = [Candidate(a.username, a.display_name, a.teams) for a in app.ctx.agents.values() if not a.supervisor]

    async def loop() -> None:
        while not app.ctx.stop.is_set():
            if app.ctx.handoff.policy.auto_assign:
                try:
                    await auto_assign(app.ctx.handoff, candidates)
                except REDIS_FAILURES as error:
                    logger.warning("desk.auto_assign.failed error=%s", type(error).__name__)
            try:
                await asyncio.wait_for(app.ctx.stop.wait(), timeout=AUTO_ASSIGN_INTERVAL_S)
            except asyncio.TimeoutError:
                pass

    async def start(app: Sanic, _loop: Any) -> None:
        app.ctx.auto_assign = asyncio.get_running_loop().create_task(loop())

    async def stop(app: Sanic, _loop: Any) -> None:
        task = getattr(app.ctx, "auto_assign", None)
        if task is not None:
            task.cancel()

    app.register_listener(start, "after_server_start")
    app.register_listener(stop, "before_server_stop")
