"""Handing the conversation to a human: ``action_handoff``, ``action_nlu_fallback`` (help first, a
human the second time in a row) and ``action_record_rating``.

The handoff builds the Chinese summary from the tracker and the CRM, then either enqueues the
conversation (agents online, within opening hours: the shopper hears their position and a
concrete ETA) or records a callback ticket with a concrete window from the opening hours. Redis is
reached through redis.asyncio with one pool per process and explicit timeouts; the CRM through the
one CRM client, bounded so a slow CRM only thins the summary and never delays the handoff long.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.crm import CRMError, get_crm_client
from actions.handoff_summary import (
    ShopperFacts,
    build_summary,
    consecutive_fallbacks,
    determine_reason,
    intents,
    mentioned_order_ids,
    parse_rating,
    render_summary,
)
from actions.shopper import Shopper, shopper_from_tracker
from bot.settings import get_settings
from handoff import agents as presence
from handoff import keys, texts
from handoff.callbacks import create_callback
from handoff.context import REDIS_FAILURES, HandoffContext, redis_client
from handoff.express import opened_handoff, refine
from handoff.models import CallbackTicket, HandoffRequest
from handoff.policy import (
    estimate_wait_s,
    is_after_sales,
    is_open,
    is_priority_tier,
    load_policy,
    opening_hours_text,
    priority_score,
    reason_label,
)
from handoff.queue import enqueue, estimated_wait, queue_position
from handoff.reviews import complaint_after_service, open_low_rating_review
from handoff.stats import record_rating
from handoff.windows import book_window

logger = logging.getLogger(__name__)

REASON_SLOT = "handoff_reason"
COMPLAINT_REASONS = ("complaint", "angry")
"""Handoff reasons that, right after an agent served the shopper, open a supervisor review of that agent."""
FLOW_FAILURES_SLOT = "flow_invalid_answers"
"""Answers in a row a multi-turn flow could not use; two mean the flow failed twice."""
CRM_BUDGET_S = 2.5
"""Longest the handoff waits for the CRM's answers before summarising without them."""

HANDOFF_FAILED = texts.say("handoff_failed")
"""The answer when the handoff could not be submitted (``handoff/texts.yml``)."""

_contexts: Dict[int, Tuple[asyncio.AbstractEventLoop, HandoffContext]] = {}
def handoff_context() -> HandoffContext:
    """The action server's handoff context: one Redis pool per event loop, settings and policy read once."""
    loop = asyncio.get_running_loop()
    found = _contexts.get(id(loop))
    if found is not None and found[0] is loop:
        return found[1]
    settings = get_settings()
    ctx = HandoffContext(
        redis=redis_client(settings.effective_redis_url, settings.handoff_redis_timeout_s),
        policy=load_policy(settings.handoff_policy_file),
        tz=ZoneInfo(settings.shop_timezone),
        outbox_ttl_s=settings.tracker_ttl_s,
        redeliver_idle_ms=settings.handoff_redeliver_idle_ms,
    )
    _contexts[id(loop)] = (loop, ctx)
    return ctx


def set_handoff_context(ctx: Optional[HandoffContext]) -> None:
    """Use a given context in the running loop (tests), or forget it (None)."""
    loop = asyncio.get_running_loop()
    if ctx is None:
        _contexts.pop(id(loop), None)
    else:
        _contexts[id(loop)] = (loop, ctx)


async def _shopper_facts(tracker: Tracker, shopper: Shopper) -> ShopperFacts:
    crm = get_crm_client()
    verification = "signed" if shopper.is_verified_customer else ("order" if shopper.verified_order_id else "none")
    order_ids = mentioned_order_ids(tracker.events, tracker.slots)
    if verification == "none":
        return ShopperFacts(None, "none")

    async def customer() -> Optional[Dict[str, Any]]:
        return await crm.get_customer(shopper.customer_id) if shopper.customer_id else None

    async def order(order_id: str) -> Optional[Dict[str, Any]]:
        try:
            found = await crm.get_order(order_id)
        except CRMError:
            return None
        return found if shopper.may_see(found) else None

    try:
        results = await asyncio.wait_for(asyncio.gather(customer(), *(order(i) for i in order_ids)), timeout=CRM_BUDGET_S)
    except (CRMError, asyncio.TimeoutError) as error:
        logger.warning("handoff.crm.unavailable error=%s", type(error).__name__)
        return ShopperFacts(shopper.customer_id, verification, crm_unavailable=True)
    profile, orders = results[0], [o for o in results[1:] if o]
    return ShopperFacts(shopper.customer_id, verification, profile, orders)


