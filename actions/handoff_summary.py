"""The handoff summary and the decisions around it, as pure functions over tracker events.

What the agent reads first when a conversation reaches the desk, in Chinese: who the shopper is
(masked), tier and whether their identity is verified, what they wanted, the orders involved with
status, what the bot already told them, why it was handed off, and the last turns. Also: why to
hand off (the reason code), how many fallbacks in a row, and how to read a 1–5 rating.

Personal data never reaches the summary in clear: the name and phone are masked, and so are the
phones, addresses, ID and card numbers and known names in every message it quotes
(:mod:`bot.pii`); order and tracking numbers stay, agents need them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from actions import formatting
from actions.order_tracking import is_late, items_summary, status_label
from bot.pii import mask_name, mask_phone, mask_text
from bot.texts import intent_labels
from handoff import texts
from handoff.complaints import is_angry

HANDOFF_ACTION = "action_handoff"
FALLBACK_INTENT = "nlu_fallback"
KNOWN_REASONS = ("requested", "complaint", "angry", "fallback", "flow_failed", "policy_undecided")
MAX_LAST_TURNS = 10
MAX_BOT_TOLD = 6
MAX_ORDERS = 5
MAX_TURN_CHARS = 160

INTENT_LABELS: Dict[str, str] = intent_labels()["summary"]["intents"]
"""What each intent means to an agent; intents missing here (greetings, thanks, yes/no) are left out."""

FAQ_TOPIC_LABELS: Dict[str, str] = intent_labels()["summary"]["faq_topics"]
"""The topic of an FAQ the bot answered, by its key (``faq/invoice``), so the agent sees what was asked."""

ORDER_ID_PATTERN = re.compile(r"(?<!\d)(\d{12})(?!\d)")

_DIGIT_RATING = re.compile(r"(?<![\d.])([1-5])(?![\d.])")
_CHINESE_RATING = re.compile(r"([一二两三四五])\s*(?:分|星|颗星|颗)")
_CHINESE_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_RATING_WORDS = (
    (("非常不满意", "很不满意", "极差", "太差", "特别差"), 1),
    (("不满意", "不太满意", "差评", "不好"), 2),
    (("一般", "凑合", "马马虎虎", "还行吧"), 3),
    (("比较满意", "还不错", "挺好", "还可以", "还行"), 4),
    (("非常满意", "很满意", "满意", "满分", "好评", "完美"), 5),
)


def _user_events(events: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    return [e for e in events if e.get("event") == "user"]


def _intent(event: Mapping[str, Any]) -> str:
    return str(((event.get("parse_data") or {}).get("intent") or {}).get("name") or "")


def consecutive_fallbacks(events: Sequence[Mapping[str, Any]]) -> int:
    """How many of the latest user messages in a row the bot did not understand.

    Counting stops at the last message the bot understood and at the last handoff, so after a
    handoff the count starts again.
    """
    count = 0
    for event in reversed(events):
        if event.get("event") == "action" and event.get("name") == HANDOFF_ACTION:
            break
        if event.get("event") == "user":
            if _intent(event) != FALLBACK_INTENT:
                break
            count += 1
    return count


def determine_reason(
    latest_intent: str, latest_text: str, requested_reason: Optional[str], failed_attempts: float, fallbacks: int
) -> str:
    """Why the conversation is handed off, as a reason code of the policy.

    Args:
        latest_intent: the intent of the shopper's latest message.
        latest_text: the shopper's latest message.
        requested_reason: a reason another flow set in the ``handoff_reason`` slot.
        failed_attempts: how often a self-service step failed in a row (the ``failed_attempts``
            identity checks or a flow's ``flow_invalid_answers``, whichever is higher).
        fallbacks: :func:`consecutive_fallbacks`.
    """
    if requested_reason in KNOWN_REASONS:
        return str(requested_reason)
    if latest_intent == FALLBACK_INTENT or fallbacks >= 2:
        return "fallback"
    if is_angry(latest_text):
        return "angry"
    if latest_intent == "complaint":
        return "complaint"
    if failed_attempts >= 2:
        return "flow_failed"
    return "requested"


def faq_topic(event: Mapping[str, Any]) -> Optional[str]:
    """The topic label of a shopper's message the bot answered as an FAQ (「发票咨询」), if known."""
    name = _intent(event)
    if name.split("/")[0] != "faq":
        return None
    key = name.split("/", 1)[1] if "/" in name else ""
    if not key:
        for selector in ((event.get("parse_data") or {}).get("response_selector") or {}).values():
            found = str((((selector or {}).get("response") or {}).get("intent_response_key")) or "")
            if found.startswith("faq/"):
                key = found.split("/", 1)[1]
                break
    return FAQ_TOPIC_LABELS.get(key)


def wanted(events: Sequence[Mapping[str, Any]]) -> List[str]:
    """What the shopper asked about, in order of first mention (labels of :data:`INTENT_LABELS`; an
    FAQ by its topic, :data:`FAQ_TOPIC_LABELS`)."""
    seen: List[str] = []
    for event in _user_events(events):
        label = faq_topic(event) or INTENT_LABELS.get(_intent(event).split("/")[0])
        if label and label not in seen:
            seen.append(label)
    return seen


def intents(events: Sequence[Mapping[str, Any]]) -> List[str]:
    """Intent names of the shopper's messages, in order of first mention, without repeats."""
    out: List[str] = []
    for event in _user_events(events):
        name = _intent(event).split("/")[0]
        if name and name not in out:
            out.append(name)
    return out


def mentioned_order_ids(events: Sequence[Mapping[str, Any]], slots: Mapping[str, Any]) -> List[str]:
    """Order ids of the conversation, most recent first: entities, slots and the bot's own messages."""
    found: List[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str) and ORDER_ID_PATTERN.fullmatch(value) and value not in found:
            found.append(value)

    for event in reversed(events):
        if event.get("event") == "user":
            for entity in (event.get("parse_data") or {}).get("entities") or []:
                if entity.get("entity") == "order_id":
                    add(str(entity.get("value")))
        elif event.get("event") == "bot":
            for match in ORDER_ID_PATTERN.findall(str(event.get("text") or "")):
                add(match)
    add(str(slots.get("verified_order_id") or "").split("~")[0])  # the order id before its proof
    add(slots.get("order_id"))
    return found[:MAX_ORDERS]


def _clip(text: str, limit: int = MAX_TURN_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Turn:
    """One message of the conversation before the handoff."""

    speaker: str  # "shopper" or "bot"
    text: str
    at: float


def last_turns(events: Sequence[Mapping[str, Any]], limit: int = MAX_LAST_TURNS, names: Sequence[Optional[str]] = ()) -> List[Turn]:
    """The latest messages of the shopper and the bot, oldest first, with personal data masked.

    Args:
        events: the tracker's events.
        limit: how many messages at most.
        names: the shopper's and receivers' names from the CRM, masked wherever they occur.

    Returns:
        The messages, each masked (:func:`bot.pii.mask_text`) before it is shortened, so a cut
        never leaves half a phone number in clear.
    """
    turns: List[Turn] = []
    for event in events:
        if event.get("event") in ("user", "bot") and event.get("text"):
            text = _clip(mask_text(str(event["text"]), names))
            turns.append(Turn("shopper" if event["event"] == "user" else "bot", text, float(event.get("timestamp") or 0)))
    return turns[-limit:]


def bot_told(events: Sequence[Mapping[str, Any]], limit: int = MAX_BOT_TOLD, names: Sequence[Optional[str]] = ()) -> List[Turn]:
    """What the bot already told the shopper (its latest messages, verdicts, amounts and dates included), masked.

    Args:
        events: the tracker's events.
        limit: how many messages at most.
        names: the shopper's and receivers' names from the CRM, masked wherever they occur.
    """
    told = [Turn("bot", _clip(mask_text(str(e["text"]), names), 200), float(e.get("timestamp") or 0))
            for e in events if e.get("event") == "bot" and e.get("text")]
    return told[-limit:]


@dataclass(frozen=True)
class ShopperFacts:
    """What the action learned about the shopper from the channel and the CRM.

    Attributes:
        customer_id: the verified customer id.
        verification: ``signed`` (shop-signed id), ``order`` (order + phone tail) or ``none``.
        customer: the CRM profile (name, phone, tier, tier_name), None when unknown.
        orders: CRM orders the shopper may see that the conversation involves.
        crm_unavailable: the CRM did not answer in time.
    """

    customer_id: Optional[str]
    verification: str
    customer: Optional[Mapping[str, Any]] = None
    orders: Sequence[Mapping[str, Any]] = field(default_factory=list)
    crm_unavailable: bool = False


VERIFICATION_LABELS = {"signed": "已验证（商城登录）", "order": "已验证（订单号+手机尾号）", "none": "未验证身份"}


def describe_order_line(order: Mapping[str, Any], today: date) -> Dict[str, Any]:
    """One involved order, as the summary lists it."""
    promised = order.get("promised_date")
    late = bool(order.get("is_late")) or is_late(dict(order), today)
    shipment = order.get("shipment") or {}
    return {
        "order_id": order.get("order_id"),
        "status": order.get("status"),
        "status_label": status_label(dict(order)),
        "promised_date": promised,
        "late": late,
        "items": items_summary(dict(order)),
        "paid": formatting.money(int(order.get("paid_fen") or 0)),
        "carrier": shipment.get("carrier_name") or shipment.get("carrier") or "",
        "tracking_number": shipment.get("tracking_number") or "",
    }


def build_summary(
    events: Sequence[Mapping[str, Any]],
    facts: ShopperFacts,
    reason: str,
    reason_label: str,
    today: date,
) -> Dict[str, Any]:
    """The structured handoff summary.

    Args:
        events: the tracker's events.
        facts: what is known about the shopper.
        reason: the reason code.
        reason_label: its Chinese label.
        today: the shop's date (for late orders).
    """
    customer = facts.customer or {}
    phone = customer.get("phone")
    name = customer.get("name")
    if not phone and facts.orders and facts.verification == "order":
        phone = facts.orders[0].get("receiver_phone")
        name = name or facts.orders[0].get("receiver_name")
    latest_text = next((str(e.get("text") or "") for e in reversed(events) if e.get("event") == "user"), "")
    # Names known as names (the CRM's customer and receivers) are masked wherever the conversation repeats them.
    names = [customer.get("name"), *(order.get("receiver_name") for order in facts.orders)]
    return {
        "who": {
            "name": mask_name(name),
            "phone": mask_phone(phone) if phone else "",
            "customer_id": facts.customer_id or "",
            "verified": facts.verification != "none",
            "verification": VERIFICATION_LABELS.get(facts.verification, facts.verification),
            "tier": customer.get("tier") or "",
            "tier_name": customer.get("tier_name") or "",
        },
        "wanted": wanted(events),
        "orders": [describe_order_line(order, today) for order in facts.orders],
        "bot_told": [{"text": t.text, "at": t.at} for t in bot_told(events, names=names)],
        "reason": {"code": reason, "label": reason_label},
        "mood": "情绪激动" if any(is_angry(str(e.get("text") or "")) for e in _user_events(events)[-3:]) or is_angry(latest_text) else "平稳",
        "last_turns": [{"from": t.speaker, "text": t.text, "at": t.at} for t in last_turns(events, names=names)],
        "crm_unavailable": facts.crm_unavailable,
    }


def _clock(epoch: float, tz: tzinfo) -> str:
    if not epoch:
        return ""
    return f"{datetime.fromtimestamp(epoch, tz):%H:%M}"


def render_summary(summary: Mapping[str, Any], tz: tzinfo) -> str:
    """The summary as the agent reads it first, in Chinese (worded in ``handoff/texts.yml``)."""
    say = texts.say
    who = summary.get("who") or {}
    parts = [who.get("name") or say("summary_anonymous")]
    if who.get("phone"):
        parts[0] += say("summary_phone", phone=who["phone"])
    if who.get("tier"):
        parts.append(f"{who['tier']} {who.get('tier_name', '')}".strip())
    parts.append(str(who.get("verification") or say("summary_unverified")))
    if who.get("customer_id"):
        parts.append(say("summary_customer_id", customer_id=who["customer_id"]))
    lines = [say("summary_title"), say("summary_shopper", parts="，".join(parts))]
    reason = summary.get("reason") or {}
    mood = say("summary_reason_angry") if summary.get("mood") == "情绪激动" else ""
    lines.append(say("summary_reason", label=reason.get("label", ""), mood=mood))
    wanted_labels = summary.get("wanted") or []
    lines.append(say("summary_wanted", wanted=" → ".join(wanted_labels) if wanted_labels else say("summary_wanted_unclear")))
    orders = summary.get("orders") or []
    if orders:
        lines.append(say("summary_orders"))
        for order in orders:
            promised = order.get("promised_date")
            when = ""
            if promised:
                day = formatting.parse_date(str(promised))
                late = say("summary_order_late") if order.get("late") else ""
                when = say("summary_order_promised", month=day.month, day=day.day, late=late)
            shipping = ""
            if order.get("tracking_number"):
                shipping = say("summary_order_shipping", carrier=order["carrier"], tracking_number=order["tracking_number"])
            lines.append(say("summary_order", order_id=order["order_id"], status=order["status_label"], when=when, items=order["items"],
                             paid=order["paid"], shipping=shipping))
    elif summary.get("crm_unavailable"):
        lines.append(say("summary_orders_unavailable"))
    told = summary.get("bot_told") or []
    if told:
        lines.append(say("summary_bot_told"))
        lines.extend(say("summary_bot_told_line", time=_clock(t["at"], tz), text=t["text"]) for t in told)
    turns = summary.get("last_turns") or []
    if turns:
        lines.append(say("summary_last_turns"))
        lines.extend(say("summary_turn_shopper" if t["from"] == "shopper" else "summary_turn_bot", time=_clock(t["at"], tz), text=t["text"])
                     for t in turns)
    return "\n".join(lines)


def parse_rating(values: Iterable[Optional[str]]) -> Optional[int]:
    """A 1–5 rating from an entity value or the shopper's words (5分, 四星, ★★★★, 非常满意 …).

    Args:
        values: candidates in order of trust (the ``rating`` entity first, then the message text).

    Returns:
        The rating, or None when none of the values states one.
    """
    for value in values:
        if not value:
            continue
        text = str(value).strip()
        match = _DIGIT_RATING.search(text)
        if match:
            return int(match.group(1))
        match = _CHINESE_RATING.search(text)
        if match:
            return _CHINESE_DIGITS[match.group(1)]
        stars = text.count("★") + text.count("⭐")
        if 1 <= stars <= 5:
            return stars
        for words, score in _RATING_WORDS:
            if any(word in text for word in words):
                return score
    return None
