"""Queue first, summarise right after: an explicit 「转人工」 reaches the human queue before the bot's turn.

At a sales peak many shoppers ask for a human at the same moment, and each full bot turn (NLU,
policies, the action server, the CRM) waits for the ones before it. A message that says nothing
but "a human, please" (「转人工」, 「人工客服！！」, 「我要找真人」) does not need that turn to be
queued: the channel recognises it with :func:`is_explicit_request`, and when agents are at work it
queues the conversation at once with a short summary (:func:`express_enqueue`). The message then
goes to the bot as usual; its handoff action finds the handoff the channel opened (the message's
metadata names it), builds the full summary from the conversation and the CRM, sends it as a
refinement of the same handoff (:func:`refine`), and tells the shopper their place and the wait.
The desk applies the refinement to the waiting entry: summary, tier, priority and reason.

Anything else, or no agent online, or outside opening hours (a callback is offered then), takes
the bot's turn as before.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from typing import Any, Dict, List, Mapping, Optional, Tuple

from handoff import keys, texts
from handoff.context import HandoffContext
from handoff.conversation import publish, script
from handoff.models import HandoffRequest
from handoff.policy import is_open, reason_label

METADATA_KEY = "handoff"
"""Key of the message metadata naming the handoff the channel opened: ``{"id", "enqueued_at"}``."""

EXPRESS_REASON = "requested"
EXPRESS_INTENT = "human_agent"

_POLITE_PREFIX = (r"(?:亲爱的|亲|你好|您好|在吗|hello|hi|喂|哈喽|请|麻烦|帮我|给我|我要|我想|我需要|想|要|快点|快|赶紧|马上|直接"
                  r"|能不能|能否|可以|找|转接|转)*")
_CORE = r"(?:转|轉|转接|轉接|找|接|要|联系|聯繫)?(?:人工|真人)(?:客服|服务|服務|坐席|座席|客服人员|客服人員|姐姐|小姐姐)?"
_POLITE_SUFFIX = r"(?:吧|啊|呀|哦|噢|呢|了|啦|一下|谢谢|謝謝|好吗|好嗎|可以吗|可以嗎|行吗|行嗎|好不好|行不行|可以不|ok)*"
_EXPLICIT = re.compile(rf"^{_POLITE_PREFIX}(?:{_CORE})+{_POLITE_SUFFIX}$")
_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)
HUMAN_BUTTON_PAYLOAD = "/human_agent"
"""What the bot's 「转人工」 button sends (the button with a reason attached goes to the bot first)."""
MAX_EXPLICIT_CHARS = 24
"""Longer messages say more than "a human, please" and go to the bot first."""


def is_explicit_request(text: Optional[str]) -> bool:
    """Whether a message asks for a human and nothing else.

    Full-width letters, spaces, punctuation and emoji are ignored; anything beyond a polite frame
    around 转人工 / 人工客服 / 真人 (a question, an order number, a complaint) is not explicit, so
    the bot reads it first.

    Args:
        text: the shopper's message.

    Returns:
        True for 「转人工」, 「人工客服！！」, 「亲 帮我转人工吧」, 「我要找真人」 and the 「转人工」
        button's ``/human_agent``; False for
        「人工客服电话多少」, 「转人工 我的快递丢了」 or 「不要转人工」.
    """
    if not text or len(text) > MAX_EXPLICIT_CHARS * 2:
        return False
    if text.strip() == HUMAN_BUTTON_PAYLOAD:
        return True
    core = _NOISE.sub("", unicodedata.normalize("NFKC", text)).lower()
    return 0 < len(core) <= MAX_EXPLICIT_CHARS and _EXPLICIT.fullmatch(core) is not None