PAYLOAD_EXTRACTOR = "RegexMessageHandler"
"""Rasa's name for the entities of a ``/intent{...}`` payload (the channels pass only offered ones)."""


def offered_reason(tracker: Tracker) -> Optional[str]:
    """The handoff reason of a button the bot offered (``/human_agent{"handoff_reason": ...}``), if pressed.

    Only an entity of a payload counts, and only a reason code the service policy knows: nothing a
    shopper types sets the reason an agent reads.
    """
    entities = (tracker.latest_message or {}).get("entities") or []
    for entity in entities:
        if entity.get("entity") == REASON_SLOT and entity.get("extractor") == PAYLOAD_EXTRACTOR:
            value = entity.get("value")
            if isinstance(value, str) and value in handoff_context().policy.reasons:
                return value
    return None


def _latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def _channel(tracker: Tracker) -> str:
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    return str(metadata.get("channel") or tracker.get_latest_input_channel() or "app")


async def hand_off(dispatcher: CollectingDispatcher, tracker: Tracker, reason: Optional[str] = None) -> List[EventType]:
    """Summarise the conversation and give it to a human now, or promise a callback.

    Args:
        dispatcher: where the shopper's answer goes.
        tracker: the conversation.
        reason: the reason code when the caller knows it (else derived from the tracker).

    Returns:
        Events clearing the ``handoff_reason`` slot.
    """
    ctx = handoff_context()
    now = ctx.now()
    local_now = ctx.local(now)
    shopper = shopper_from_tracker(tracker)
    latest_intent = str(((tracker.latest_message or {}).get("intent") or {}).get("name") or "")
    failures = max(float(tracker.get_slot("failed_attempts") or 0), float(tracker.get_slot(FLOW_FAILURES_SLOT) or 0))
    requested = offered_reason(tracker) or tracker.get_slot(REASON_SLOT)
    reason = reason or determine_reason(latest_intent, _latest_text(tracker), requested, failures,
                                        consecutive_fallbacks(tracker.events))
    label = reason_label(ctx.policy, reason)
    facts = await _shopper_facts(tracker, shopper)
    summary = build_summary(tracker.events, facts, reason, label, local_now.date())
    summary_text = render_summary(summary, ctx.tz)
    tier = (facts.customer or {}).get("tier") or None
    tier_name = str((facts.customer or {}).get("tier_name") or "")
    asked_about = intents(tracker.events)
    clear = [SlotSet(REASON_SLOT, None)]
    try:
        if reason in COMPLAINT_REASONS:  # about the agent who just served them: a supervisor review first
            review = await complaint_after_service(ctx, tracker.sender_id, _latest_text(tracker))
            if review:
                dispatcher.utter_message(text=review)
        available = await presence.availability(ctx)
        if _opened_by_channel(tracker) or (is_open(ctx.policy, local_now, ctx.tz) and available.online):
            await _enqueue(dispatcher, ctx, tracker, shopper, reason, tier, tier_name, asked_about, summary, summary_text, now, available)
        else:
            await _offer_callback(dispatcher, ctx, tracker, shopper, reason, tier, summary, summary_text, now, asked_about)
    except REDIS_FAILURES as error:
        logger.error("handoff.redis_unavailable sender=%s error=%s", tracker.sender_id, type(error).__name__)
        dispatcher.utter_message(text=HANDOFF_FAILED)
    return clear


def _opened_by_channel(tracker: Tracker) -> Optional[Tuple[str, float]]:
    """The handoff the channel queued for this message (an explicit 「转人工」), if it did."""
    return opened_handoff((tracker.latest_message or {}).get("metadata"))


