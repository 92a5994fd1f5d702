"""Carrier-urge tickets: the bot's promise that the carrier (or the warehouse) answers an urge (催件) by
a concrete time, kept until the shopper has the answer.

When the bot tells a shopper "顺丰速运将在今天 16:30 前回复最新进度，回复会直接发到这个对话里告诉您"
(:func:`actions.orders.utter_order`, the words ``urge_promised_*`` of ``handoff/texts.yml``) it
records a ticket of kind ``carrier_urge`` (:func:`promise`): the conversation, the order, the CRM's
urge id and its ``answer_due_at``. Every desk instance runs :func:`poll_due` (:func:`desk.live.carrier_urge_worker`):
each ticket whose poll time has come is claimed in one Lua step (a lease with a token), so two
desks never work on one ticket at once, and the CRM's urge is read (``GET /api/orders/{id}/urges``,
the ``answer`` of :mod:`crm.carrier`):

- answered: the carrier's new scan or reason, with its time, reaches the shopper through the outbox
  (:mod:`bot.outbox`, pushed by :class:`bot.push.PushDelivery` like agent replies and callback
  notices) and the ticket is done;
- not answered and the due time has passed: the shopper gets an apology and the next step (an agent
  follows up), and the ticket becomes *overdue*: it stays open, counted in
  :func:`handoff.tickets.overdue_counts` (``GET /api/tickets/overdue``, ``overdue_tickets`` in the
  metrics) until an agent answers it (:func:`answer`, ``POST /api/carrier-urges/{id}/answer``);
- otherwise the ticket is polled again every :data:`POLL_INTERVAL_S` and at the due time.

The message and the ticket's new state are written in the same Lua step, only by the holder of the
lease, so a shopper is told once. A CRM that cannot answer is asked again after :data:`CRM_RETRY_S`;
once the due time is :data:`CRM_GRACE_S` behind, the promise counts as broken and the apology goes out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Mapping, Optional, Protocol, Tuple, Type

from bot import pii, texts
from bot.outbox import lua_notice, outbox_key
from handoff import keys
from handoff.context import REDIS_FAILURES, HandoffContext
from handoff.conversation import OpResult, outbox_message, publish, script
from handoff.texts import clock

logger = logging.getLogger(__name__)

KIND = "carrier_urge"
WAITING = keys.CARRIER_URGES_WAITING
OPEN = keys.CARRIER_URGES_OPEN
DONE = keys.CARRIER_URGES_DONE
TICKET_ID = re.compile(r"u[0-9a-f]{24}")
RETENTION_S = 90 * 86400
POLL_INTERVAL_S = 600.0
"""How often a waiting ticket asks the CRM before its due time."""
CLAIM_LEASE_S = 60.0
"""How long one desk holds a ticket it is working on; another may take it over afterwards."""
CRM_RETRY_S = 60.0
CRM_GRACE_S = 300.0
BATCH = 50

CREATE = """
-- KEYS: ticket, waiting, open. ARGV: id, first poll, due, fields (flat JSON). One ticket per urge and conversation.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[4])))
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"""

CLAIM = """
-- KEYS: ticket, waiting. ARGV: id, now, lease until, token. Take a due ticket for one lease.
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[1], 'status') ~= 'waiting' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], 'claim', ARGV[4])
return 1
"""

RESCHEDULE = """
-- KEYS: ticket, waiting. ARGV: id, token, next poll, now.
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'status') ~= 'waiting' then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], 'claim', '', 'polled_at', ARGV[4])
return 1
"""

SETTLE = (
    """
-- KEYS: ticket, waiting, open, done, outbox.
-- ARGV: id, token, status (answered | overdue), now, outbox message, maxlen, outbox ttl, fields (flat JSON), retention
if redis.call('HGET', KEYS[1], 'status') ~= 'waiting' then return 'done' end
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[2] then return 'lost' end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'claim', '', 'delivered_at', ARGV[4], unpack(cjson.decode(ARGV[8])))
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[3] == 'answered' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[9]))
  redis.call('EXPIRE', KEYS[1], ARGV[9])
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', tonumber(ARGV[6]), '*', 'message', ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[7])
"""
    + lua_notice("KEYS[5]")
    + """
return 'ok'
"""
)

ANSWER = (
    """
