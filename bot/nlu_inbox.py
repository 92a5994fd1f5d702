"""The NLU inbox: the shopper messages the bot did not understand, kept masked for a supervisor to label.

Which messages are kept (pure functions over a tracker's last events, :func:`decide`):

- ``fallback``: the NLU gave up (intent ``nlu_fallback``), or the bot answered the message with a
  fallback action (``action_default_fallback``, ``action_nlu_fallback``, ``utter_default``);
- ``low_confidence``: the top intent's confidence was below ``NLU_INBOX_CONFIDENCE``;
- ``correction``: the shopper's next message says the bot got it wrong (「不是这个意思」「答非所问」…):
  the message before it is kept;
- ``handoff_after_miss``: the shopper asked for a human (or was handed over) right after a message
  the bot misunderstood (one of the above): that message is kept.

Button payloads (``/intent{...}``) are never kept. Each kept message is stored once per conversation
turn (its id derives from the conversation and the message id, so saving a tracker twice changes
nothing; a later reason is added to the same item) with its parse (intent, confidence, the next
intents, entity types), its text masked by :func:`bot.pii.mask_text`, and no conversation id.

Storage (the Redis of the tracker store; one server, as the handoff assumes):

- ``nlu_inbox:item:<id>``: a hash per message, expiring after ``NLU_INBOX_RETENTION_DAYS``;
- ``nlu_inbox:index``: a sorted set of ids by the message's time, capped at ``NLU_INBOX_MAX_ITEMS``
  (the oldest items go first) and pruned of items past their retention.

The Rasa server captures through :class:`bot.tracker_store.EncryptedRedisTrackerStore` (after each
save, :func:`capture`); capture never fails or delays a turn beyond its timeout: a Redis error is
logged as ``nlu_inbox.capture_failed`` and the turn goes on. The desk lists and labels items
(:func:`list_items`, :func:`label_item`), ``make review-export`` writes the labelled ones as
training data (:mod:`bot.nlu_export`).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml
from redis.asyncio import Redis

from bot.pii import mask_text
from bot.settings import PROJECT_ROOT, Settings
from bot.texts import intent_labels
from handoff.context import REDIS_FAILURES, redis_client

logger = logging.getLogger(__name__)

ITEM_PREFIX = "nlu_inbox:item:"
INDEX = "nlu_inbox:index"
ITEM_ID = re.compile(r"^[0-9a-f]{20}$")
"""Syntax of an item id."""

FALLBACK_INTENT = "nlu_fallback"
FALLBACK_ACTIONS = frozenset({"action_default_fallback", "action_nlu_fallback", "utter_default"})
"""Actions that mean the bot answered a message without having understood it."""
HANDOFF_INTENTS = frozenset({"human_agent"})
HANDOFF_ACTIONS = frozenset({"action_handoff"})
RETRIEVAL_INTENTS = ("faq", "chitchat")
MAX_TEXT_CHARS = 500
"""Longest text kept (the rest is cut off): what a supervisor reads to label a message."""
RANKING_KEPT = 3
CAPTURE_TIMEOUT_S = 0.5
"""Longest a capture may take before the turn goes on without it."""

REASONS: Dict[str, str] = {
    "fallback": "机器人没能理解",
    "low_confidence": "识别把握不大",
    "correction": "顾客随后表示“不是这个意思”",
    "handoff_after_miss": "没理解后顾客转了人工",
}
"""Why a message was kept, as the supervisor reads it."""

CORRECTION_PHRASES = (
    "不是这个意思", "不是这意思", "不是那个意思", "不是我的意思", "你理解错", "理解错了", "理解有误", "答非所问", "牛头不对马嘴",
    "文不对题", "不是问这个", "不是问这", "我不是问", "我问的不是", "说的不是这个", "不是我要问的", "不是我想问的", "没听懂我",
    "你没懂", "没懂我", "你搞错了", "不是这个问题", "回答的不对", "回答得不对", "驴唇不对马嘴",
)
"""What shoppers write when the bot got their previous message wrong."""

INTENT_LABELS: Dict[str, str] = intent_labels()["inbox"]["intents"]
"""What each intent means to a supervisor; retrieval intents (``faq/invoice``) are named by their key."""

RETRIEVAL_PREFIXES: Dict[str, str] = intent_labels()["inbox"]["retrieval_prefixes"]
SUB_INTENT_LABELS: Dict[str, str] = intent_labels()["inbox"]["sub_intents"]
"""Names of the retrieval sub-intents the project ships (others are shown by their key)."""


@dataclass(frozen=True)
class Turn:
    """One shopper message and what the NLU made of it.

    Attributes:
        text: what the shopper wrote (not masked yet).
        intent: the predicted intent ("" when none).
        confidence: its confidence, 0 to 1.
        ranking: the next intents with their confidences, best first.
        entities: the types of the entities found.
        message_id: Rasa's id of the message ("" when it has none).
        at: epoch seconds of the message.
        channel: the input channel.
        answered_with_fallback: the bot answered it with a fallback action.
        handed_off: the bot handed the conversation to a human after it.
    """

    text: str
    intent: str
    confidence: float
    ranking: Tuple[Tuple[str, float], ...] = ()
    entities: Tuple[str, ...] = ()
    message_id: str = ""
    at: float = 0.0
    channel: str = ""
    answered_with_fallback: bool = False
    handed_off: bool = False


@dataclass(frozen=True)
class Kept:
    """A message to keep and why (codes of :data:`REASONS`)."""

    turn: Turn
    reasons: Tuple[str, ...]


@dataclass(frozen=True)
class InboxConfig:
    """How the inbox captures: the thresholds and the retention.

    Attributes:
        retention_s: how long an item is kept; 0 turns capture off.
        confidence: below this top-intent confidence a message counts as not understood.
        max_items: most items kept; the oldest go first.
    """

    retention_s: int = 30 * 24 * 3600
    confidence: float = 0.6
    max_items: int = 5000

    @classmethod
    def from_settings(cls, settings: Settings) -> InboxConfig:
        """The inbox's part of the settings (``NLU_INBOX_*``)."""
        return cls(retention_s=max(0, int(settings.nlu_inbox_retention_days * 86400)),
                   confidence=settings.nlu_inbox_confidence, max_items=max(1, settings.nlu_inbox_max_items))

    @property
    def enabled(self) -> bool:
        """Whether messages are captured at all."""
        return self.retention_s > 0