async def _enqueue(
    dispatcher: CollectingDispatcher, ctx: HandoffContext, tracker: Tracker, shopper: Shopper, reason: str, tier: Optional[str],
    tier_name: str, asked_about: List[str], summary: Dict[str, Any], summary_text: str, now: float, available: presence.Availability,
) -> None:
    opened = _opened_by_channel(tracker)
    handoff_id, enqueued_at = opened or (keys.new_handoff_id(), now)
    score = priority_score(ctx.policy, enqueued_at, tier, reason)
    position = await queue_position(ctx, handoff_id, score)
    wait_s = estimate_wait_s(ctx.policy, position, available.free_slots, available.total_slots, available.handle_s) or ctx.policy.min_wait_s
    request = HandoffRequest(
        handoff_id=handoff_id, sender=tracker.sender_id, customer_id=shopper.customer_id, tier=tier, tier_name=tier_name,
        reason=reason, intents=asked_about, summary=summary, summary_text=summary_text, enqueued_at=enqueued_at,
        channel=_channel(tracker), position_told=position,
    )
    if opened is not None and await refine(ctx, request):
        created, existing = True, handoff_id
    else:
        if opened is not None:  # the handoff the channel opened has ended meanwhile: open a new one
            request = dataclasses.replace(request, handoff_id=keys.new_handoff_id(), enqueued_at=now)
        created, existing = await enqueue(ctx, request)
    local_now = ctx.local(now)
    if not created:
        position = await queue_position(ctx, existing)
        wait_s = await estimated_wait(ctx, position) or ctx.policy.min_wait_s
        dispatcher.utter_message(text=texts.already_waiting(position, wait_s, local_now))
        return
    logger.info("handoff.enqueued sender=%s handoff=%s reason=%s position=%d", tracker.sender_id, request.handoff_id, reason, position)
    dispatcher.utter_message(text=texts.queue_notice(position, wait_s, local_now, is_priority_tier(ctx.policy, tier), tier_name))


async def _offer_callback(
    dispatcher: CollectingDispatcher, ctx: HandoffContext, tracker: Tracker, shopper: Shopper, reason: str, tier: Optional[str],
    summary: Dict[str, Any], summary_text: str, now: float, asked_about: Sequence[str],
) -> None:
    local_now = ctx.local(now)
    callback_id = keys.new_callback_id()
    window = await book_window(ctx, callback_id, local_now)  # the first window with room
    if window is None:  # no window opens, or every one is full for three weeks
        dispatcher.utter_message(text=texts.say("callbacks_full"))
        return
    start, end = window
    ticket = CallbackTicket(
        callback_id=callback_id, sender=tracker.sender_id, customer_id=shopper.customer_id,
        phone_masked=str((summary.get("who") or {}).get("phone") or ""), tier=tier, reason=reason, summary=summary,
        summary_text=summary_text, window_start=start.timestamp(), window_end=end.timestamp(), created_at=now,
        after_sales=is_after_sales(ctx.policy, reason, asked_about),
    )
    await create_callback(ctx, ticket)
    logger.info("handoff.callback sender=%s callback=%s reason=%s", tracker.sender_id, ticket.callback_id, reason)
    closed_now = not is_open(ctx.policy, local_now, ctx.tz)
    dispatcher.utter_message(text=texts.callback_offer(start, end, local_now, opening_hours_text(ctx.policy), closed_now))


class ActionHandoff(Action):
    """Hands the conversation to a human agent (or books a callback) with a full summary."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """Summarise, enqueue or book a callback, and tell the shopper what happens and when."""
        return await hand_off(dispatcher, tracker)


class ActionNluFallback(Action):
    """The bot did not understand: offer help the first time, a human the second time in a row."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_nlu_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """Utter the default help, or hand off after two misunderstandings in a row."""
        if consecutive_fallbacks(tracker.events) >= 2:
            return await hand_off(dispatcher, tracker, reason="fallback")
        dispatcher.utter_message(response="utter_default")
        return []


class ActionRecordRating(Action):
    """Stores the shopper's 1–5 rating against the handoff that just ended."""

    def name(self) -> str:
        """Name of the action in the domain."""
        return "action_record_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        """Read the rating from the button's entity or the shopper's words and record it."""
        score = parse_rating([next(tracker.get_latest_entity_values("rating"), None), _latest_text(tracker)])
        if score is None:
            dispatcher.utter_message(text=texts.say("ask_rating"), buttons=texts.rating_buttons())
            return []
        try:
            handoff_id = await record_rating(handoff_context(), tracker.sender_id, score)
        except REDIS_FAILURES as error:
            logger.error("handoff.rating.failed sender=%s error=%s", tracker.sender_id, type(error).__name__)
            dispatcher.utter_message(text=texts.say("rating_unavailable"))
            return []
        logger.info("handoff.rating sender=%s handoff=%s score=%d", tracker.sender_id, handoff_id or "-", score)
        if handoff_id and score <= 2:
            dispatcher.utter_message(text=await open_low_rating_review(handoff_context(), handoff_id, tracker.sender_id, score))
            return []
        dispatcher.utter_message(text=texts.rating_thanks(score))
        return []