-- KEYS: ticket, waiting, open, done, outbox. ARGV: id, agent, now, outbox message, masked text, maxlen, outbox ttl, retention
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'not_found', ''} end
if status ~= 'waiting' and status ~= 'overdue' then return {'done', redis.call('HGET', KEYS[1], 'closed_by') or ''} end
redis.call('HSET', KEYS[1], 'status', 'closed', 'claim', '', 'closed_by', ARGV[2], 'closed_at', ARGV[3], 'agent_answer', ARGV[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[8]))
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('XADD', KEYS[5], 'MAXLEN', '~', tonumber(ARGV[6]), '*', 'message', ARGV[4])
redis.call('EXPIRE', KEYS[5], ARGV[7])
"""
    + lua_notice("KEYS[5]")
    + """
return {'ok', ''}
"""
)


class UrgeReader(Protocol):
    """What the worker needs of the CRM client (:class:`actions.crm.CRMClient`)."""

    async def list_order_urges(self, order_id: str, limit: int = 20, offset: int = 0) -> List[Dict[str, Any]]: ...


ticket_key = keys.carrier_urge


def ticket_id_for(urge: Mapping[str, Any], sender: str) -> str:
    """The ticket of an urge told in a conversation (the same each time it is told there)."""
    identity = f"{KIND}:{urge.get('order_id')}:{urge.get('urge_id')}:{urge.get('created_at')}:{sender}"
    return "u" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def _epoch(value: Any) -> Optional[float]:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except (TypeError, ValueError):
        return None


def _who(urge: Mapping[str, Any]) -> str:
    """Whom the urge went to, as the shopper reads it: the carrier's name, else the CRM's label (仓库, 承运商)."""
    carrier = urge.get("carrier_name") if urge.get("target") == "carrier" else None
    return str(carrier or urge.get("target_label") or "")


async def promise(ctx: HandoffContext, urge: Mapping[str, Any], sender: str, customer_id: Optional[str] = None) -> Optional[str]:
    """Record the promise of an urge's answer told in a conversation (once per urge and conversation).

    Args:
        urge: the urge as the CRM returns it (``urge_id``, ``order_id``, ``target``, ``carrier_name``,
            ``created_at``, ``answer_due_at``).
        sender: the conversation the shopper was told in.
        customer_id: the verified customer, if any.

    Returns:
        The ticket id when this call recorded it, None when it was recorded before (or the urge
        has no usable due time).
    """
    due = _epoch(urge.get("answer_due_at"))
    if due is None or not isinstance(urge.get("urge_id"), int) or not str(urge.get("order_id") or "").isdigit():
        logger.warning("carrier_urge.unusable urge=%r", {k: urge.get(k) for k in ("urge_id", "order_id", "answer_due_at")})
        return None
    now = ctx.now()
    ticket_id = ticket_id_for(urge, sender)
    fields = {
        "ticket_id": ticket_id, "kind": KIND, "sender": sender, "customer_id": customer_id or "",
        "order_id": str(urge["order_id"]), "urge_id": str(urge["urge_id"]), "target": str(urge.get("target") or "carrier"),
        "who": _who(urge), "tracking_number": str(urge.get("tracking_number") or ""), "created_at": repr(now),
        "due_at": repr(due), "status": "waiting", "claim": "",
    }
    flat = [part for pair in fields.items() for part in pair]
    first_poll = min(due, now + POLL_INTERVAL_S)
    created = int(await script(ctx.redis, CREATE)(keys=[ticket_key(ticket_id), WAITING, OPEN],
                                                  args=[ticket_id, repr(first_poll), repr(due), json.dumps(flat, ensure_ascii=False)]))
    if not created:
        return None
    await publish(ctx, KIND, ticket_id=ticket_id, order_id=fields["order_id"])
    return ticket_id


def decode(raw: Mapping[str, str], now: float) -> Dict[str, Any]:
    """A ticket hash with times decoded and ``overdue`` / ``due_in_s`` computed."""
    out: Dict[str, Any] = {k: v for k, v in raw.items() if k != "claim"}
    for name in ("created_at", "due_at", "delivered_at", "answered_at", "closed_at"):
        try:
            out[name] = float(raw[name]) if raw.get(name) else None
        except ValueError:
            out[name] = None
    due = out.get("due_at") or 0.0
    out["overdue"] = raw.get("status") in ("waiting", "overdue") and now > due
    out["due_in_s"] = round(due - now, 1)
    return out


async def list_tickets(ctx: HandoffContext, include_done: bool = False, limit: int = 200) -> List[Dict[str, Any]]:
    """Unsettled tickets by due time (earliest first), then, if asked, the most recently settled ones."""
    ids = list(await ctx.redis.zrange(OPEN, 0, limit - 1))
    if include_done:
        ids += list(await ctx.redis.zrevrange(DONE, 0, limit - 1))
    if not ids:
        return []
    async with ctx.redis.pipeline(transaction=False) as pipe:
        for ticket_id in ids:
            pipe.hgetall(ticket_key(ticket_id))
        raw = await pipe.execute()
    now = ctx.now()
    return [decode(r, now) for r in raw if r]


async def get_ticket(ctx: HandoffContext, ticket_id: str) -> Optional[Dict[str, Any]]:
    """One decoded ticket, None when unknown."""
    raw = await ctx.redis.hgetall(ticket_key(ticket_id))
    return decode(raw, ctx.now()) if raw else None


async def overdue_count(ctx: HandoffContext) -> int:
    """Unsettled tickets past their due time."""
    return int(await ctx.redis.zcount(OPEN, "-inf", f"({ctx.now()}"))


# ------------------------------------------------------------------------------- the worker
@dataclass
class PollResult:
    """What one pass of :func:`poll_due` did, by outcome (answered, overdue, waiting, retry, skipped)."""

    counts: Dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1

    @property
    def delivered(self) -> int:
        """Messages sent to shoppers."""
        return self.counts.get("answered", 0) + self.counts.get("overdue", 0)


async def _find_urge(crm: UrgeReader, order_id: str, urge_id: int) -> Optional[Dict[str, Any]]:
    for offset in range(0, 500, 50):
        page = await crm.list_order_urges(order_id, limit=50, offset=offset)
        for urge in page:
            if urge.get("urge_id") == urge_id:
                return urge
        if len(page) < 50:
            return None
    return None


def answer_text(ctx: HandoffContext, record: Mapping[str, Any], answer: Mapping[str, Any], now: float) -> Optional[str]:
    """What the shopper reads about the carrier's answer; None when the answer is not one the bot can tell."""
    answered = _epoch(answer.get("answered_at"))
    if answered is None:
        return None
    values = {"order_id": record["order_id"], "who": record.get("who") or "", "answered": clock(ctx.local(answered), ctx.local(now))}
    scan, reason = answer.get("scan"), answer.get("reason")
    if answer.get("kind") == "scan" and isinstance(scan, dict) and scan.get("description"):
        return texts.render("utter_carrier_urge_scan", scan=str(scan["description"]), **values)
    if answer.get("kind") == "reason" and isinstance(reason, dict) and reason.get("label") and reason.get("detail"):
        return texts.render("utter_carrier_urge_reason", reason=str(reason["label"]), detail=str(reason["detail"]), **values)
    return None


