"""What shoppers read about their handoff, in polite Chinese with concrete times.

Pure functions over times in the shop's timezone, shared by the bot's actions, the app channel
and the desk, so a shopper hears the same wording wherever the notice comes from.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

TEXTS_FILE = Path(__file__).with_name("texts.yml")
"""The handoff's notices worded as data (dedicated agents, reviews)."""

RATING_LABELS = {5: "非常满意", 4: "满意", 3: "一般", 2: "不满意", 1: "非常不满意"}


@lru_cache(maxsize=1)
def _texts() -> Dict[str, str]:
    with open(TEXTS_FILE, encoding="utf-8") as handle:
        return {str(k): str(v) for k, v in (yaml.safe_load(handle) or {})["texts"].items()}


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


def _place(position: int) -> str:
    return "您是下一位" if position <= 1 else f"您前面还有 {position - 1} 位顾客"


def eta_phrase(wait_s: int, now: datetime) -> str:
    """``预计今天 14:35 前接入（约 4 分钟）``."""
    at = now + timedelta(seconds=wait_s)
    return f"预计{clock(at, now)} 前接入（约 {minutes(wait_s)} 分钟）"


def queue_notice(position: int, wait_s: int, now: datetime, priority_lane: bool = False, tier_name: str = "") -> str:
    """What a shopper who just entered the queue is told."""
    lane = f"您是{tier_name}，已为您进入优先队列。" if priority_lane and tier_name else ("已为您进入优先队列。" if priority_lane else "")
    ahead = "您是下一位" if position <= 1 else f"您前面还有 {position - 1} 位顾客"
    return (
        f"好的，正在为您转接人工客服。{lane}{ahead}，{eta_phrase(wait_s, now)}。"
        "您刚才和我说的内容已整理好交给客服，不用再重复描述；等待期间您可以继续留言，客服都会看到。"
    )


def position_update(position: int, wait_s: Optional[int], now: datetime) -> str:
    """A pushed notice when the shopper's place in the queue changes."""
    ahead = "您已排到第 1 位，客服马上接入" if position <= 1 else f"排队进度更新：您前面还有 {position - 1} 位顾客"
    if wait_s is None:
        return f"{ahead}。"
    return f"{ahead}，{eta_phrase(wait_s, now)}。"


def waiting_ack(position: int, wait_s: Optional[int], now: datetime) -> str:
    """The answer to a message sent while waiting in the queue."""
    eta = f"，{eta_phrase(wait_s, now)}" if wait_s is not None else ""
    return f"已收到您的留言，会一并转给客服。{_place(position)}{eta}。"


def callback_resumed(callback_id: str, position: int, wait_s: Optional[int], now: datetime) -> str:
    """The answer to a shopper who came back to the conversation of an open callback ticket and is queued with it."""
    eta = f"，{eta_phrase(wait_s, now)}" if wait_s is not None else ""
    return say("callback_resumed", callback_id=callback_id, place=_place(position), eta=eta)


def with_agent_ack(agent_name: str) -> str:
    """The answer to a message sent while an agent has the conversation."""
    return f"客服{agent_name}正在为您服务，您的消息已送达。"


def agent_joined(agent_name: str) -> str:
    """Pushed when an agent claims the conversation."""
    return f"客服{agent_name}已接入，正在查看您和智能客服的对话记录，马上为您处理。"


def transferred(agent_name: str) -> str:
    """Pushed when the conversation moves to another agent."""
    return f"已为您转接到客服{agent_name}，之前的对话记录已同步给他，您不用再重复描述。"


def callback_offer(start: datetime, end: datetime, now: datetime, opening: str, closed_now: bool) -> str:
    """The callback promise when no agent can take the chat now."""
    why = f"现在不在人工客服服务时间（每天 {opening}）" if closed_now else "现在人工客服都不在线"
    return (
        f"抱歉，{why}。已为您登记人工回访：客服将在 {window(start, end, now)} 联系您，"
        "并在这个对话里回复您。您的问题已整理成摘要交给客服，不用再重复描述。在此之前，订单物流等问题我可以继续帮您查。"
    )


