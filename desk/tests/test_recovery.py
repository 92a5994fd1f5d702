"""Nothing hangs, nothing is dropped: conversations of agents gone offline return to the queue (or
become callbacks), unclaimed waits become callbacks; several desks sweeping at once change each once."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, List
from zoneinfo import ZoneInfo

import pytest
import yaml
from redis.asyncio import ConnectionPool, Redis

from bot.outbox import outbox_key
from desk.tests.test_callbacks import closed_hours
from handoff import agents, keys, queue, texts
from handoff.context import HandoffContext
from handoff.conversation import agent_message, transcript
from handoff.policy import (
    PolicyError,
    load_policy,
    offline_recovery,
    offline_since,
    parse_policy,
    queued_since,
    unclaimed_overdue,
)
from handoff.recovery import SweepResult, sweep
from tests.support.desk import POLICY_FILE, DeskProcess, write_policy
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

TZ = ZoneInfo("Asia/Shanghai")
POLICY = load_policy(POLICY_FILE)
FAST = {"agent_offline_requeue_s": 1, "unclaimed_callback_s": 3600, "sweep_interval_s": 1}


# The policy and its pure functions ------------------------------------------------------------


def test_shipped_recovery_settings():
    assert (POLICY.agent_offline_requeue_s, POLICY.unclaimed_callback_s, POLICY.sweep_interval_s) == (120, 900, 5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"agent_offline_requeue_s": 0}, "recovery.agent_offline_requeue_s"),
        ({"unclaimed_callback_s": "soon"}, "recovery.unclaimed_callback_s"),
        ({"sweep_interval_s": -5}, "recovery.sweep_interval_s"),
    ],
)
def test_invalid_recovery_settings_name_the_culprit(change, message):
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    raw["recovery"] = {**raw["recovery"], **change}
    with pytest.raises(PolicyError, match=message):
        parse_policy(raw)


def test_recovery_settings_default_when_absent():
    raw = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    del raw["recovery"]
    policy = parse_policy(raw)
    assert (policy.agent_offline_requeue_s, policy.unclaimed_callback_s, policy.sweep_interval_s) == (120, 900, 5)


@pytest.mark.parametrize(
    "presence_until, noticed_at, activity, now, expected",
    [
        (None, None, (), 100.0, None),                    # nothing known yet: the sweeper notes the first sighting
        (None, 90.0, (), 100.0, 90.0),                    # first sighting
        (80.0, 90.0, (), 100.0, 80.0),                    # the heartbeat's expiry wins over the sighting
        (80.0, None, (85.0, None), 100.0, 85.0),          # claimed after the last heartbeat: the claim counts
        (80.0, None, (60.0, 70.0), 100.0, 80.0),          # older activity changes nothing
        (130.0, None, (), 100.0, 100.0),                  # the key went before its expiry (deleted): from now
        (None, None, (95.0,), 100.0, 95.0),               # only a reply known
    ],
)
def test_offline_since(presence_until, noticed_at, activity, now, expected):
    assert offline_since(presence_until, noticed_at, activity, now) == expected


@pytest.mark.parametrize(
    "offline_s, open_now, others_online, expected",
    [
        (None, True, True, None),
        (0.0, True, True, None),
        (119.9, True, True, None),
        (120.0, True, True, "requeue"),
        (600.0, True, True, "requeue"),
        (120.0, False, True, "callback"),   # out of hours
        (120.0, True, False, "callback"),   # nobody left to take it
        (120.0, False, False, "callback"),
        (60.0, False, False, None),         # may still come back, whatever the hour
    ],
)
def test_offline_recovery(offline_s, open_now, others_online, expected):
    assert offline_recovery(POLICY, offline_s, open_now, others_online) == expected


@pytest.mark.parametrize(
    "enqueued_at, requeued_at, now, since, overdue",
    [
        (1000.0, None, 1899.0, 1000.0, False),
        (1000.0, None, 1900.0, 1000.0, True),
        (1000.0, 1500.0, 1900.0, 1500.0, False),   # back in the queue: the bound counts from the return
        (1000.0, 1500.0, 2400.0, 1500.0, True),
        (1000.0, 500.0, 1900.0, 1000.0, True),
    ],
)
def test_unclaimed_bound(enqueued_at, requeued_at, now, since, overdue):
    assert queued_since(enqueued_at, requeued_at) == since
    assert unclaimed_overdue(POLICY, enqueued_at, requeued_at, now) is overdue


@pytest.mark.parametrize(
    "position, wait_s, expected",
    [
        (1, 60, "您是下一位，预计今天 14:01 前接入（约 1 分钟）"),
        (3, 300, "您前面还有 2 位顾客，预计今天 14:05 前接入（约 5 分钟）"),
        (2, None, "您前面还有 1 位顾客。"),
    ],
)
def test_requeue_notice(position, wait_s, expected):
    now = datetime(2026, 11, 23, 14, 0, tzinfo=TZ)
    text = texts.requeued_agent_offline("小王", position, wait_s, now)
    assert text.startswith("非常抱歉，为您服务的客服小王暂时离线了。已为您重新排队，并保留您原来的排队顺序：")
    assert expected in text and "不用再重复描述" in text


def test_callback_notices_tell_the_window():
    now = datetime(2026, 11, 23, 22, 40, tzinfo=TZ)
    start, end = datetime(2026, 11, 24, 8, 0, tzinfo=TZ), datetime(2026, 11, 24, 9, 0, tzinfo=TZ)
    closed = texts.callback_agent_offline("小王", start, end, now, closed_now=True)
    assert "已过人工客服的服务时间" in closed and "明天（11月24日） 08:00–09:00" in closed
    assert "没有其他客服在线" in texts.callback_agent_offline("小王", start, end, now, closed_now=False)
    assert "没能及时接入您" in texts.unclaimed_while_waiting(start, end, now)


# On a real Redis ------------------------------------------------------------------------------


def policy_file(tmp_path: Path, **changes) -> Path:
    changes.setdefault("recovery", FAST)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_policy(tmp_path / "service.yml", **changes)


async def assigned(ctx: HandoffContext, sender: str, agent: str = "agent1") -> str:
    """A handoff queued and claimed by ``agent`` (online), as the bot and the desk make it."""
    req = request(sender)
    await queue.enqueue(ctx, req)
    await queue.materialize(ctx, req)
    await agents.heartbeat(ctx, agent)
    result = await queue.claim(ctx, sender, agent, "小王" if agent == "agent1" else "小李")
    assert result.status == "ok", result
    return req.handoff_id


async def sweep_as_another_desk(ctx: HandoffContext) -> SweepResult:
    """A sweep through a connection pool of its own, as a second desk process would run it."""
    pool = ctx.redis.connection_pool
    client = Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **pool.connection_kwargs))
    try:
        return await sweep(HandoffContext(client, ctx.policy, ctx.tz, redeliver_idle_ms=ctx.redeliver_idle_ms))
    finally:
        await client.close()
        await client.connection_pool.disconnect()


def last_notice(redis_url: str, sender: str) -> str:
    return json.loads(sync_client(redis_url).xrange(outbox_key(sender))[-1][1]["message"])["text"]


def day_stats(redis_url: str) -> dict:
    client = sync_client(redis_url)
    (key,) = client.keys("handoff:stats:day:*")
    return client.hgetall(key)


def test_an_offline_agents_conversation_returns_to_the_queue_once(redis_url: str, tmp_path: Path):
    policy = policy_file(tmp_path, presence={"heartbeat_ttl_s": 5})
    sender = "conv-recover-requeue"

    async def scenario(ctx: HandoffContext) -> List[object]:
        handoff_id = await assigned(ctx, sender)
        score = await ctx.redis.hget(keys.record(handoff_id), "score")
        early = await sweep(ctx)  # the agent is still online
        await asyncio.sleep(6.2)  # no heartbeat: the presence key expires after 5 s, then the 1 s bound passes
        await agents.heartbeat(ctx, "agent2")
        first = await sweep(ctx)
        second = await sweep_as_another_desk(ctx)
        late_reply = await agent_message(ctx, sender, "agent1", "小王", "我回来了")
        taken = await queue.claim(ctx, sender, "agent2", "小李")
        lines = [entry["text"] for entry in await transcript(ctx, handoff_id)]
        return [handoff_id, score, early, first, second, late_reply.status, taken.status, lines]

    handoff_id, score, early, first, second, late_reply, taken, lines = run(redis_url, policy, scenario)
    assert early.changed == 0
    assert first == SweepResult(requeued=1)
    assert second.changed == 0
    assert late_reply == "not_assigned"  # the agent who left no longer has it
    assert taken == "ok"
    assert any("小王（agent1）离线已超过 1 分钟，会话按原优先级回到队列（第 1 位）" in line for line in lines)
    client = sync_client(redis_url)
    record = client.hgetall(keys.record(handoff_id))
    assert (record["status"], record["agent"], record["previous_agent"], record["requeues"]) == ("assigned", "agent2", "agent1", "1")
    assert record["score"] == score
    assert client.smembers(keys.agent_load("agent1")) == set()
    notices = [json.loads(fields["message"])["text"] for _, fields in client.xrange(outbox_key(sender))]
    requeued = [text for text in notices if "已为您重新排队" in text]
    assert len(requeued) == 1 and "客服小王暂时离线了" in requeued[0] and "您是下一位，预计" in requeued[0]
    assert day_stats(redis_url)["requeued_agent_offline"] == "1"


def test_requeue_keeps_the_original_priority(redis_url: str, tmp_path: Path):
    policy = policy_file(tmp_path)

    async def scenario(ctx: HandoffContext) -> List[str]:
        first = await assigned(ctx, "conv-recover-first")
        for n in range(2):
            later = request(f"conv-recover-later-{n}")
            await queue.enqueue(ctx, later)
            await queue.materialize(ctx, later)
        await agents.heartbeat(ctx, "agent2")
        await agents.go_offline(ctx, "agent1")
        await asyncio.sleep(1.1)
        assert (await sweep(ctx)).requeued == 1
        return [first, *await ctx.redis.zrange(keys.QUEUE, 0, -1)]

    first, *order = run(redis_url, policy, scenario)
    assert order[0] == first  # it had waited longest: first again
    assert "您是下一位" in last_notice(redis_url, "conv-recover-first")


def test_desks_sweeping_at_once_change_each_conversation_once(redis_url: str, tmp_path: Path):
    policy = policy_file(tmp_path, capacity={"default": 10, "agents": {}})
    senders = [f"conv-recover-race-{n}" for n in range(6)]

    async def scenario(ctx: HandoffContext) -> List[SweepResult]:
        for sender in senders:
            await assigned(ctx, sender)
        await agents.heartbeat(ctx, "agent2")
        await agents.go_offline(ctx, "agent1")
        await asyncio.sleep(1.1)
        return list(await asyncio.gather(*(sweep_as_another_desk(ctx) for _ in range(4))))

    results = run(redis_url, policy, scenario)
    assert sum(result.requeued for result in results) == len(senders)
    client = sync_client(redis_url)
    assert client.zcard(keys.QUEUE) == len(senders)
    for sender in senders:
        texts_pushed = [json.loads(fields["message"])["text"] for _, fields in client.xrange(outbox_key(sender))]
        assert sum("已为您重新排队" in text for text in texts_pushed) == 1
    assert day_stats(redis_url)["requeued_agent_offline"] == str(len(senders))


def test_an_agent_who_comes_back_in_time_keeps_the_conversation(redis_url: str, tmp_path: Path):
    policy = policy_file(tmp_path, recovery={**FAST, "agent_offline_requeue_s": 2})

    async def scenario(ctx: HandoffContext) -> List[object]:
        handoff_id = await assigned(ctx, "conv-recover-back")
        await agents.heartbeat(ctx, "agent2")
        await agents.go_offline(ctx, "agent1")
        await asyncio.sleep(1.0)
        away = await sweep(ctx)
        await agents.heartbeat(ctx, "agent1")
        await asyncio.sleep(1.2)
        back = await sweep(ctx)
        return [away, back, await ctx.redis.hget(keys.record(handoff_id), "status")]

    away, back, status = run(redis_url, policy, scenario)
    assert (away.changed, back.changed, status) == (0, 0, "assigned")


def test_out_of_hours_an_offline_agents_conversation_becomes_a_callback(redis_url: str, tmp_path: Path):
    open_policy = policy_file(tmp_path / "open")
    closed_policy = policy_file(tmp_path / "closed", opening_hours=closed_hours())
    sender = "conv-recover-closed"
    handoff_id = run(redis_url, open_policy, lambda ctx: assigned(ctx, sender))

    async def later(ctx: HandoffContext) -> List[SweepResult]:
        await agents.heartbeat(ctx, "agent2")  # someone online does not help after closing time
        await agents.go_offline(ctx, "agent1")
        await asyncio.sleep(1.1)
        return [await sweep(ctx), await sweep_as_another_desk(ctx)]

    first, second = run(redis_url, closed_policy, later)
    assert first == SweepResult(callbacks_agent_offline=1) and second.changed == 0
    client = sync_client(redis_url)
    record = client.hgetall(keys.record(handoff_id))
    assert record["status"] == "callback" and client.get(keys.active(sender)) is None
    ticket = client.hgetall(keys.callback(record["callback_id"]))
    assert (ticket["source_handoff"], ticket["status"]) == (handoff_id, "open")
    assert client.zscore(keys.CALLBACKS_OPEN, record["callback_id"]) == float(ticket["window_end"])
    notice = last_notice(redis_url, sender)
    assert "客服小王暂时离线了，现在已过人工客服的服务时间" in notice and "已为您登记人工回访" in notice and "–" in notice
    lines = [fields["text"] for _, fields in client.xrange(keys.transcript(handoff_id))]
    assert any("已过服务时间，已转为回访工单 " + record["callback_id"] in line for line in lines)
    stats = day_stats(redis_url)
    assert (stats["callbacks_agent_offline"], stats["callbacks"], stats["converted"]) == ("1", "1", "1")
    assert client.smembers(keys.agent_load("agent1")) == set()


def test_with_nobody_else_online_it_becomes_a_callback(redis_url: str, tmp_path: Path):
    policy = policy_file(tmp_path)

    async def scenario(ctx: HandoffContext) -> SweepResult:
        await assigned(ctx, "conv-recover-alone")
        await agents.go_offline(ctx, "agent1")
        await asyncio.sleep(1.1)
        return await sweep(ctx)

    assert run(redis_url, policy, scenario) == SweepResult(callbacks_agent_offline=1)
    assert "现在也没有其他客服在线" in last_notice(redis_url, "conv-recover-alone")


def test_unclaimed_waits_become_callbacks(redis_url: str, tmp_path: Path):
    policy = policy_file(tmp_path, recovery={**FAST, "unclaimed_callback_s": 1})
    old, news = request("conv-unclaimed-old"), []

    async def scenario(ctx: HandoffContext) -> List[SweepResult]:
        await agents.heartbeat(ctx, "agent1")  # online, but nobody claims it
        await queue.enqueue(ctx, old)
        await queue.materialize(ctx, old)
        await asyncio.sleep(1.1)
        new = request("conv-unclaimed-new")
        news.append(new)
        await queue.enqueue(ctx, new)
        await queue.materialize(ctx, new)
        return list(await asyncio.gather(sweep(ctx), sweep_as_another_desk(ctx)))

    results = run(redis_url, policy, scenario)
    assert sum(result.callbacks_unclaimed for result in results) == 1
    client = sync_client(redis_url)
    assert client.hget(keys.record(old.handoff_id), "status") == "callback"
    assert client.zrange(keys.QUEUE, 0, -1) == [news[0].handoff_id]
    assert "没能及时接入您" in last_notice(redis_url, old.sender) and "联系您" in last_notice(redis_url, old.sender)
    lines = [fields["text"] for _, fields in client.xrange(keys.transcript(old.handoff_id))]
    assert any(line.startswith("排队超过 1 分钟无人接入，已转为回访工单 c") for line in lines)
    assert day_stats(redis_url)["callbacks_unclaimed"] == "1"
    assert len(client.zrange(keys.CALLBACKS_OPEN, 0, -1)) == 1


def test_every_desk_sweeps_and_the_metrics_count_it(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(agents=("agent1", "agent2", "supervisor"), recovery=FAST)
    other = start_desk("desk2", agents=("agent1", "agent2", "supervisor"), recovery=FAST)
    req = request("conv-recover-desk")
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(req.handoff_id), "status") == "queued")
    for agent in ("agent1", "agent2", "supervisor"):
        desk.login(agent)
    assert desk.call("POST", f"/api/conversations/{req.sender}/claim", "agent1")[0] == 200
    desk.call("POST", "/api/presence", "agent2")
    other.kill()  # one desk fewer changes nothing: the other sweeps too
    desk.call("POST", "/api/logout", "agent1")
    started = time.monotonic()
    wait_for(lambda: client.hget(keys.record(req.handoff_id), "status") == "queued", timeout_s=10)
    assert time.monotonic() - started < 5
    status, body = desk.call("GET", f"/api/conversations/{req.sender}", "agent2")
    assert status == 200 and any("回到队列" in entry["text"] for entry in body["transcript"])
    _, metrics = desk.call("GET", "/api/metrics?days=1", "supervisor")
    assert metrics["recovery"] == {"requeued_agent_offline": 1, "callbacks_agent_offline": 0, "callbacks_unclaimed": 0}