# Deciding ---------------------------------------------------------------------------------------


def is_payload(text: str) -> bool:
    """A button's payload (``/intent{...}``), which says nothing about how shoppers write."""
    return text.lstrip().startswith("/")


def is_correction(text: str) -> bool:
    """Whether the shopper says the bot misunderstood their previous message."""
    folded = re.sub(r"\s+", "", text)
    return any(phrase in folded for phrase in CORRECTION_PHRASES)


def miss_reasons(turn: Turn, confidence: float) -> List[str]:
    """Why a message on its own counts as not understood ([] when it was understood).

    Args:
        turn: the message and its parse.
        confidence: the low-confidence threshold.
    """
    reasons = []
    if turn.intent == FALLBACK_INTENT or turn.answered_with_fallback:
        reasons.append("fallback")
    if turn.intent != FALLBACK_INTENT and turn.confidence < confidence:
        reasons.append("low_confidence")
    return reasons


def keep_decisions(current: Turn, previous: Optional[Turn], confidence: float) -> List[Kept]:
    """Which of the latest two messages of a conversation to keep, and why.

    Args:
        current: the shopper's latest message.
        previous: the message before it in the same session, if any.
        confidence: the low-confidence threshold.

    Returns:
        The messages to keep (the previous one first), each with its reasons.
    """
    kept: List[Kept] = []
    if previous is not None and not is_payload(previous.text) and previous.text.strip():
        reasons = miss_reasons(previous, confidence)
        later: List[str] = []
        if is_correction(current.text):
            later.append("correction")
        if reasons and (current.intent in HANDOFF_INTENTS or current.handed_off):
            later.append("handoff_after_miss")
        if later:
            kept.append(Kept(previous, tuple(reasons + later)))
    if not is_payload(current.text) and current.text.strip():
        reasons = miss_reasons(current, confidence)
        if reasons:
            kept.append(Kept(current, tuple(reasons)))
    return kept


def _turn(event: Mapping[str, Any], after: Sequence[Mapping[str, Any]]) -> Turn:
    parse = event.get("parse_data") or {}
    intent = parse.get("intent") or {}
    ranking = tuple((str(r.get("name") or ""), float(r.get("confidence") or 0.0)) for r in (parse.get("intent_ranking") or [])
                    if isinstance(r, Mapping) and r.get("name") != intent.get("name"))
    entities = tuple(dict.fromkeys(str(e.get("entity")) for e in (parse.get("entities") or []) if isinstance(e, Mapping)))
    actions = {str(e.get("name")) for e in after if e.get("event") == "action"}
    return Turn(
        text=str(event.get("text") or ""),
        intent=str(intent.get("name") or ""),
        confidence=float(intent.get("confidence") or 0.0),
        ranking=ranking[:RANKING_KEPT],
        entities=entities,
        message_id=str(event.get("message_id") or parse.get("message_id") or ""),
        at=float(event.get("timestamp") or 0.0),
        channel=str(event.get("input_channel") or ""),
        answered_with_fallback=bool(actions & FALLBACK_ACTIONS),
        handed_off=bool(actions & HANDOFF_ACTIONS),
    )


