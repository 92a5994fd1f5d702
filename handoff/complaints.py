"""What a shopper's message says about the service: anger, and a complaint about the agent.

Shared by the bot's handoff (:mod:`actions.handoff_summary`: the reason ``angry``, the mood of the
summary) and the human handoff, which opens a supervisor review when a shopper complains while an
agent serves them or right after (:func:`handoff.reviews.complaint_during_service`).
"""

from __future__ import annotations

from typing import Optional

ANGER_MARKERS = ("气死", "气炸", "骗子", "垃圾", "滚", "忍无可忍", "12315", "曝光", "举报", "太过分", "坑人", "坑爹", "黑心",
                 "什么破", "😡", "🤬", "💢", "！！", "!!!", "？？？", "???")
"""Words and signs of an angry message."""

COMPLAINT_MARKERS = ("投诉", "态度差", "态度太差", "态度很差", "态度恶劣", "态度不好", "不耐烦", "敷衍", "不专业", "差评", "什么客服",
                     "客服太差", "换个客服", "换一个客服", "换客服", "找你们领导", "找你们主管", "找主管", "叫你们经理", "找你们经理")
"""Words of a complaint about the service (the bot's NLU names the same messages ``complaint``)."""


def is_angry(text: Optional[str]) -> bool:
    """Whether a message reads as angry (strong words, rage emoji, repeated exclamation)."""
    if not text:
        return False
    return any(marker in text for marker in ANGER_MARKERS)


def is_complaint(text: Optional[str]) -> bool:
    """Whether a message complains about the service: angry, or naming a complaint (投诉, 态度差, 换客服 …)."""
    return bool(text) and (is_angry(text) or any(marker in str(text) for marker in COMPLAINT_MARKERS))
