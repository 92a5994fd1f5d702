"""Conversation mechanics shared by the multi-turn flows (redeeming points, changing an order).

A flow keeps its state in slots: ``pending_flow`` (featurized, so rules can route the shopper's
next answer back to the flow's action), ``flow_step`` (which question is open) and
``flow_invalid_answers`` (answers in a row that could not be used). The helpers here read the
tracker; they never talk to the CRM.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Iterable, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from actions.replies import human_buttons
from bot.texts import render

PENDING_FLOW_SLOT = "pending_flow"
FLOW_STEP_SLOT = "flow_step"
INVALID_ANSWERS_SLOT = "flow_invalid_answers"
MAX_INVALID_ANSWERS = 2

# The words every flow shares (data/responses/orders.yml).
ANYTHING_ELSE = render("utter_flow_anything_else")
OFFER_HUMAN_AFTER_INVALID = render("utter_flow_offer_human")
RESUME_PREFIX = render("utter_flow_resume")

# Intents that answer the open question of a flow (anything else is a digression). Answers made
# mostly of digits (a coupon 「满199减20」, a phone and an address) are often read as a rating.
ANSWER_INTENTS = frozenset({"inform", "affirm", "deny", "stop", "nlu_fallback", "rate_service"})
STOP_INTENTS = frozenset({"stop"})
# Intents after which a rule lets the flow action close the flow silently (the goodbye was said).
SILENT_END_INTENTS = frozenset({"goodbye"})
BUTTON = Dict[str, str]


def latest_intent(tracker: Tracker) -> str:
    """Name of the intent of the shopper's latest message ("" when unknown)."""
    intent = (tracker.latest_message or {}).get("intent") or {}
    return str(intent.get("name") or "")


def latest_text(tracker: Tracker) -> str:
    """What the shopper typed last."""
    return str((tracker.latest_message or {}).get("text") or "")


def latest_entity(tracker: Tracker, entity: str) -> Optional[str]:
    """The value of ``entity`` in the shopper's latest message, if any."""
    value = next(tracker.get_latest_entity_values(entity), None)
    return str(value) if value else None


def current_step(tracker: Tracker, flow: str) -> Optional[str]:
    """The open step of ``flow``, or None when that flow is not the pending one."""
    if tracker.get_slot(PENDING_FLOW_SLOT) != flow:
        return None
    step = tracker.get_slot(FLOW_STEP_SLOT)
    return str(step) if step else None


def invalid_answers(tracker: Tracker) -> int:
    """How many answers in a row the open flow could not use."""
    return int(tracker.get_slot(INVALID_ANSWERS_SLOT) or 0)


def last_bot_action(tracker: Tracker) -> Optional[str]:
    """The last action (other than listening) that ran before the shopper's latest message.

    Used to accept a 「确认」 only when the question it answers is the bot's latest one: after a
    handoff notice, a new session or any other action in between, the question is asked again.
    """
    events: List[Dict[str, Any]] = list(tracker.events or [])
    index = len(events) - 1
    while index >= 0 and events[index].get("event") != "user":
        index -= 1
    for event in reversed(events[: max(index, 0)]):
        if event.get("event") == "action" and event.get("name") not in ("action_listen", None):
            return str(event["name"])
    return None


def turn_id(tracker: Tracker) -> str:
    """A stable identifier of the shopper's latest turn (the same when Rasa retries the turn)."""
    message = tracker.latest_message or {}
    if message.get("message_id"):
        return str(message["message_id"])
    user_events = [event for event in tracker.events or [] if event.get("event") == "user"]
    if user_events:
        last = user_events[-1]
        return str(last.get("message_id") or last.get("timestamp") or len(user_events))
    return "0"


def idempotency_key(sender_id: str, turn: str, *parts: str) -> str:
    """An idempotency key derived from the conversation and the turn that asked for confirmation.

    Args:
        sender_id: the conversation id.
        turn: :func:`turn_id` of the turn in which the confirmation question was asked.
        parts: what is being confirmed (e.g. the coupon id).
    """
    digest = hashlib.sha256("\n".join((sender_id, turn, *parts)).encode("utf-8")).hexdigest()
    return f"chat-{digest[:40]}"


def flow_events(flow: Optional[str], step: Optional[str], invalid: int = 0) -> List[EventType]:
    """The slot events that put the conversation in ``flow`` at ``step`` (None, None: no flow)."""
    return [
        SlotSet(PENDING_FLOW_SLOT, flow),
        SlotSet(FLOW_STEP_SLOT, step),
        SlotSet(INVALID_ANSWERS_SLOT, float(invalid)),
    ]


def end_flow_events(extra_slots: Iterable[str] = ()) -> List[EventType]:
    """Slot events that close the flow and forget its working slots."""
    return flow_events(None, None) + [SlotSet(name, None) for name in extra_slots]


def with_closing(text: str) -> str:
    """A final reply followed by the question whether anything else is needed."""
    return f"{text}\n{ANYTHING_ELSE}"


def invalid_answer_reply(text: str, buttons: List[BUTTON], count: int) -> Dict[str, Any]:
    """The reply to an answer the flow could not use: the question again, plus a human after two.

    Args:
        text: the question, asked again.
        buttons: the question's buttons.
        count: invalid answers in a row, including this one.
    """
    if count >= MAX_INVALID_ANSWERS:
        return {"text": f"{text}\n{OFFER_HUMAN_AFTER_INVALID}", "buttons": list(buttons) + human_buttons()}
    return {"text": text, "buttons": list(buttons)}
