"""Replies shared by every flow: failures of the CRM and the offer of a human."""

from __future__ import annotations

from typing import Dict, List, Optional

HUMAN_BUTTON = {"title": "转人工", "payload": "/human_agent"}

CRM_UNAVAILABLE = (
    "抱歉，订单系统暂时没有响应，我这次没能查到结果。"
    "您可以 1 分钟后再问我一次，也可以点“转人工”，由人工客服为您查询。"
)


def human_buttons(reason: Optional[str] = None) -> List[Dict[str, str]]:
    """The buttons that offer a human agent.

    Args:
        reason: the handoff reason code the agent should see (e.g. ``policy_undecided`` when the
            shopper contests what the policy decided); derived from the conversation when None.
    """
    if reason is None:
        return [dict(HUMAN_BUTTON)]
    return [{"title": HUMAN_BUTTON["title"], "payload": f'{HUMAN_BUTTON["payload"]}{{"handoff_reason":"{reason}"}}'}]
