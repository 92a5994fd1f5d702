"""Replies shared by every flow: failures of the CRM and the offer of a human."""

from __future__ import annotations

from typing import Dict, List

HUMAN_BUTTON = {"title": "转人工", "payload": "/human_agent"}

CRM_UNAVAILABLE = (
    "抱歉，订单系统暂时没有响应，我这次没能查到结果。"
    "您可以 1 分钟后再问我一次，也可以点“转人工”，由人工客服为您查询。"
)


def human_buttons() -> List[Dict[str, str]]:
    """The buttons that offer a human agent."""
    return [dict(HUMAN_BUTTON)]