def apology_text(ctx: HandoffContext, record: Mapping[str, Any], now: float) -> str:
    """What the shopper reads when the due time passed without an answer."""
    due = ctx.local(float(record.get("due_at") or now))
    return texts.render("utter_carrier_urge_unanswered", order_id=record["order_id"], who=record.get("who") or "",
                        due=clock(due, ctx.local(now)), ticket_id=record["ticket_id"])


async def _settle(ctx: HandoffContext, record: Mapping[str, Any], token: str, status: str, text: str, now: float,
                  fields: Mapping[str, str]) -> str:
    ticket_id, sender = record["ticket_id"], record["sender"]
    message = outbox_message(sender, text, "system", kind=KIND, ticket_id=ticket_id)
    flat = [part for pair in {**fields, "told": pii.mask_text(text)}.items() for part in pair]
    result = str(await script(ctx.redis, SETTLE)(
        keys=[ticket_key(ticket_id), WAITING, OPEN, DONE, outbox_key(sender)],
        args=[ticket_id, token, status, repr(now), message, ctx.outbox_maxlen, ctx.outbox_ttl_s, json.dumps(flat, ensure_ascii=False),
              RETENTION_S],
    ))
    if result != "ok":
        return "skipped"
    logger.info("carrier_urge.%s ticket=%s order=%s sender=%s", status, ticket_id, record["order_id"], sender)
    await publish(ctx, f"{KIND}_{status}", ticket_id=ticket_id, order_id=record["order_id"])
    return status