def latest_turns(events: Sequence[Mapping[str, Any]]) -> Tuple[Optional[Turn], Optional[Turn]]:
    """The latest shopper message of the current session and the one before it (None when absent).

    Args:
        events: a tracker's events as dicts, oldest first (the last few are enough: a session
            start ends the search).
    """
    found: List[Turn] = []
    end = len(events)
    for index in range(len(events) - 1, -1, -1):
        kind = events[index].get("event")
        if kind == "session_started":
            break
        if kind == "user":
            found.append(_turn(events[index], events[index + 1:end]))
            end = index
            if len(found) == 2:
                break
    return (found[0] if found else None), (found[1] if len(found) > 1 else None)


def decide(events: Sequence[Mapping[str, Any]], confidence: float) -> List[Kept]:
    """The messages of a conversation's latest turn to keep (see the module's description)."""
    current, previous = latest_turns(events)
    return keep_decisions(current, previous, confidence) if current is not None else []


def item_id(sender_id: str, turn: Turn) -> str:
    """The id of a message's item: the same for every save of the same turn, unrelated to the conversation id."""
    digest = hashlib.sha256(f"nlu-inbox|{sender_id}|{turn.message_id or turn.at!r}|{turn.text}".encode())
    return digest.hexdigest()[:20]


def item_fields(turn: Turn, now: float, names: Sequence[str] = ()) -> Dict[str, str]:
    """The stored fields of a kept message: masked text and its parse (no conversation id).

    Args:
        turn: the message.
        now: epoch seconds.
        names: names known in the conversation (a receiver's name slot), masked wherever they occur.
    """
    return {
        "text": mask_text(turn.text.strip(), names)[:MAX_TEXT_CHARS],
        "intent": turn.intent,
        "confidence": f"{turn.confidence:.4f}",
        "ranking": json.dumps([{"name": name, "confidence": round(value, 4)} for name, value in turn.ranking], ensure_ascii=False),
        "entities": json.dumps(list(turn.entities), ensure_ascii=False),
        "at": f"{turn.at or now:.3f}",
        "channel": turn.channel,
        "kept_at": f"{now:.3f}",
    }


# Storing ---------------------------------------------------------------------------------------

KEEP_SCRIPT = """
local key, index = KEYS[1], KEYS[2]
local id, score, ttl, cap, now, reasons = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
if score < now - ttl then return 0 end
if redis.call('EXISTS', key) == 1 then
  local have = redis.call('HGET', key, 'reasons') or ''
  local changed = false
  for reason in string.gmatch(reasons, '[^,]+') do
    if not string.find(',' .. have .. ',', ',' .. reason .. ',', 1, true) then
      if have == '' then have = reason else have = have .. ',' .. reason end
      changed = true
    end
  end
  if changed then redis.call('HSET', key, 'reasons', have) end
  return 0
end
redis.call('HSET', key, 'id', id, 'reasons', reasons, unpack(ARGV, 7))
redis.call('EXPIRE', key, ttl)
redis.call('ZADD', index, score, id)
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl)
local extra = redis.call('ZCARD', index) - cap
if extra > 0 then
  local prefix = string.sub(key, 1, string.len(key) - string.len(id))
  for _, old in ipairs(redis.call('ZRANGE', index, 0, extra - 1)) do redis.call('DEL', prefix .. old) end
  redis.call('ZREMRANGEBYRANK', index, 0, extra - 1)
end
redis.call('EXPIRE', index, ttl)
return 1
"""