def preliminary_summary(customer_id: Optional[str], text: str, at: float, label: str) -> Tuple[Dict[str, Any], str]:
    """The summary an agent sees until the bot's full summary arrives (a second or two later).

    Args:
        customer_id: the verified customer id, None for an anonymous shopper.
        text: the shopper's request.
        at: epoch seconds of the request.
        label: the Chinese label of the reason.

    Returns:
        The structured summary (the shape of the full one) and its Chinese text.
    """
    summary: Dict[str, Any] = {
        "who": {"name": "", "phone": "", "customer_id": customer_id or "", "verified": customer_id is not None,
                "verification": "已登录（签名验证）" if customer_id else "未验证身份", "tier": "", "tier_name": ""},
        "wanted": ["要求人工客服"],
        "orders": [],
        "bot_told": [],
        "reason": {"code": EXPRESS_REASON, "label": label},
        "mood": "平稳",
        "last_turns": [{"from": "shopper", "text": text, "at": at}],
        "crm_unavailable": False,
        "preliminary": True,
    }
    who = texts.say("summary_customer_id", customer_id=customer_id) if customer_id else texts.say("summary_anonymous")
    summary_text = "\n".join([
        texts.say("summary_express_title"),
        texts.say("summary_shopper", parts=f"{who}，{summary['who']['verification']}"),
        texts.say("summary_reason", label=label, mood=""),
        texts.say("summary_express_said", text=text),
    ])
    return summary, summary_text


def express_request(ctx: HandoffContext, sender: str, customer_id: Optional[str], channel: str, text: str) -> Optional[HandoffRequest]:
    """The request an explicit 「转人工」 queues at once, with its preliminary summary.

    Args:
        ctx: the handoff context.
        sender: the conversation id.
        customer_id: the verified customer id, None for an anonymous shopper.
        channel: the channel the shopper writes from.
        text: the shopper's message.

    Returns:
        The request, or None when the message is not an explicit request or the service is closed
        (the bot's turn offers a callback then).
    """
    if not is_explicit_request(text):
        return None
    now = ctx.now()
    if not is_open(ctx.policy, ctx.local(now), ctx.tz):
        return None
    label = reason_label(ctx.policy, EXPRESS_REASON)
    summary, summary_text = preliminary_summary(customer_id, text, now, label)
    return HandoffRequest(
        handoff_id=keys.new_handoff_id(), sender=sender, customer_id=customer_id, tier=None, tier_name="",
        reason=EXPRESS_REASON, intents=[EXPRESS_INTENT], summary=summary, summary_text=summary_text, enqueued_at=now,
        channel=channel,
    )


def express_keys(sender: str, customer_id: Optional[str]) -> List[str]:
    """The keys of :data:`EXPRESS_LUA`'s ``express_enqueue`` for a conversation, in its order."""
    join_key = keys.by_customer(customer_id) if customer_id else keys.active(sender)
    return [keys.active(sender), keys.REQUESTS_STREAM, keys.AGENTS, join_key]


def express_args(request: HandoffRequest) -> List[str]:
    """The arguments of :data:`EXPRESS_LUA`'s ``express_enqueue`` for a request, in its order."""
    presence_prefix, presence_suffix = keys.presence("\0").split("\0")
    event = json.dumps({"type": "requested", "at": request.enqueued_at, "sender": request.sender,
                        "handoff_id": request.handoff_id}, ensure_ascii=False)
    return [request.handoff_id, request.to_json(), presence_prefix, presence_suffix, keys.EVENTS_CHANNEL, event, request.sender]


