"""Dedicated agents (一对一专属客服) on a real Redis: the first agent who serves a dedicated-tier customer becomes
theirs, later handoffs are offered (and auto-assigned) to that agent when online with a free slot, else they wait
in the VIP team's queue and the shopper is told by name who is away and which team serves them; supervisors
change the dedicated agent on the desk."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, List

import pytest
import yaml

from bot.outbox import outbox_key
from bot.settings import PROJECT_ROOT
from handoff import agents, dedicated, keys, queue
from handoff.context import HandoffContext
from handoff.policy import PolicyError, dedicated_outcome, has_dedicated_agent, load_policy, parse_policy
from handoff.routing import Candidate, auto_assign
from tests.support.desk import POLICY_FILE, DeskProcess, write_policy
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

CUSTOMER = "C000007"
VIP_TEAM = [Candidate("agent1", "小王", ("presales", "vip")), Candidate("agent2", "小李", ("after_sales",))]


@pytest.mark.parametrize("online, load, capacity, expected", [
    (True, 0, 3, "offered"),
    (True, 2, 3, "offered"),
    (True, 3, 3, "busy"),
    (False, 0, 3, "offline"),
    (False, 3, 3, "offline"),
])
def test_the_dedicated_agent_gets_the_handoff_only_when_online_with_a_free_slot(online, load, capacity, expected):
    assert dedicated_outcome(online, load, capacity) == expected


@pytest.mark.parametrize("tier, customer_id, expected", [
    ("L5", "C000007", True),
    ("L4", "C000007", False),
    ("L5", None, False),   # an anonymous shopper has no customer id to remember the agent by
    (None, "C000007", False),
])
def test_which_shoppers_have_a_dedicated_agent(tier, customer_id, expected):
    assert has_dedicated_agent(load_policy(POLICY_FILE), tier, customer_id) is expected


def test_the_policy_gives_a_dedicated_agent_to_every_tier_promised_one():
    tiers = yaml.safe_load((PROJECT_ROOT / "crm" / "policy" / "tiers.yml").read_text(encoding="utf-8"))["tiers"]
    promised = {t["code"] for t in tiers if any("一对一专属客服" in b for b in t["benefits"])}
    flagged = {t["code"] for t in tiers if t["dedicated_agent"]}
    policy = load_policy(POLICY_FILE)
    assert promised and promised <= policy.dedicated_tiers <= flagged
    assert policy.dedicated_team == "vip" and policy.dedicated_offer_s == 120


def test_a_dedicated_team_the_policy_lacks_is_refused():
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    raw["dedicated_agent"] = {"tiers": ["L5"], "team": "nobody"}
    with pytest.raises(PolicyError, match="dedicated_agent.team"):
        parse_policy(raw)


def _notices(redis_url: str, sender: str) -> List[str]:
    return [json.loads(fields["message"])["text"] for _, fields in sync_client(redis_url).xrange(outbox_key(sender))]


async def _queue(ctx: HandoffContext, sender: str, tier: str = "L5", customer_id: str = CUSTOMER) -> str:
    req = request(sender, customer_id=customer_id, tier=tier)
    await queue.enqueue(ctx, req)
    assert await queue.materialize(ctx, req) == 1
    return req.handoff_id


def test_first_agent_becomes_dedicated_and_gets_the_next_handoff(redis_url: str, tmp_path: Path):
    policy_file = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext):
        for name in ("agent1", "agent2"):
            await agents.heartbeat(ctx, name)
        first = await _queue(ctx, "app:vip-1")
        record = await ctx.redis.hgetall(keys.record(first))
        assert (record["team"], record["dedicated_key"], record["offered_to"]) == ("vip", keys.dedicated_agent(CUSTOMER), "")
        assert await dedicated.dedicated_agent(ctx, CUSTOMER) is None
        assert (await queue.claim(ctx, "app:vip-1", "agent2", "小李")).status == "ok"
        remembered = await dedicated.dedicated_agent(ctx, CUSTOMER)
        assert (remembered["agent"], remembered["agent_name"], remembered["set_by"]) == ("agent2", "小李", "first_service")

        second = await _queue(ctx, "web:vip-2")  # the same customer on another channel, agent2 online with free slots
        record = await ctx.redis.hgetall(keys.record(second))
        offered = (record["offered_to"], record["dedicated_outcome"], float(record["offer_until"]) - float(record["dedicated_routed_at"]))
        refused = (await queue.claim(ctx, "web:vip-2", "agent1", "小王")).status
        made = await auto_assign(ctx, VIP_TEAM)  # agent2 is not in the VIP team: the dedicated agent gets it all the same
        owner = await ctx.redis.hget(keys.record(second), "agent")
        # a later agent does not replace the dedicated one
        third = await _queue(ctx, "app:vip-3")
        await ctx.redis.hset(keys.record(third), mapping={"offer_until": "0"})
        assert (await queue.claim(ctx, "app:vip-3", "agent1", "小王")).status == "ok"
        return offered, refused, made, owner, second, (await dedicated.dedicated_agent(ctx, CUSTOMER))["agent"]

    offered, refused, made, owner, second, still = run(redis_url, policy_file, scenario)
    assert offered == ("agent2", "offered", 120.0)
    assert refused == "offered_to_other"
    assert made == [(second, "agent2")] and owner == "agent2" and still == "agent2"
    assert _notices(redis_url, "web:vip-2")[0] == "已为您优先通知您的专属客服小李，小李接入后会马上为您处理，您和智能客服说的内容已同步给小李。"


def test_a_shopper_whose_dedicated_agent_is_away_waits_for_the_vip_team_and_is_told(redis_url: str, tmp_path: Path):
    policy_file = write_policy(tmp_path / "service.yml", capacity={"default": 1})

    async def scenario(ctx: HandoffContext):
        await dedicated.assign(ctx, CUSTOMER, "agent2", "小李", "supervisor1")
        await agents.heartbeat(ctx, "agent1")
        offline = await _queue(ctx, "app:away-1")  # agent2 not online
        await agents.heartbeat(ctx, "agent2")
        await ctx.redis.sadd(keys.agent_load("agent2"), "h" + "9" * 24)  # agent2 at capacity (1)
        busy = await _queue(ctx, "app:away-2")
        records = [await ctx.redis.hgetall(keys.record(h)) for h in (offline, busy)]
        made = await auto_assign(ctx, VIP_TEAM)
        return records, made, offline

    records, made, offline = run(redis_url, policy_file, scenario)
    assert [(r["team"], r["team_name"], r["offered_to"], r["dedicated_outcome"]) for r in records] == [
        ("vip", "VIP", "", "offline"), ("vip", "VIP", "", "busy")]
    assert made == [(offline, "agent1")]  # the VIP team's agent with a free slot takes the first one; agent2 stays full
    lines = [fields["text"] for _, fields in sync_client(redis_url).xrange(keys.transcript(offline))]
    assert lines[0] == "专属客服小李（agent2）不在线，会话在VIP团队排队，已告知顾客。"
    assert _notices(redis_url, "app:away-1")[0] == (
        "您的专属客服小李现在不在线。为了不让您久等，已为您转入VIP专属服务团队的优先队列，由VIP团队的客服接待您；"
        "您和智能客服说的内容已同步给接待的客服，不用再重复描述。您下次咨询时，如果小李在线，仍会优先由小李为您服务。")
    assert _notices(redis_url, "app:away-2") == [
        "您的专属客服小李正在接待其他顾客。为了不让您久等，已为您转入VIP专属服务团队的优先队列，由VIP团队的客服接待您；"
        "您和智能客服说的内容已同步给接待的客服，不用再重复描述。您下次咨询时，如果小李有空，仍会优先由小李为您服务。"]


def test_other_tiers_and_anonymous_shoppers_have_no_dedicated_agent(redis_url: str, tmp_path: Path):
    policy_file = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext):
        await agents.heartbeat(ctx, "agent1")
        handoff_id = await _queue(ctx, "app:gold", tier="L4", customer_id="C000004")
        assert (await queue.claim(ctx, "app:gold", "agent1", "小王")).status == "ok"
        return await ctx.redis.hgetall(keys.record(handoff_id)), await dedicated.dedicated_agent(ctx, "C000004")

    record, found = run(redis_url, policy_file, scenario)
    assert "dedicated_key" not in record and record["team"] == "vip" and found is None
    assert _notices(redis_url, "app:gold") == ["客服小王已接入，正在查看您和智能客服的对话记录，马上为您处理。"]


def test_supervisors_change_the_dedicated_agent_on_the_desk(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(agents=("agent1", "agent2", "supervisor1"))
    for name in ("agent1", "agent2", "supervisor1"):
        desk.login(name)
    path = f"/api/customers/{CUSTOMER}/dedicated-agent"
    assert desk.call("GET", path, "agent1") == (200, {"customer_id": CUSTOMER, "dedicated": None})
    status, body = desk.call("PUT", path, "agent1", {"agent": "agent1"})
    assert status == 403 and body["error"]["code"] == "supervisors_only"
    for bad_path, chosen, code in [(path, "supervisor1", "unknown_agent"), (path, "nobody", "unknown_agent"),
                                   ("/api/customers/C12/dedicated-agent", "agent1", "invalid_customer")]:
        status, body = desk.call("PUT", bad_path, "supervisor1", {"agent": chosen})
        assert (status, body["error"]["code"]) == (400, code)
    status, body = desk.call("PUT", path, "supervisor1", {"agent": "agent1"})
    assert status == 200
    assert {k: body["dedicated"][k] for k in ("agent", "agent_name", "set_by", "online")} == {
        "agent": "agent1", "agent_name": "小王", "set_by": "supervisor1", "online": True}

    req = request("app:changed", customer_id=CUSTOMER, tier="L5")
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))  # the desk takes it in
    client = sync_client(desk.redis_url)
    assert wait_for(lambda: client.hget(keys.record(req.handoff_id), "dedicated_outcome")) == "offered"
    assert client.hget(keys.record(req.handoff_id), "offered_to") == "agent1"
    status, body = desk.call("DELETE", path, "supervisor1")
    assert (status, body["dedicated"]) == (200, None)
    assert desk.call("DELETE", path, "agent2")[0] == 403


def test_the_bots_refinement_of_an_explicit_request_routes_to_the_dedicated_agent(redis_url: str, tmp_path: Path):
    """The channel queues 「转人工」 before the tier is known; the bot's refinement brings L5 and the offer follows."""
    policy_file = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext):
        await agents.heartbeat(ctx, "agent2")
        await dedicated.assign(ctx, CUSTOMER, "agent2", "小李", "supervisor1")
        opened = dataclasses.replace(request("app:express-vip", customer_id=CUSTOMER, tier=None), intents=["human_agent"])
        await queue.enqueue(ctx, opened)
        assert await queue.materialize(ctx, opened) == 1
        before = await ctx.redis.hgetall(keys.record(opened.handoff_id))
        refined = dataclasses.replace(opened, tier="L5", tier_name="钻石会员", refines=True)
        assert await queue.materialize(ctx, refined) == queue.REFINED
        assert await queue.materialize(ctx, refined) == queue.REFINED  # redelivered: routed once
        return before, await ctx.redis.hgetall(keys.record(opened.handoff_id))

    before, after = run(redis_url, policy_file, scenario)
    assert "dedicated_key" not in before and before["offered_to"] == ""
    assert (after["team"], after["offered_to"], after["dedicated_outcome"]) == ("vip", "agent2", "offered")
    assert _notices(redis_url, "app:express-vip") == ["已为您优先通知您的专属客服小李，小李接入后会马上为您处理，您和智能客服说的内容已同步给小李。"]
