"""How handoff records are shown to agents: pure functions from records to the API's JSON."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from handoff.policy import ServicePolicy

RECORD_FIELDS = (
    "handoff_id", "sender", "status", "customer_id", "tier", "tier_name", "priority", "reason", "reason_label",
    "intents", "agent", "offered_to", "enqueued_at", "queued_at", "claimed_at", "first_response_at", "resolved_at",
    "ended_at", "resolution_code", "rating", "wait_s", "handle_s", "first_response_s", "after_sales",
    "sla_first_response_due", "sla_resolution_due", "transfers", "channel", "callback_id", "refined_at",
)


def _headline(record: Mapping[str, Any]) -> str:
    summary = record.get("summary") or {}
    wanted = summary.get("wanted") or []
    return "、".join(str(w) for w in wanted[:3]) if wanted else ""


def _who(record: Mapping[str, Any]) -> Dict[str, Any]:
    summary = record.get("summary") or {}
    who = summary.get("who") or {}
    return {"name": who.get("name", ""), "phone": who.get("phone", ""), "verified": who.get("verified", False)}


def queue_item(record: Mapping[str, Any], me: str, now: float, policy: ServicePolicy, names: Mapping[str, str],
               my_team: bool = True) -> Dict[str, Any]:
    """One waiting conversation as the queue list shows it (``my_team``: the agent may claim it as far as its team goes)."""
    enqueued = float(record.get("enqueued_at") or now)
    offered_to = record.get("offered_to") or ""
    offer_left = max(0.0, float(record.get("offer_until") or 0) - now) if offered_to else 0.0
    if offer_left <= 0:
        offered_to = ""
    due = float(record.get("sla_first_response_due") or enqueued + policy.first_response_s)
    return {
        "sender": record.get("sender"),
        "handoff_id": record.get("handoff_id"),
        "position": record.get("position"),
        "lane": "priority" if record.get("priority") else "normal",
        "lane_label": "优先" if record.get("priority") else "普通",
        "tier": record.get("tier") or "",
        "tier_name": record.get("tier_name") or "",
        "reason": record.get("reason"),
        "reason_label": record.get("reason_label"),
        "waiting_s": round(now - enqueued, 1),
        "first_response_due_in_s": round(due - now, 1),
        "sla_breached": now > due,
        "after_sales": bool(record.get("after_sales")),
        "offered_to": offered_to,
        "offered_to_name": names.get(offered_to, offered_to) if offered_to else "",
        "offer_left_s": round(offer_left, 1),
        "offered_to_me": offered_to == me,
        "team": record.get("team") or "",
        "team_name": record.get("team_name") or "",
        "my_team": my_team,
        "claimable": (not offered_to or offered_to == me) and my_team,
        "headline": _headline(record),
        "who": _who(record),
        "summary_pending": summary_pending(record),
    }


def summary_pending(record: Mapping[str, Any]) -> bool:
    """Whether the record still has the short summary the channel wrote (the bot's full one follows)."""
    return bool((record.get("summary") or {}).get("preliminary"))


def mine_item(record: Mapping[str, Any], now: float) -> Dict[str, Any]:
    """One conversation the agent has, as the "my conversations" list shows it."""
    resolution_due = record.get("sla_resolution_due")
    return {
        "sender": record.get("sender"),
        "handoff_id": record.get("handoff_id"),
        "tier_name": record.get("tier_name") or "",
        "reason_label": record.get("reason_label"),
        "claimed_at": record.get("claimed_at"),
        "last_shopper_at": record.get("last_shopper_at"),
        "awaiting_first_response": not record.get("first_response_at"),
        "resolution_due_in_s": round(float(resolution_due) - now, 1) if resolution_due else None,
        "headline": _headline(record),
        "who": _who(record),
    }


def record_view(record: Mapping[str, Any]) -> Dict[str, Any]:
    """The fields of a handoff record the conversation view shows."""
    return {name: record.get(name) for name in RECORD_FIELDS}


def history_item(record: Mapping[str, Any], names: Mapping[str, str]) -> Dict[str, Any]:
    """One earlier handoff of the same conversation."""
    agent = record.get("agent") or ""
    return {
        "handoff_id": record.get("handoff_id"),
        "status": record.get("status"),
        "agent": agent,
        "agent_name": names.get(agent, agent),
        "reason_label": record.get("reason_label"),
        "resolution_code": record.get("resolution_code"),
        "rating": record.get("rating"),
        "enqueued_at": record.get("enqueued_at"),
    }


def callback_item(ticket: Mapping[str, Any], policy: ServicePolicy, reasons: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """One callback ticket as the callbacks list shows it."""
    reason = str(ticket.get("reason") or "")
    summary = ticket.get("summary") or {}
    return {
        "callback_id": ticket.get("callback_id"),
        "sender": ticket.get("sender"),
        "customer_id": ticket.get("customer_id") or "",
        "phone_masked": ticket.get("phone_masked") or "",
        "tier": ticket.get("tier") or "",
        "reason": reason,
        "reason_label": (reasons or policy.reasons).get(reason, reason),
        "window_start": ticket.get("window_start"),
        "window_end": ticket.get("window_end"),
        "due_in_s": ticket.get("due_in_s"),
        "overdue": bool(ticket.get("overdue")),
        "after_sales": bool(ticket.get("after_sales")),
        "status": ticket.get("status"),
        "done_by": ticket.get("done_by") or "",
        "done_at": ticket.get("done_at"),
        "resolution_code": ticket.get("resolution_code") or "",
        "summary_text": ticket.get("summary_text") or "",
        "headline": "、".join(str(w) for w in (summary.get("wanted") or [])[:3]),
    }


def sort_mine(items: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The agent's conversations, oldest claim first."""
    return sorted(items, key=lambda item: item.get("claimed_at") or 0)
