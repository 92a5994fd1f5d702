"""Who may see what at the desk.

- A waiting conversation (never taken by an agent: queued, offered, or cancelled or turned into a
  callback before anyone took it) may be read by every agent, so they can look at the summary
  before claiming it.
- A conversation an agent has taken, and its history once resolved, only by that agent (after a
  transfer: the agent it went to) and the supervisors.
- A waiting conversation may be claimed by the agents of its team (``teams`` in ``desk/agents.yml``;
  an agent without teams is in every team), by the agent it is offered to (sticky or dedicated
  routing) and by supervisors; others are refused 403 ``wrong_team`` (checked in the claim script).
- Supervisors see every conversation and the metrics, and review the NLU inbox (the messages the
  bot did not understand: masked shoppers' words from every conversation).
- A customer's workspace overview (orders, returns, points, earlier conversations on every channel,
  :mod:`desk.workspace`) only by an agent who holds one of that customer's conversations now, and
  by supervisors; personal data in it is masked as the role allows (``desk/workspace.yml``).

The same rule decides which live events of a conversation reach an agent's websocket.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Tuple

from desk.auth import Agent
from handoff.policy import ServicePolicy

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


def claim_teams(agent: Agent) -> Tuple[str, ...]:
    """The teams an agent may claim conversations for; empty for every team (supervisors, agents without teams)."""
    return () if agent.supervisor else tuple(agent.teams)


def may_claim(agent: Agent, record: Mapping[str, Any]) -> bool:
    """Whether an agent may claim a waiting handoff as far as its team goes (the claim script decides the rest)."""
    teams, team = claim_teams(agent), str(record.get("team") or "")
    return not teams or not team or team in teams or str(record.get("offered_to") or "") == agent.username


def wrong_team(agent: Agent, team: str, policy: ServicePolicy) -> Dict[str, Any]:
    """The refusal of a claim for its team (message, the conversation's team and the agent's), the keywords of the API error."""
    from desk.workspace import desk_text  # the agents' texts (desk.workspace reads this module)

    names = {t.code: t.name for t in policy.teams}
    mine = [names.get(t, t) for t in claim_teams(agent)]
    return {"message": desk_text("wrong_team", team=names.get(team, team), mine="、".join(mine)), "team": team,
            "team_name": names.get(team, team), "agent_teams": list(claim_teams(agent)), "agent_team_names": mine}


def may_review_nlu(agent: Agent) -> bool:
    """Whether an agent may read and label the NLU inbox (:mod:`desk.nlu_inbox`): supervisors only."""
    return agent.supervisor


def may_see_customer(agent: Agent, customer_id: str, held_customers: Iterable[str]) -> bool:
    """Whether an agent may read a customer's workspace overview: supervisors always, an agent while
    holding a conversation of that customer (``held_customers``: the customers of the handoffs
    assigned to the agent now)."""
    return agent.supervisor or customer_id in set(held_customers)