LABEL_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
if redis.call('HGET', KEYS[1], 'label') == ARGV[1] then return 'unchanged' end
redis.call('HSET', KEYS[1], 'label', ARGV[1], 'labelled_by', ARGV[2], 'labelled_at', ARGV[3])
return 'labelled'
"""


def item_key(identifier: str) -> str:
    """The hash of one item."""
    return ITEM_PREFIX + identifier


async def keep(redis: Redis, sender_id: str, decisions: Iterable[Kept], config: InboxConfig, now: Optional[float] = None,
               names: Sequence[str] = ()) -> int:
    """Store kept messages (a message stored before only gains the new reasons); ``names`` are masked too.

    Returns:
        How many new items were stored.

    Raises:
        redis.exceptions.RedisError, OSError, asyncio.TimeoutError: Redis could not answer.
    """
    now = time.time() if now is None else now
    created = 0
    for decision in decisions:
        identifier = item_id(sender_id, decision.turn)
        fields = item_fields(decision.turn, now, names)
        args: List[Any] = [identifier, fields["at"], config.retention_s, config.max_items, f"{now:.3f}", ",".join(decision.reasons)]
        for name, value in fields.items():
            args.extend((name, value))
        created += int(await redis.eval(KEEP_SCRIPT, 2, item_key(identifier), INDEX, *args))
    return created


async def capture(redis: Redis, sender_id: str, events: Sequence[Mapping[str, Any]], config: InboxConfig,
                  timeout_s: float = CAPTURE_TIMEOUT_S, names: Sequence[str] = ()) -> int:
    """Keep what a conversation's latest turn shows the bot did not understand; never raises.

    Args:
        redis: the inbox's Redis.
        sender_id: the conversation id (only its hash is stored).
        events: the tracker's last events as dicts.
        config: thresholds and retention.
        timeout_s: longest the writes may take.
        names: names known in the conversation, masked wherever they occur.

    Returns:
        How many new items were stored (0 also when Redis could not answer: logged, the turn goes on).
    """
    if not config.enabled:
        return 0
    decisions = decide(events, config.confidence)
    if not decisions:
        return 0
    try:
        created = await asyncio.wait_for(keep(redis, sender_id, decisions, config, names=names), timeout=timeout_s)
    except REDIS_FAILURES as error:
        logger.warning("nlu_inbox.capture_failed error=%s: the message is not kept, the turn goes on", type(error).__name__)
        return 0
    if created:
        logger.info("nlu_inbox.kept items=%d reasons=%s", created, "+".join(sorted({r for d in decisions for r in d.reasons})))
    return created


def _tail(events: Iterable[Any], most: int) -> List[Mapping[str, Any]]:
    """The events (as dicts, oldest first) back to the second-last shopper message or the session's start."""
    ordered = events if isinstance(events, Sequence) else list(events)
    tail: List[Mapping[str, Any]] = []
    users = 0
    for event in itertools.islice(reversed(ordered), most):
        as_dict: Mapping[str, Any] = event if isinstance(event, Mapping) else event.as_dict()
        tail.append(as_dict)
        kind = as_dict.get("event")
        users += kind == "user"
        if kind == "session_started" or users == 2:
            break
    tail.reverse()
    return tail


class TrackerCapture:
    """What the tracker store calls after each save: the inbox's Redis client (per event loop) and config.

    Args:
        redis_url: the Redis of the tracker store.
        config: thresholds and retention.
        timeout_s: connect, command and overall timeout of a capture.
    """

    TAIL_EVENTS = 60
    """Events read back from a tracker's end to find its latest two shopper messages."""

    def __init__(self, redis_url: str, config: InboxConfig, timeout_s: float = CAPTURE_TIMEOUT_S) -> None:
        self.redis_url = redis_url
        self.config = config
        self.timeout_s = timeout_s

    async def after_save(self, sender_id: str, events: Iterable[Any], names: Sequence[str] = ()) -> int:
        """Capture from a saved tracker's events (Rasa ``Event`` objects or dicts); never raises.

        Args:
            sender_id: the conversation id (only its hash is stored).
            events: the tracker's events, oldest first.
            names: names the conversation holds (slots), masked wherever they occur.
        """
        if not self.config.enabled:
            return 0
        try:
            dicts = _tail(events, self.TAIL_EVENTS)
            client = redis_client(self.redis_url, self.timeout_s, max_connections=10)
            return await capture(client, sender_id, dicts, self.config, self.timeout_s, names)
        except Exception:  # a capture problem (an odd event, the masking) must never fail the turn
            logger.exception("nlu_inbox.capture_failed sender_hash=%s", hashlib.sha256(sender_id.encode()).hexdigest()[:8])
            return 0


# Reading and labelling (the desk, the export) ---------------------------------------------------


def intent_label(name: str) -> str:
    """The Chinese name of an intent or retrieval intent (``faq/invoice`` → 「常见问题：发票」)."""
    if "/" in name:
        base, key = name.split("/", 1)
        return f"{RETRIEVAL_PREFIXES.get(base, base)}：{SUB_INTENT_LABELS.get(name, key)}"
    return INTENT_LABELS.get(name, name)


