"""Team-restricted claims: an agent claims only the conversations of their teams (desk/agents.yml), supervisors any;
the queue shows each waiting conversation's team; a refusal is 403 wrong_team with both teams named."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import yaml

from desk.access import claim_teams, may_claim
from desk.auth import Agent, hash_password
from handoff import agents, dedicated, keys, queue
from handoff.context import HandoffContext
from tests.support.desk import DeskProcess, desk_process
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

TEAMS = {"agent1": ["presales", "vip"], "agent2": ["after_sales"], "agent3": []}


def _agent(username: str, role: str = "agent") -> Agent:
    return Agent(username, username, "", role, tuple(TEAMS.get(username, ())))


@pytest.mark.parametrize("username, role, team, offered_to, expected", [
    ("agent1", "agent", "vip", "", True),
    ("agent1", "agent", "after_sales", "", False),
    ("agent2", "agent", "after_sales", "", True),
    ("agent2", "agent", "vip", "", False),
    ("agent2", "agent", "vip", "agent2", True),      # offered to them (their dedicated customer): whatever the team
    ("agent3", "agent", "vip", "", True),            # an agent without teams is in every team
    ("agent2", "agent", "", "", True),               # a handoff without a team (a policy without teams)
    ("boss", "supervisor", "after_sales", "", True),
])
def test_who_may_claim_which_team(username, role, team, offered_to, expected):
    assert may_claim(_agent(username, role), {"team": team, "offered_to": offered_to}) is expected


def test_supervisors_claim_for_every_team():
    assert claim_teams(_agent("boss", "supervisor")) == () and claim_teams(_agent("agent2")) == ("after_sales",)


@pytest.fixture()
def desk(redis_url: str, tmp_path: Path) -> Iterator[DeskProcess]:
    process = desk_process(tmp_path / "desk", redis_url, ("agent1", "agent2", "supervisor1"))
    entries = {name: {"display_name": {"agent1": "小王", "agent2": "小李"}.get(name, "主管"),
                      "password": hash_password(f"{name}-pass", "pbkdf2_sha256", cost=1000),
                      "role": "supervisor" if name.startswith("supervisor") else "agent", **({"teams": TEAMS[name]} if name in TEAMS else {})}
               for name in ("agent1", "agent2", "supervisor1")}
    process.agents_file.write_text(yaml.safe_dump({"agents": entries}, allow_unicode=True), encoding="utf-8")
    process.start()
    for name in entries:
        process.login(name)
    yield process
    process.stop()


def _waiting(desk: DeskProcess, sender: str, **fields) -> str:
    req = request(sender, **fields)
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.zscore(keys.QUEUE, req.handoff_id) is not None)
    return req.handoff_id


def test_an_agent_claims_only_their_teams_conversations(desk: DeskProcess):
    _waiting(desk, "app:presale", tier="L1", reason="requested", intents=("product_question",))
    _waiting(desk, "app:aftersale", tier="L1", reason="complaint", intents=("return_request",))
    status, body = desk.call("GET", "/api/queue", "agent2")
    assert status == 200
    shown = {item["sender"]: (item["team"], item["team_name"], item["my_team"], item["claimable"]) for item in body["waiting"]}
    assert shown == {"app:presale": ("presales", "售前", False, False), "app:aftersale": ("after_sales", "售后", True, True)}

    status, body = desk.call("POST", "/api/conversations/app:presale/claim", "agent2")
    assert status == 403
    assert body["error"] == {
        "code": "wrong_team", "message": "该会话属于售前团队，您所在的团队是售后，只有售前团队的客服和主管可以接入；如需接手，请联系主管。",
        "team": "presales", "team_name": "售前", "agent_teams": ["after_sales"], "agent_team_names": ["售后"]}
    client = sync_client(desk.redis_url)
    assert client.zcard(keys.QUEUE) == 2 and client.scard(keys.agent_load("agent2")) == 0

    assert desk.call("POST", "/api/conversations/app:aftersale/claim", "agent2")[0] == 200
    assert desk.call("POST", "/api/conversations/app:presale/claim", "supervisor1")[0] == 200
    assert client.zcard(keys.QUEUE) == 0


def test_the_dedicated_agent_claims_their_customer_outside_their_teams(desk: DeskProcess):
    async def dedicate(ctx: HandoffContext) -> None:
        await agents.heartbeat(ctx, "agent2")
        await dedicated.assign(ctx, "C000007", "agent2", "小李", "supervisor1")

    run(desk.redis_url, desk.policy_file, dedicate)
    handoff_id = _waiting(desk, "app:vip", customer_id="C000007", tier="L5")
    client = sync_client(desk.redis_url)
    assert wait_for(lambda: client.hget(keys.record(handoff_id), "offered_to")) == "agent2"
    (item,) = desk.call("GET", "/api/queue", "agent2")[1]["waiting"]
    assert (item["team"], item["my_team"], item["claimable"]) == ("vip", True, True)
    assert desk.call("POST", "/api/conversations/app:vip/claim", "agent1")[1]["error"]["code"] == "offered_to_other"
    assert desk.call("POST", "/api/conversations/app:vip/claim", "agent2")[0] == 200
