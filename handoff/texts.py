"""What shoppers read about their handoff, in polite Chinese with concrete times.

Pure functions over times in the shop's timezone, shared by the bot's actions, the app channel
and the desk, so a shopper hears the same wording wherever the notice comes from. The wording is
data: ``handoff/texts.yml``, read once per process.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

TEXTS_FILE = Path(__file__).with_name("texts.yml")
"""The handoff's notices worded as data."""


@lru_cache(maxsize=1)
def _file() -> Dict[str, Any]:
    with open(TEXTS_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@lru_cache(maxsize=1)
def _texts() -> Dict[str, str]:
    return {str(k): str(v) for k, v in _file()["texts"].items()}


def rating_labels() -> Dict[int, str]:
    """The label of each rating, 5 (非常满意) to 1 (非常不满意)."""
    return {int(k): str(v) for k, v in _file()["rating_labels"].items()}


def say(name: str, /, **values: Any) -> str:
    """The notice ``name`` of ``handoff/texts.yml`` filled with ``values`` (read once per process)."""
    return _texts()[name].format_map(values)


def day_label(moment: datetime, now: datetime) -> str:
    """The day of ``moment`` as a shopper reads it at ``now``: ``今天``, ``明天``, else ``12月8日``.

    Both are taken in the timezone of ``now`` (the shop's: callers pass ``ctx.local(...)``), so a
    time just past midnight is 明天 before midnight and 今天 after it, never a bare clock time.
    """
    days = (moment.astimezone(now.tzinfo).date() - now.date()).days
    if days == 0:
        return "今天"
    if days == 1:
        return "明天"
    local = moment.astimezone(now.tzinfo)
    return f"{local.month}月{local.day}日"


def clock(moment: datetime, now: datetime) -> str:
    """A promised time with its day: ``今天 14:35``, ``明天 08:00``, ``11月25日 08:00`` beyond tomorrow."""
    return f"{day_label(moment, now)} {moment.astimezone(now.tzinfo):%H:%M}"


def window(start: datetime, end: datetime, now: datetime) -> str:
    """A time window: ``今天 14:40–15:40``, ``明天（11月24日）08:00–09:00``, ``11月25日 08:00–09:00``.

    One that runs past midnight ends at ``24:00``, or names its end's day too (``今天 23:20–明天 00:20``).
    """
    start, end = start.astimezone(now.tzinfo), end.astimezone(now.tzinfo)
    day = day_label(start, now)
    if day == "明天":
        day = f"明天（{start.month}月{start.day}日）"
    ends = f"{end:%H:%M}"
    if end.date() != start.date():
        ends = "24:00" if ends == "00:00" and (end.date() - start.date()).days == 1 else clock(end, now)
    return f"{day} {start:%H:%M}–{ends}"


def minutes(seconds: float) -> int:
    """Whole minutes, rounded up, at least 1."""
    return max(1, int(-(-seconds // 60)))


def place(position: int) -> str:
    """``您是下一位``, or ``您前面还有 2 位顾客``."""
    return say("place_next") if position <= 1 else say("place_ahead", ahead=position - 1)


def eta_phrase(wait_s: int, now: datetime) -> str:
    """``预计今天 14:35 前接入（约 4 分钟）``."""
    return say("eta", at=clock(now + timedelta(seconds=wait_s), now), minutes=minutes(wait_s))


def _eta(wait_s: Optional[int], now: datetime) -> str:
    """``，预计今天 14:35 前接入（约 4 分钟）``, or empty when the wait cannot be estimated."""
    return f"，{eta_phrase(wait_s, now)}" if wait_s is not None else ""


def queue_notice(position: int, wait_s: int, now: datetime, priority_lane: bool = False, tier_name: str = "") -> str:
    """What a shopper who just entered the queue is told."""
    lane = (say("priority_lane_tier", tier_name=tier_name) if tier_name else say("priority_lane")) if priority_lane else ""
    return say("queue_notice", lane=lane, place=place(position), eta=_eta(wait_s, now))


def position_update(position: int, wait_s: Optional[int], now: datetime) -> str:
    """A pushed notice when the shopper's place in the queue changes."""
    if position <= 1:
        return say("position_first", eta=_eta(wait_s, now))
    return say("position_ahead", ahead=position - 1, eta=_eta(wait_s, now))


def already_waiting(position: int, wait_s: int, now: datetime) -> str:
    """The answer to a shopper who asks for a human again while already waiting in the queue."""
    return say("already_waiting", place=place(position), eta=_eta(wait_s, now))


def waiting_ack(position: int, wait_s: Optional[int], now: datetime) -> str:
    """The answer to a message sent while waiting in the queue."""
    return say("waiting_ack", place=place(position), eta=_eta(wait_s, now))


def callback_resumed(callback_id: str, position: int, wait_s: Optional[int], now: datetime) -> str:
    """The answer to a shopper who came back to the conversation of an open callback ticket and is queued with it."""
    return say("callback_resumed", callback_id=callback_id, place=place(position), eta=_eta(wait_s, now))


def with_agent_ack(agent_name: str) -> str:
    """The answer to a message sent while an agent has the conversation."""
    return say("with_agent_ack", agent=agent_name)


def agent_joined(agent_name: str) -> str:
    """Pushed when an agent claims the conversation."""
    return say("agent_joined", agent=agent_name)


def transferred(agent_name: str) -> str:
    """Pushed when the conversation moves to another agent."""
    return say("transferred", agent=agent_name)


def callback_offer(start: datetime, end: datetime, now: datetime, opening: str, closed_now: bool) -> str:
    """The callback promise when no agent can take the chat now."""
    why = say("callback_offer_closed", opening=opening) if closed_now else say("callback_offer_offline")
    return say("callback_offer", why=why, window=window(start, end, now))


def _callback_instead(apology: str, start: datetime, end: datetime, now: datetime, kept: str = "kept_messages") -> str:
    """A waiting (or interrupted) shopper's callback: why, the window, what is kept (a text's name), who talks now."""
    return say("callback_instead", apology=apology, window=window(start, end, now), kept=say(kept))


def closed_while_waiting(start: datetime, end: datetime, now: datetime) -> str:
    """Pushed to shoppers still waiting when the desk closes."""
    return _callback_instead(say("callback_apology_closed"), start, end, now)


def unattended_while_waiting(start: datetime, end: datetime, now: datetime) -> str:
    """Pushed to shoppers who waited long while no agent was online."""
    return _callback_instead(say("callback_apology_unattended"), start, end, now)


def unclaimed_while_waiting(start: datetime, end: datetime, now: datetime) -> str:
    """Pushed to shoppers whom no agent could take within ``recovery.unclaimed_callback_s``."""
    return _callback_instead(say("callback_apology_unclaimed"), start, end, now)


def requeued_agent_offline(agent_name: str, position: int, wait_s: Optional[int], now: datetime) -> str:
    """Pushed when the agent went offline and the conversation is back in the queue in its old place."""
    return say("requeued_agent_offline", agent=agent_name, place=place(position), eta=_eta(wait_s, now))


def callback_agent_offline(agent_name: str, start: datetime, end: datetime, now: datetime, closed_now: bool) -> str:
    """Pushed when the agent went offline and no one can take over now (out of hours, or nobody online)."""
    why = say("agent_offline_closed") if closed_now else say("agent_offline_nobody")
    apology = say("callback_apology_agent_offline", agent=agent_name, why=why)
    return _callback_instead(apology, start, end, now, "kept_transcript")


def resolved(agent_name: str, outcome: str) -> str:
    """Pushed when the agent ends the conversation."""
    return say("resolved", agent=agent_name, outcome=outcome)


def rating_prompt(agent_name: str) -> str:
    """The 1–5 rating question after a handoff."""
    return say("rating_prompt", agent=agent_name)


def rating_buttons() -> List[Dict[str, str]]:
    """Buttons ``/rate_service{"rating":"5"}`` … ``"1"``, best first."""
    labels = rating_labels()
    return [
        {"title": say("rating_button", score=score, label=labels[score]),
         "payload": "/rate_service" + json.dumps({"rating": str(score)}, separators=(",", ":"))}
        for score in (5, 4, 3, 2, 1)
    ]


def rating_thanks(score: int) -> str:
    """The bot's thanks for a rating that belongs to no handoff (a low one after a handoff opens a review instead)."""
    return say("rating_thanks_low" if score <= 2 else "rating_thanks", score=score)


def cancelled() -> str:
    """Answer when a waiting shopper cancels the handoff."""
    return say("cancelled")
