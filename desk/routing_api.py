"""Dedicated agents on the desk (:mod:`handoff.dedicated`).

Routes (registered by :func:`desk.app.create_app` through :func:`register`):

- ``GET /api/customers/{customer_id}/dedicated-agent``: the customer's dedicated agent (any agent):
  ``{"customer_id", "dedicated": {"agent", "agent_name", "since", "set_by", "online"} or null}``.
- ``PUT /api/customers/{customer_id}/dedicated-agent {"agent"}`` (supervisors): make an agent of the
  agents file (role ``agent``) the customer's dedicated agent; the customer's next handoff is offered to them.
- ``DELETE /api/customers/{customer_id}/dedicated-agent`` (supervisors): the next agent who serves the
  customer becomes it.

Refusals: 400 ``invalid_customer`` (no customer id), ``unknown_agent``; 403 ``supervisors_only``.
"""

from __future__ import annotations

from typing import Any, Callable, Coroutine, Dict

from sanic import Sanic
from sanic.request import Request
from sanic.response import HTTPResponse

from crm.vocab import CUSTOMER_ID_RE
from desk import auth
from desk.app import ApiError, _body, _json
from desk.workspace import desk_text
from handoff import agents as presence
from handoff import dedicated
from handoff.context import HandoffContext

Handler = Callable[..., Coroutine[Any, Any, HTTPResponse]]


def _customer(customer_id: str) -> str:
    if not CUSTOMER_ID_RE.fullmatch(customer_id):
        raise ApiError(400, "invalid_customer", desk_text("invalid_customer"))
    return customer_id


def _supervisor(agent: auth.Agent) -> None:
    if not agent.supervisor:
        raise ApiError(403, "supervisors_only", desk_text("dedicated_supervisors_only"))


def register(app: Sanic, authed: Callable[[Handler], Handler]) -> None:
    """Add the dedicated-agent routes (``app.ctx.handoff``: the handoff context, ``app.ctx.agents``: the agents)."""
    agents: Dict[str, auth.Agent] = app.ctx.agents

    def handoff() -> HandoffContext:
        return app.ctx.handoff  # type: ignore[no-any-return]

    async def view(customer_id: str) -> HTTPResponse:
        found = await dedicated.dedicated_agent(handoff(), customer_id)
        if found is not None:
            (state,) = await presence.agent_states(handoff(), [str(found["agent"])])
            found = {name: found.get(name) for name in ("agent", "agent_name", "since", "set_by")} | {"online": state.online}
        return _json({"customer_id": customer_id, "dedicated": found})

    @app.get("/api/customers/<customer_id:str>/dedicated-agent")
    @authed
    async def dedicated_view(request: Request, agent: auth.Agent, customer_id: str) -> HTTPResponse:
        return await view(_customer(customer_id))

    @app.put("/api/customers/<customer_id:str>/dedicated-agent")
    @authed
    async def dedicated_set(request: Request, agent: auth.Agent, customer_id: str) -> HTTPResponse:
        _supervisor(agent)
        customer_id = _customer(customer_id)
        chosen = agents.get(str(_body(request).get("agent") or ""))
        if chosen is None or chosen.supervisor:
            raise ApiError(400, "unknown_agent", desk_text("dedicated_unknown_agent"),
                           allowed=[a.username for a in agents.values() if not a.supervisor])
        await dedicated.assign(handoff(), customer_id, chosen.username, chosen.display_name, agent.username)
        return await view(customer_id)

    @app.delete("/api/customers/<customer_id:str>/dedicated-agent")
    @authed
    async def dedicated_clear(request: Request, agent: auth.Agent, customer_id: str) -> HTTPResponse:
        _supervisor(agent)
        customer_id = _customer(customer_id)
        await dedicated.clear(handoff(), customer_id)
        return await view(customer_id)
