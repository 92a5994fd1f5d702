"""Who may see what at the desk.

- A waiting conversation (never taken by an agent: queued, offered, or cancelled or turned into a
  callback before anyone took it) may be read by every agent, so they can look at the summary
  before claiming it.
- A conversation an agent has taken, and its history once resolved, only by that agent (after a
  transfer: the agent it went to) and the supervisors.
- Supervisors see every conversation and the metrics, and review the NLU inbox (the messages the
  bot did not understand: masked shoppers' words from every conversation).
- A customer's workspace overview (orders, returns, points, earlier conversations on every channel,
  :mod:`desk.workspace`) only by an agent who holds one of that customer's conversations now, and
  by supervisors; personal data in it is masked as the role allows (``desk/workspace.yml``).

The same rule decides which live events of a conversation reach an agent's websocket.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from desk.auth import Agent

CONVERSATION_EVENTS = frozenset({"message", "note", "joined"})
"""Live events that carry a conversation's content; the others only tell consoles to refresh."""


def handler(record: Mapping[str, Any]) -> str:
    """The agent who has (or last had) a handoff, "" when no agent ever took it."""
    return str(record.get("agent") or "")


def may_see(agent: Agent, record: Mapping[str, Any]) -> bool:
    """Whether an agent may read a handoff (summary, transcript, notes) and act on it."""
    if agent.supervisor:
        return True
    owner = handler(record)
    return not owner or owner == agent.username


def may_review_nlu(agent: Agent) -> bool:
    """Whether an agent may read and label the NLU inbox (:mod:`desk.nlu_inbox`): supervisors only."""
    return agent.supervisor


def may_see_customer(agent: Agent, customer_id: str, held_customers: Iterable[str]) -> bool:
    """Whether an agent may read a customer's workspace overview: supervisors always, an agent while
    holding a conversation of that customer (``held_customers``: the customers of the handoffs
    assigned to the agent now)."""
    return agent.supervisor or customer_id in set(held_customers)
