"""Replies shared by every flow: failures of the CRM and the offer of a human."""

from __future__ import annotations

from typing import Dict, List, Optional

from bot.texts import render

HUMAN_BUTTON = {"title": "转人工", "payload": "/human_agent"}

CRM_UNAVAILABLE = render("utter_crm_unavailable")
"""The answer when the CRM did not answer a lookup (``data/responses/orders.yml``)."""


def human_buttons(reason: Optional[str] = None) -> List[Dict[str, str]]:
    """The buttons that offer a human agent.

    Args:
        reason: the handoff reason code the agent should see (e.g. ``policy_undecided`` when the
            shopper contests what the policy decided); derived from the conversation when None.
    """
    if reason is None:
        return [dict(HUMAN_BUTTON)]
    return [{"title": HUMAN_BUTTON["title"], "payload": f'{HUMAN_BUTTON["payload"]}{{"handoff_reason":"{reason}"}}'}]
