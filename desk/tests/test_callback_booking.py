"""Every callback is booked through the capacity-checked windows: the agent workspace's action,
the recovery of an offline agent's conversations and waiting handoffs turned into callbacks take
the next window when the first is full, tell that exact window, and book nothing when every window
for three weeks is full."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, List, Tuple
from zoneinfo import ZoneInfo

from bot.outbox import outbox_key
from desk.tests.test_recovery import assigned
from handoff import agents, keys, queue, texts, windows
from handoff.callbacks import queued_to_callbacks
from handoff.context import HandoffContext
from handoff.recovery import SweepResult, sweep
from tests.support.desk import DeskProcess, write_policy
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

TZ = ZoneInfo("Asia/Shanghai")
ONE_PER_WINDOW = {"window_minutes": 60, "lead_minutes": 20, "capacity_per_window": 1, "unattended_after_s": 600}
FAST = {"agent_offline_requeue_s": 1, "unclaimed_callback_s": 3600, "sweep_interval_s": 1}
ONE_HOUR_A_DAY = {"default": {"open": "08:00", "close": "09:00"}, "closed_dates": []}
"""One window a day: 21 or 22 of them within three weeks."""
Window = Tuple[datetime, datetime]


def one_per_window(path: Path, **changes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_policy(path, callback=ONE_PER_WINDOW, recovery=FAST, **changes)


async def fill_the_first(ctx: HandoffContext) -> List[Window]:
    """Take the only place of the first window from now, and of the one ten minutes later (the first
    when the clock passes a ten-minute mark before the booking under test): the windows now full."""
    full = []
    for ahead in (0, 600):
        moment = ctx.local(ctx.now() + ahead)
        window = await windows.book_window(ctx, keys.new_callback_id(), moment)
        assert window == windows.candidate_windows(ctx.policy, moment, ctx.tz, count=1)[0]
        full.append(window)
    return full


async def fill_all(ctx: HandoffContext) -> int:
    """Book every window there is (a few dozen at most): how many."""
    count = 0
    while await windows.book_window(ctx, keys.new_callback_id()) is not None:
        count += 1
        assert count <= 100
    return count


def window_of(ticket: dict) -> Window:
    return (datetime.fromtimestamp(float(ticket["window_start"]), TZ), datetime.fromtimestamp(float(ticket["window_end"]), TZ))


def assert_the_next(window: Window, full: List[Window]) -> None:
    assert window not in full and window[0] >= full[0][1], (window, full)


def notices(redis_url: str, sender: str) -> List[str]:
    return [json.loads(fields["message"])["text"] for _, fields in sync_client(redis_url).xrange(outbox_key(sender))]


def told_window(window: Window) -> str:
    return texts.window(*window, datetime.now(TZ))


def test_a_ticket_books_once_and_a_release_gives_the_place_back(redis_url: str, tmp_path: Path):
    policy = one_per_window(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext) -> List[object]:
        moment = ctx.local(ctx.now())
        first = await windows.book_window(ctx, "c-first", moment)
        again = await windows.book_window(ctx, "c-first", moment + timedelta(hours=3))  # later: still the window it holds
        other = await windows.book_window(ctx, "c-other", moment)
        await windows.release(ctx, "c-first", first)
        freed = await windows.book_window(ctx, "c-third", moment)
        return [first, again, other, freed, await windows.booked(ctx, first)]

    first, again, other, freed, count = run(redis_url, policy, scenario)
    assert again == first and other != first and other[0] >= first[1]
    assert freed == first and count == 1


def test_every_window_full_for_three_weeks_books_nothing(redis_url: str, tmp_path: Path):
    policy = one_per_window(tmp_path / "service.yml", opening_hours=ONE_HOUR_A_DAY)
    waiting = dataclasses.replace(request("conv-booking-full"), enqueued_at=time.time() - 700)

    async def scenario(ctx: HandoffContext) -> List[object]:
        booked = await fill_all(ctx)
        await queue.enqueue(ctx, waiting)
        await queue.materialize(ctx, waiting)
        converted = await queued_to_callbacks(ctx)
        status = await ctx.redis.hget(keys.record(waiting.handoff_id), "status")
        return [booked, converted, status, await ctx.redis.zcard(keys.CALLBACKS_OPEN)]

    booked, converted, status, tickets = run(redis_url, policy, scenario)
    assert 21 <= booked <= 22
    assert (converted, status, tickets) == (0, "queued", 0)  # it keeps its place in the queue rather than an overfull window
    assert notices(redis_url, waiting.sender) == []


def test_waiting_handoffs_turned_into_callbacks_take_the_next_window(redis_url: str, tmp_path: Path):
    policy = one_per_window(tmp_path / "service.yml")
    waiting = dataclasses.replace(request("conv-booking-unattended"), enqueued_at=time.time() - 700)

    async def scenario(ctx: HandoffContext) -> List[object]:
        full = await fill_the_first(ctx)
        await queue.enqueue(ctx, waiting)
        await queue.materialize(ctx, waiting)
        converted = await queued_to_callbacks(ctx, waited_s=ctx.policy.unattended_after_s)
        return [full, converted, await ctx.redis.hget(keys.record(waiting.handoff_id), "callback_id")]

    full, converted, callback_id = run(redis_url, policy, scenario)
    assert converted == 1
    window = window_of(sync_client(redis_url).hgetall(keys.callback(callback_id)))
    assert_the_next(window, full)
    assert told_window(window) in notices(redis_url, waiting.sender)[-1]


def test_an_offline_agents_conversation_takes_the_next_window(redis_url: str, tmp_path: Path):
    policy = one_per_window(tmp_path / "service.yml")
    sender = "conv-booking-recovery"

    async def scenario(ctx: HandoffContext) -> List[object]:
        handoff_id = await assigned(ctx, sender)
        await agents.go_offline(ctx, "agent1")  # and nobody else online: a callback
        await asyncio.sleep(1.1)
        full = await fill_the_first(ctx)
        result = await sweep(ctx)
        return [handoff_id, full, result, await ctx.redis.hget(keys.record(handoff_id), "callback_id")]

    handoff_id, full, result, callback_id = run(redis_url, policy, scenario)
    assert result == SweepResult(callbacks_agent_offline=1)
    client = sync_client(redis_url)
    window = window_of(client.hgetall(keys.callback(callback_id)))
    assert_the_next(window, full)
    assert client.sismember(windows.window_key(window[0]), callback_id)
    notice = notices(redis_url, sender)[-1]
    assert "客服小王暂时离线了" in notice and told_window(window) in notice
    lines = [fields["text"] for _, fields in client.xrange(keys.transcript(handoff_id))]
    assert any(f"已转为回访工单 {callback_id}（回访时间 {told_window(window)}）" in line for line in lines)


def test_an_offline_agents_conversation_stays_when_every_window_is_full(redis_url: str, tmp_path: Path):
    policy = one_per_window(tmp_path / "service.yml", opening_hours=ONE_HOUR_A_DAY)
    sender = "conv-booking-recovery-full"

    async def scenario(ctx: HandoffContext) -> List[object]:
        handoff_id = await assigned(ctx, sender)
        await agents.go_offline(ctx, "agent1")
        await fill_all(ctx)
        await asyncio.sleep(1.1)
        return [await sweep(ctx), await ctx.redis.hget(keys.record(handoff_id), "status")]

    result, status = run(redis_url, policy, scenario)
    assert result.changed == 0 and status == "assigned"
    assert sync_client(redis_url).zcard(keys.CALLBACKS_OPEN) == 0


def claimed(desk: DeskProcess, sender: str) -> str:
    handoff = request(sender)
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, handoff))
    wait_for(lambda: sync_client(desk.redis_url).hget(keys.record(handoff.handoff_id), "status") == "queued")
    status, body = desk.call("POST", f"/api/conversations/{sender}/claim", "agent1")
    assert status == 200, body
    return handoff.handoff_id


def test_the_workspace_books_the_next_window_and_tells_it(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(callback=ONE_PER_WINDOW)
    desk.login("agent1")
    sender = "app:booking-ws"
    claimed(desk, sender)
    full = run(desk.redis_url, desk.policy_file, fill_the_first)
    path = f"/api/conversations/{sender}/actions/callback"
    status, booked = desk.call("POST", path, "agent1", {"note": "顾客希望下午联系", "request_id": "cb-next"})
    assert status == 201, booked
    window = (datetime.fromtimestamp(booked["window_start"], TZ), datetime.fromtimestamp(booked["window_end"], TZ))
    assert_the_next(window, full)
    assert booked["window"] == told_window(window)
    client = sync_client(desk.redis_url)
    assert client.sismember(windows.window_key(window[0]), booked["callback_id"])
    assert window_of(client.hgetall(keys.callback(booked["callback_id"]))) == window
    told = [t for t in notices(desk.redis_url, sender) if "预约" in t and booked["window"] in t]
    assert len(told) == 1
    # Repeating the action answers the same ticket and window, and takes no second place.
    status, again = desk.call("POST", path, "agent1", {"note": "顾客希望下午联系", "request_id": "cb-next"})
    assert status == 200 and (again["callback_id"], again["window"]) == (booked["callback_id"], booked["window"])
    assert client.scard(windows.window_key(window[0])) == 1


def test_the_workspace_refuses_when_every_window_is_full(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(callback=ONE_PER_WINDOW, opening_hours=ONE_HOUR_A_DAY)
    desk.login("agent1")
    assert 21 <= run(desk.redis_url, desk.policy_file, fill_all) <= 22
    sender = "app:booking-ws-full"
    claimed(desk, sender)  # after closing time too, a waiting handoff stays in the queue: no window has room
    status, body = desk.call("POST", f"/api/conversations/{sender}/actions/callback", "agent1", {"note": "", "request_id": "cb-full"})
    assert (status, body["error"]["code"]) == (409, "no_callback_window")
    assert "三周内都没有可预约的回访时段" in body["error"]["message"]
    assert sync_client(desk.redis_url).zcard(keys.CALLBACKS_OPEN) == 0