def _callback_instead(apology: str, start: datetime, end: datetime, now: datetime, kept: str = "您的留言都已保存") -> str:
    """A waiting (or interrupted) shopper's callback: why, the window, what is kept, who talks now."""
    return f"{apology}已为您登记人工回访：客服将在 {window(start, end, now)} 联系您，{kept}。现在由智能客服继续为您服务。"


def closed_while_waiting(start: datetime, end: datetime, now: datetime) -> str:
    """Pushed to shoppers still waiting when the desk closes."""
    return _callback_instead("抱歉，人工客服今天的服务时间已结束，没能及时接入您。", start, end, now)


def unattended_while_waiting(start: datetime, end: datetime, now: datetime) -> str:
    """Pushed to shoppers who waited long while no agent was online."""
    return _callback_instead("非常抱歉让您久等了，现在人工客服都不在线。", start, end, now)


def unclaimed_while_waiting(start: datetime, end: datetime, now: datetime) -> str:
    """Pushed to shoppers whom no agent could take within ``recovery.unclaimed_callback_s``."""
    return _callback_instead("非常抱歉让您久等了，客服一直忙不过来，没能及时接入您。", start, end, now)


def requeued_agent_offline(agent_name: str, position: int, wait_s: Optional[int], now: datetime) -> str:
    """Pushed when the agent went offline and the conversation is back in the queue in its old place."""
    eta = f"，{eta_phrase(wait_s, now)}" if wait_s is not None else ""
    return (
        f"非常抱歉，为您服务的客服{agent_name}暂时离线了。已为您重新排队，并保留您原来的排队顺序：{_place(position)}{eta}。"
        "您和客服的对话记录都已保存，接手的客服会接着处理，不用再重复描述。"
    )


def callback_agent_offline(agent_name: str, start: datetime, end: datetime, now: datetime, closed_now: bool) -> str:
    """Pushed when the agent went offline and no one can take over now (out of hours, or nobody online)."""
    why = "现在已过人工客服的服务时间" if closed_now else "现在也没有其他客服在线"
    return _callback_instead(f"非常抱歉，为您服务的客服{agent_name}暂时离线了，{why}。", start, end, now, "您和客服的对话记录都已保存")


def resolved(agent_name: str, outcome: str) -> str:
    """Pushed when the agent ends the conversation."""
    return f"客服{agent_name}已结束本次人工服务（处理结果：{outcome}）。接下来由智能客服继续为您服务，有问题随时问我。"


def rating_prompt(agent_name: str) -> str:
    """The 1–5 rating question after a handoff."""
    return f"请您为客服{agent_name}本次的服务打个分（5 分为非常满意），您的评价会帮助我们改进："


def rating_buttons() -> List[Dict[str, str]]:
    """Buttons ``/rate_service{"rating":"5"}`` … ``"1"``, best first."""
    return [
        {"title": f"{score}分 {RATING_LABELS[score]}", "payload": "/rate_service" + json.dumps({"rating": str(score)}, separators=(",", ":"))}
        for score in (5, 4, 3, 2, 1)
    ]


def rating_thanks(score: int) -> str:
    """The bot's thanks for a rating that belongs to no handoff (a low one after a handoff opens a review instead)."""
    if score <= 2:
        return f"收到您的 {score} 分评价，非常抱歉这次没能让您满意。您的意见已经记录下来；如果问题还没解决，随时发“转人工”，由人工客服为您处理。"
    return f"收到您的 {score} 分评价，感谢您的支持！还有其他问题也可以随时问我。"


def cancelled() -> str:
    """Answer when a waiting shopper cancels the handoff."""
    return "好的，已为您取消人工排队，现在由智能客服继续为您服务。需要时随时发“转人工”。"