async def _reschedule(ctx: HandoffContext, ticket_id: str, token: str, at: float, now: float) -> None:
    await script(ctx.redis, RESCHEDULE)(keys=[ticket_key(ticket_id), WAITING], args=[ticket_id, token, repr(at), repr(now)])


async def poll_ticket(ctx: HandoffContext, crm: UrgeReader, ticket_id: str, crm_errors: Tuple[Type[BaseException], ...] = ()) -> str:
    """Claim one due ticket, ask the CRM and deliver what there is to deliver.

    Args:
        crm_errors: what the CRM client raises when the CRM cannot answer (:class:`actions.crm.CRMError`).

    Returns:
        ``answered`` or ``overdue`` (this call told the shopper), ``waiting`` (asked again later),
        ``retry`` (the CRM did not answer), ``skipped`` (not due, or another desk has it).
    """
    now = ctx.now()
    token = secrets.token_hex(8)
    if not int(await script(ctx.redis, CLAIM)(keys=[ticket_key(ticket_id), WAITING],
                                              args=[ticket_id, repr(now), repr(now + CLAIM_LEASE_S), token])):
        return "skipped"
    record = await ctx.redis.hgetall(ticket_key(ticket_id))
    due = float(record.get("due_at") or now)
    try:
        urge = await _find_urge(crm, record["order_id"], int(record["urge_id"]))
    except crm_errors as error:
        if now < due + CRM_GRACE_S:
            logger.warning("carrier_urge.crm_unavailable ticket=%s error=%s", ticket_id, type(error).__name__)
            await _reschedule(ctx, ticket_id, token, now + CRM_RETRY_S, now)
            return "retry"
        urge = None
    answer = (urge or {}).get("answer") or {}
    if answer.get("status") == "answered":
        text = answer_text(ctx, record, answer, now)
        if text is not None:
            fields = {"outcome": str(answer.get("kind")), "answered_at": repr(_epoch(answer.get("answered_at")))}
            return await _settle(ctx, record, token, "answered", text, now, fields)
        logger.warning("carrier_urge.unreadable_answer ticket=%s answer=%r", ticket_id, answer)
    if now >= due:
        return await _settle(ctx, record, token, "overdue", apology_text(ctx, record, now), now, {"outcome": "none"})
    await _reschedule(ctx, ticket_id, token, min(due, now + POLL_INTERVAL_S), now)
    return "waiting"


async def poll_due(ctx: HandoffContext, crm: UrgeReader, crm_errors: Tuple[Type[BaseException], ...] = (), limit: int = BATCH) -> PollResult:
    """One pass over the tickets whose poll time has come (safe on every desk at once).

    A ticket whose poll fails unexpectedly is logged and counted as ``failed``; its lease makes it
    due again after :data:`CLAIM_LEASE_S`, and the other tickets are polled meanwhile. Redis
    failures end the pass (the next one picks up).
    """
    result = PollResult()
    for ticket_id in await ctx.redis.zrangebyscore(WAITING, "-inf", repr(ctx.now()), start=0, num=limit):
        try:
            result.add(await poll_ticket(ctx, crm, ticket_id, crm_errors))
        except REDIS_FAILURES:
            raise
        except Exception:  # one malformed ticket or answer must not stop the others
            logger.exception("carrier_urge.poll_failed ticket=%s", ticket_id)
            result.add("failed")
    return result


async def answer(ctx: HandoffContext, ticket_id: str, agent: str, agent_name: str, text: str) -> OpResult:
    """An agent's answer to an unsettled ticket: sent to the shopper's conversation, the ticket settled.

    Returns:
        ``ok``; ``not_found``, or ``done`` (settled before, by whom) otherwise.
    """
    record = await ctx.redis.hgetall(ticket_key(ticket_id))
    if not record:
        return OpResult("not_found")
    now = ctx.now()
    message = outbox_message(record["sender"], text, "agent", agent=agent_name, kind=KIND, ticket_id=ticket_id)
    status, detail = (str(part) for part in await script(ctx.redis, ANSWER)(
        keys=[ticket_key(ticket_id), WAITING, OPEN, DONE, outbox_key(record["sender"])],
        args=[ticket_id, agent, repr(now), message, pii.mask_text(text), ctx.outbox_maxlen, ctx.outbox_ttl_s, RETENTION_S],
    ))
    if status == "ok":
        await publish(ctx, f"{KIND}_closed", ticket_id=ticket_id, agent=agent)
    return OpResult(status, detail)