def label_choices(domain_file: Path = PROJECT_ROOT / "domain.yml",
                  responses_dir: Path = PROJECT_ROOT / "data" / "responses") -> Dict[str, str]:
    """The intents a message may be labelled with, and their Chinese names.

    Every intent of the domain, except that each retrieval intent (``faq``, ``chitchat``) is
    offered as its sub-intents (``faq/invoice``), one per ``utter_faq/...`` response of the domain
    or the response files.
    """
    domain = yaml.safe_load(domain_file.read_text(encoding="utf-8")) or {}
    responses = set((domain.get("responses") or {}).keys())
    for path in sorted(responses_dir.glob("*.yml")) if responses_dir.is_dir() else []:
        responses.update(((yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {}).keys())
    choices: Dict[str, str] = {}
    for entry in domain.get("intents") or []:
        name = next(iter(entry)) if isinstance(entry, dict) else str(entry)
        if name in RETRIEVAL_INTENTS:
            for response in sorted(responses):
                if response.startswith(f"utter_{name}/"):
                    sub = f"{name}/{response.split('/', 1)[1]}"
                    choices[sub] = intent_label(sub)
        else:
            choices[name] = intent_label(name)
    return choices


@dataclass
class Page:
    """A page of the inbox: items newest first, with the counts."""

    items: List[Dict[str, Any]] = field(default_factory=list)
    total: int = 0
    labelled: int = 0


def _item_view(raw: Mapping[str, str], now: float, retention_s: int) -> Dict[str, Any]:
    reasons = [r for r in (raw.get("reasons") or "").split(",") if r]
    label = raw.get("label") or ""
    at = float(raw.get("at") or 0.0)
    kept_at = float(raw.get("kept_at") or at)
    return {
        "id": raw.get("id") or "",
        "text": raw.get("text") or "",
        "intent": raw.get("intent") or "",
        "intent_label": intent_label(raw.get("intent") or ""),
        "confidence": float(raw.get("confidence") or 0.0),
        "ranking": [{**entry, "label": intent_label(str(entry.get("name") or ""))} for entry in json.loads(raw.get("ranking") or "[]")],
        "entities": json.loads(raw.get("entities") or "[]"),
        "reasons": reasons,
        "reason_labels": [REASONS.get(r, r) for r in reasons],
        "at": at,
        "channel": raw.get("channel") or "",
        "label": label,
        "label_name": intent_label(label) if label else "",
        "labelled_by": raw.get("labelled_by") or "",
        "labelled_at": float(raw["labelled_at"]) if raw.get("labelled_at") else None,
        "expires_in_s": max(0, round(kept_at + retention_s - now)),
    }


async def list_items(redis: Redis, status: str = "all", limit: int = 100, retention_s: int = 30 * 86400,
                     now: Optional[float] = None) -> Page:
    """Items newest first (``status``: ``all``, ``unlabelled`` or ``labelled``), at most ``limit``.

    Items past their retention are dropped from the index on the way.
    """
    now = time.time() if now is None else now
    ids: List[str] = await redis.zrevrange(INDEX, 0, -1)
    page = Page()
    gone: List[str] = []
    for start in range(0, len(ids), 200):
        chunk = ids[start:start + 200]
        async with redis.pipeline(transaction=False) as pipe:
            for identifier in chunk:
                pipe.hgetall(item_key(identifier))
            found = await pipe.execute()
        for identifier, raw in zip(chunk, found, strict=True):
            if not raw:
                gone.append(identifier)
                continue
            page.total += 1
            labelled = bool(raw.get("label"))
            page.labelled += labelled
            wanted = status == "all" or (status == "labelled") == labelled
            if wanted and len(page.items) < limit:
                page.items.append(_item_view(raw, now, retention_s))
    if gone:
        await redis.zrem(INDEX, *gone)
    return page


async def get_item(redis: Redis, identifier: str, retention_s: int = 30 * 86400) -> Optional[Dict[str, Any]]:
    """One item, None when there is no such item (or it has expired)."""
    raw = await redis.hgetall(item_key(identifier))
    return _item_view(raw, time.time(), retention_s) if raw else None


async def label_item(redis: Redis, identifier: str, intent: str, by: str, now: Optional[float] = None) -> str:
    """Label an item: ``labelled``, ``unchanged`` (it had this label already) or ``not_found``."""
    now = time.time() if now is None else now
    return str(await redis.eval(LABEL_SCRIPT, 1, item_key(identifier), intent, by, f"{now:.3f}"))


async def labelled_items(redis: Redis) -> List[Dict[str, Any]]:
    """Every labelled item, oldest label first (what the export writes)."""
    page = await list_items(redis, "labelled", limit=10**9)
    return sorted(page.items, key=lambda item: (item["labelled_at"] or 0.0, item["id"]))