async def express_enqueue(ctx: HandoffContext, sender: str, customer_id: Optional[str], channel: str, text: str) -> Optional[HandoffRequest]:
    """Queue an explicit request for a human at once, when agents are at work and online.

    The channels do this in the same round trip that admits the message
    (:func:`connectors.binding.admit`) when the conversation's turn is free; this is the step on
    its own, for a message that waited for the turn of the one before it.

    Args:
        ctx: the handoff context.
        sender: the conversation id.
        customer_id: the verified customer id, None for an anonymous shopper.
        channel: the channel the shopper writes from.
        text: the shopper's message.

    Returns:
        The request queued, or None when the message is not an explicit request, no agent is
        online, the service is closed, or the conversation (or the customer's conversation on
        another channel) already has a handoff: the bot's turn decides then. Checking the agents
        and queueing are one atomic step in Redis (:data:`EXPRESS_ENQUEUE`), one round trip.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    request = express_request(ctx, sender, customer_id, channel, text)
    if request is None:
        return None
    created = int(await script(ctx.redis, EXPRESS_ENQUEUE)(keys=express_keys(sender, customer_id), args=express_args(request)))
    return request if created == 1 else None


EXPRESS_LUA = """
-- Queues an explicit request for a human when an agent is online and neither the conversation
-- nor the customer's conversation on another channel has a handoff.
-- k: active(sender), requests stream, agents set, by_customer(customer) (active(sender) for an anonymous shopper).
-- a: handoff id, payload JSON, presence key prefix and suffix, events channel, event JSON, sender.
-- Answers 1 when queued, 0 when no agent is online, -1 when there is a handoff already.
local function express_enqueue(k, a)
  local online = false
  for _, name in ipairs(redis.call('SMEMBERS', k[3])) do
    if redis.call('EXISTS', a[3] .. name .. a[4]) == 1 then online = true break end
  end
  if not online then return 0 end
  if redis.call('EXISTS', k[1]) == 1 then return -1 end
  if k[4] ~= k[1] then
    local primary = redis.call('GET', k[4])
    if primary and primary ~= a[7] and redis.call('EXISTS', 'handoff:active:' .. primary) == 1 then return -1 end
  end
  redis.call('SET', k[1], a[1])
  redis.call('XADD', k[2], 'MAXLEN', '~', 100000, '*', 'handoff_id', a[1], 'payload', a[2])
  redis.call('PUBLISH', a[5], a[6])
  return 1
end
"""
"""The express step in Lua, shared by :data:`EXPRESS_ENQUEUE` and the channels' admission script."""

EXPRESS_ENQUEUE = EXPRESS_LUA + "return express_enqueue(KEYS, ARGV)\n"
"""One round trip: is any agent online, is the conversation free, queue it and tell the desks."""


def metadata_for(request: HandoffRequest) -> Dict[str, Any]:
    """What the bot's turn needs to know of the handoff the channel opened."""
    return {METADATA_KEY: {"id": request.handoff_id, "enqueued_at": request.enqueued_at}}


def opened_handoff(metadata: Optional[Mapping[str, Any]]) -> Optional[Tuple[str, float]]:
    """The handoff the channel opened for this message, from the message's metadata.

    Returns:
        (handoff id, epoch seconds it was queued), or None when the channel opened none.
    """
    found = (metadata or {}).get(METADATA_KEY)
    if not isinstance(found, Mapping):
        return None
    handoff_id, enqueued_at = found.get("id"), found.get("enqueued_at")
    if not isinstance(handoff_id, str) or not keys.is_handoff_id(handoff_id) or not isinstance(enqueued_at, int | float):
        return None
    return handoff_id, float(enqueued_at)


REFINE_REQUEST = """
-- KEYS: active(sender), requests stream. ARGV: handoff id, payload JSON.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', 100000, '*', 'handoff_id', ARGV[1], 'payload', ARGV[2])
return 1
"""


async def refine(ctx: HandoffContext, request: HandoffRequest) -> bool:
    """Send the full summary of a handoff the channel opened, for the desk to apply to it.

    Args:
        ctx: the handoff context.
        request: the full request, with the id and ``enqueued_at`` of the opened handoff.

    Returns:
        False when the conversation no longer has that handoff (it ended meanwhile).

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    refinement = dataclasses.replace(request, refines=True)
    sent = int(await script(ctx.redis, REFINE_REQUEST)(keys=[keys.active(request.sender), keys.REQUESTS_STREAM],
                                                       args=[request.handoff_id, refinement.to_json()]))
    if sent:
        await publish(ctx, "refined_request", sender=request.sender, handoff_id=request.handoff_id)
    return bool(sent)
