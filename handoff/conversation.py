"""Messages during a handoff: the shopper's (kept in order, never answered by the bot), the agent's
(delivered to the shopper's outbox in the same atomic step), system notices and internal notes.

The transcript and the notes keep personal data masked (:func:`bot.pii.mask_text`: phones, phone
tails, ID and card numbers, emails, street addresses; order and tracking numbers stay), and the
desks' live events carry the same masked text, so what an agent sees is what is stored. Masking
changes characters, never drops a message. The agent's reply reaches the shopper as typed (a
return address, a hotline the shopper needs); only its transcript copy is masked.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Sequence

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from bot import pii
from bot.outbox import outbox_key
from handoff import keys, scripts
from handoff.complaints import is_complaint
from handoff.context import REDIS_FAILURES, HandoffContext

logger = logging.getLogger(__name__)

_scripts: Dict[tuple, AsyncScript] = {}


def script(redis: Redis, source: str) -> AsyncScript:
    """The registered script object of ``source`` for a client (EVALSHA, loading it when Redis lost it)."""
    key = (id(redis), source)
    found = _scripts.get(key)
    if found is None:
        found = redis.register_script(source)
        _scripts[key] = found
    return found


def outbox_message(sender: str, text: str, source: str, buttons: Optional[Sequence[Mapping[str, str]]] = None, **extra: Any) -> str:
    """A message for a conversation's outbox, serialised as :class:`bot.outbox.Outbox` stores it."""
    message: Dict[str, Any] = {"recipient_id": sender, "text": text, "from": source}
    if buttons:
        message["buttons"] = [dict(b) for b in buttons]
    message.update({k: v for k, v in extra.items() if v is not None})
    message["sent_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return json.dumps(message, ensure_ascii=False)


async def publish(ctx: HandoffContext, event: str, **data: Any) -> None:
    """Tell the desks about a change (best effort: live updates only, the state is already saved)."""
    payload = json.dumps({"type": event, "at": ctx.now(), **data}, ensure_ascii=False)
    try:
        await ctx.redis.publish(keys.EVENTS_CHANNEL, payload)
    except REDIS_FAILURES as error:
        logger.warning("handoff.publish.failed event=%s error=%s", event, type(error).__name__)


@dataclass(frozen=True)
class RoutedMessage:
    """Where a shopper's message went while a handoff has the conversation.

    Attributes:
        handoff_id: the handoff that has the conversation.
        entry_id: the message's id in the handoff transcript.
        status: ``pending`` (not yet in the queue), ``queued`` or ``assigned``.
        agent: the agent's username when assigned.
        agent_name: the name the shopper sees for that agent.
        joined: the message moved this conversation into the customer's handoff open elsewhere.
        duplicate: the client sent this message id before: it was not written again.
    """

    handoff_id: str
    entry_id: str
    status: str
    agent: str
    agent_name: str
    joined: bool = False
    duplicate: bool = False


CHANNEL_NAMES = {"web": "网站", "app": "App", "wechat": "微信公众号"}
"""How the desk's transcript names each channel."""


async def route_shopper_message(ctx: HandoffContext, sender: str, text: str, customer_id: Optional[str] = None,
                                channel: str = "", message_id: str = "") -> Optional[RoutedMessage]:
    """Append a shopper's message to the handoff transcript when a handoff has the conversation.

    The check and the append are one atomic step, so a message is either in the transcript or
    (when no handoff has the conversation) left for the bot; never both, never neither.

    A verified customer whose handoff is open in another conversation (they asked for a human on
    the website and now write from the app) joins it: the message goes to the same transcript and
    agent, and everything the agent sends reaches this conversation too, until the handoff ends.

    The transcript keeps the message masked (:func:`bot.pii.mask_text`) and the desks are shown
    the same masked text. A complaint about the agent who has the conversation
    (:func:`handoff.complaints.is_complaint`) opens a supervisor review and tells the shopper.

    Args:
        ctx: the handoff context.
        sender: the conversation id.
        text: the shopper's message.
        customer_id: the verified customer id of the shopper, None when anonymous.
        channel: the channel the message came through, for the agent's transcript.
        message_id: the client's id of the message (validated by the channel); a retry with the
            same id while the same handoff has the conversation is answered as the first try was,
            and written once.

    Returns:
        Where the message went, or None when the bot has the conversation.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    now = ctx.now()
    stored = pii.mask_text(text)
    join_key = keys.by_customer(customer_id) if customer_id else keys.active(sender)
    note = f"顾客从{CHANNEL_NAMES.get(channel, channel or '另一渠道')}继续本次会话（会话 {sender}）"
    reply = await script(ctx.redis, scripts.SHOPPER_MESSAGE)(keys=[keys.active(sender), join_key],
                                                             args=[stored, repr(now), sender, note, ctx.outbox_ttl_s, message_id])
    if not reply or reply[0] != "ok":
        if reply:
            logger.warning("handoff.active_key.foreign sender=%s", sender)
        return None
    _, handoff_id, entry_id, status, agent, agent_name, joined, duplicate = (str(part) for part in reply)
    if duplicate == "1":
        logger.info("handoff.message.duplicate sender=%s handoff=%s", sender, handoff_id)
        return RoutedMessage(handoff_id, entry_id, status, agent, agent_name, duplicate=True)
    if joined == "1":
        logger.info("handoff.joined sender=%s handoff=%s channel=%s", sender, handoff_id, channel)
        await publish(ctx, "joined", sender=sender, handoff_id=handoff_id, channel=channel)
    await publish(ctx, "message", sender=sender, handoff_id=handoff_id,
                  entry={"id": entry_id, "from": "shopper", "text": stored, "at": now})
    if status == "assigned" and is_complaint(text):
        from handoff.reviews import complaint_during_service  # reviews reads this module

        await complaint_during_service(ctx, handoff_id, sender, agent, agent_name, text)
    return RoutedMessage(handoff_id, entry_id, status, agent, agent_name, joined == "1")


CANCEL_PHRASES = ("取消人工", "取消转人工", "不用人工", "不要人工了", "取消排队", "不排了", "不等了")
"""What a waiting shopper says to give up the queue and talk to the bot again."""


def is_cancel_request(text: str) -> bool:
    """Whether a short message asks to leave the human queue."""
    compact = "".join(text.split())
    return len(compact) <= 12 and any(phrase in compact for phrase in CANCEL_PHRASES)


@dataclass(frozen=True)
class OpResult:
    """Outcome of a desk operation: ``ok`` or why it was refused, with details."""

    status: str
    detail: str = ""
    handoff_id: str = ""
    data: Optional[Dict[str, Any]] = None

    @property
    def ok(self) -> bool:
        """True when the operation happened."""
        return self.status == "ok"


async def active_handoff(ctx: HandoffContext, sender: str) -> Optional[str]:
    """The handoff id that has the conversation now, if any."""
    value = await ctx.redis.get(keys.active(sender))
    return value if keys.is_handoff_id(value) else None


async def current_handoff(ctx: HandoffContext, sender: str) -> Optional[str]:
    """The conversation's active handoff, else its most recent one."""
    return await active_handoff(ctx, sender) or (await ctx.redis.get(keys.latest(sender)) or None)


async def agent_message(ctx: HandoffContext, sender: str, agent: str, agent_name: str, text: str, client_id: str = "") -> OpResult:
    """An agent's reply: appended to the transcript and pushed to the shopper in one atomic step.

    Args:
        client_id: the desk client's id of this reply (:data:`keys.CLIENT_ID`). A client that
            lost the answer (a 503 while Redis restarted, a desk that died) retries with the same
            id, and the reply is written once: the retry gets the first write's ids, with
            ``duplicate`` True. Without one, a retry after a lost answer may send it twice.

    Returns:
        ``ok`` with the transcript entry id and the outbox cursor; ``not_found``, ``not_assigned``,
        ``not_yours`` or ``invalid_client_id`` otherwise. The shopper receives ``text`` as typed;
        the transcript and the entry answered and shown to the desks hold it masked.
    """
    if client_id and not keys.CLIENT_ID.fullmatch(client_id):
        return OpResult("invalid_client_id")
    handoff_id = await active_handoff(ctx, sender)
    if handoff_id is None:
        return OpResult("not_found")
    now = ctx.now()
    message = outbox_message(sender, text, "agent", agent=agent_name)
    stored = pii.mask_text(text)
    reply = await script(ctx.redis, scripts.AGENT_MESSAGE)(
        keys=[keys.record(handoff_id), keys.transcript(handoff_id), outbox_key(sender), keys.day_stats(ctx.day(now)), keys.RECENT_FIRST_RESPONSES,
              keys.reply_ids(handoff_id)],
        args=[agent, repr(now), stored, agent_name, message, ctx.outbox_maxlen, ctx.outbox_ttl_s,
              ctx.policy.first_response_s, keys.RECENT_LIMIT, scripts.STATS_TTL_S, client_id],
    )
    status, first, second, *again = (str(part) for part in reply)
    if status != "ok":
        return OpResult(status, first, handoff_id)
    entry = {"id": first, "from": "agent", "text": stored, "at": now, "agent": agent, "name": agent_name}
    if not again:
        await publish(ctx, "message", sender=sender, handoff_id=handoff_id, entry=entry)
    return OpResult("ok", handoff_id=handoff_id, data={"entry": entry, "cursor": second, "duplicate": bool(again)})


async def system_notice(ctx: HandoffContext, handoff_id: str, sender: str, transcript_text: str, shopper_text: str = "") -> str:
    """A line in the transcript and, when ``shopper_text`` is given, a notice pushed to the shopper."""
    now = ctx.now()
    message = outbox_message(sender, shopper_text, "system") if shopper_text else ""
    entry = await script(ctx.redis, scripts.SYSTEM_NOTICE)(
        keys=[keys.transcript(handoff_id), outbox_key(sender)],
        args=[repr(now), transcript_text, message, ctx.outbox_maxlen, ctx.outbox_ttl_s],
    )
    await publish(ctx, "message", sender=sender, handoff_id=handoff_id,
                  entry={"id": str(entry), "from": "system", "text": transcript_text, "at": now})
    return str(entry)


async def add_note(ctx: HandoffContext, sender: str, agent: str, agent_name: str, text: str) -> OpResult:
    """An internal note on the conversation's handoff, seen by agents only, stored and shown masked.

    The phone or address an agent copies into a note is masked like the shopper's words: the full
    value stays in the CRM, the only place it is needed.
    """
    handoff_id = await current_handoff(ctx, sender)
    if handoff_id is None or not await ctx.redis.exists(keys.record(handoff_id)):
        return OpResult("not_found")
    note = {"agent": agent, "name": agent_name, "text": pii.mask_text(text), "at": ctx.now()}
    await ctx.redis.rpush(keys.notes(handoff_id), json.dumps(note, ensure_ascii=False))
    await publish(ctx, "note", sender=sender, handoff_id=handoff_id, note=note)
    return OpResult("ok", handoff_id=handoff_id, data={"note": note})


async def notes(ctx: HandoffContext, handoff_id: str) -> List[Dict[str, Any]]:
    """A handoff's internal notes, oldest first."""
    out: List[Dict[str, Any]] = []
    for raw in await ctx.redis.lrange(keys.notes(handoff_id), 0, -1):
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


async def transcript(ctx: HandoffContext, handoff_id: str, after: str = "-", limit: int = 1000) -> List[Dict[str, Any]]:
    """A handoff's messages in order, each with its ``id``."""
    start = f"({after}" if after not in ("-", "") else "-"
    entries = await ctx.redis.xrange(keys.transcript(handoff_id), min=start, max="+", count=limit)
    out: List[Dict[str, Any]] = []
    for entry_id, fields in entries:
        item: Dict[str, Any] = {"id": entry_id, **fields}
        try:
            item["at"] = float(fields.get("at", 0))
        except ValueError:
            item["at"] = 0.0
        out.append(item)
    return out
