"""Callback windows have a capacity: a full window offers the next, and concurrent bookings never overfill one."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from bot.outbox import outbox_key
from handoff import keys, queue, texts, windows
from handoff.callbacks import queued_to_callbacks
from handoff.context import HandoffContext
from handoff.policy import load_policy
from tests.support.desk import write_policy
from tests.support.handoff import request, run, sync_client

TZ = ZoneInfo("Asia/Shanghai")


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)


def policy_file(tmp_path: Path, capacity: int) -> Path:
    return write_policy(tmp_path / "service.yml", opening_hours={"default": {"open": "08:00", "close": "22:00"}, "closed_dates": []},
                        callback={"window_minutes": 60, "lead_minutes": 20, "capacity_per_window": capacity})


@pytest.mark.parametrize("moment, expected", [
    ("2026-12-03 10:00", [("12-03 10:20", "11:20"), ("12-03 11:20", "12:20"), ("12-03 12:20", "13:20")]),
    ("2026-12-03 10:05", [("12-03 10:30", "11:30"), ("12-03 11:30", "12:30"), ("12-03 12:30", "13:30")]),
    ("2026-12-03 20:40", [("12-03 21:00", "22:00"), ("12-04 08:00", "09:00"), ("12-04 09:00", "10:00")]),
    ("2026-12-03 21:00", [("12-03 21:20", "22:00"), ("12-04 08:00", "09:00"), ("12-04 09:00", "10:00")]),
    ("2026-12-03 23:30", [("12-04 08:00", "09:00"), ("12-04 09:00", "10:00"), ("12-04 10:00", "11:00")]),
    ("2026-12-03 03:00", [("12-03 08:00", "09:00"), ("12-03 09:00", "10:00"), ("12-03 10:00", "11:00")]),
])
def test_successive_windows(tmp_path: Path, moment: str, expected):
    policy = load_policy(policy_file(tmp_path, 3))
    found = windows.candidate_windows(policy, at(moment), TZ, count=3)
    assert [(f"{s:%m-%d %H:%M}", f"{e:%H:%M}") for s, e in found] == expected


@pytest.mark.parametrize("booked, capacity, expected", [
    ([0, 0, 0], 2, 0),
    ([2, 1, 0], 2, 1),
    ([2, 2, 2], 2, None),
    ([2, 2, 1], 2, 2),
    ([9, 9], 0, 0),
    ([], 2, None),
])
def test_first_window_with_room(booked, capacity, expected):
    fake = [(at("2026-12-03 08:00"), at("2026-12-03 09:00"))] * len(booked)
    assert windows.first_with_room(fake, booked, capacity) == expected


def test_concurrent_bookings_never_exceed_capacity(redis_url: str, tmp_path: Path):
    policy = load_policy(policy_file(tmp_path, 3))
    moment = at("2026-12-03 21:00")

    async def book_all():
        clients = [Redis.from_url(redis_url, decode_responses=True) for _ in range(10)]
        try:
            contexts = [HandoffContext(c, policy, TZ) for c in clients]
            ids = [keys.new_callback_id() for _ in range(10)]
            got = await asyncio.gather(*(windows.book_window(contexts[i], ids[i], moment) for i in range(10)))
            again = await windows.book_window(contexts[0], ids[0], moment)
            counts = [await windows.booked(contexts[0], w) for w in windows.candidate_windows(policy, moment, TZ, count=5)]
            return got, again, counts
        finally:
            for c in clients:
                await c.close()

    got, again, counts = asyncio.run(book_all())
    assert counts == [3, 3, 3, 1, 0]
    starts = [f"{w[0]:%m-%d %H:%M}" for w in got]
    assert sorted(set(starts)) == ["12-03 21:20", "12-04 08:00", "12-04 09:00", "12-04 10:00"]
    assert again == got[0]


def test_a_full_window_offers_the_next_and_the_shopper_is_told_it(redis_url: str, tmp_path: Path):
    path = write_policy(tmp_path / "one.yml", callback={"capacity_per_window": 1})
    first = dataclasses.replace(request("conv-window-1"), enqueued_at=time.time() - 700)
    second = dataclasses.replace(request("conv-window-2", customer_id="C000002"), enqueued_at=time.time() - 690)

    async def scenario(ctx: HandoffContext) -> int:
        await asyncio.gather(*(queue.enqueue(ctx, req) for req in (first, second)))
        assert [await queue.materialize(ctx, req) for req in (first, second)] == [1, 1]
        return await queued_to_callbacks(ctx, waited_s=ctx.policy.unattended_after_s)

    assert run(redis_url, path, scenario) == 2
    client = sync_client(redis_url)
    tickets = [client.hgetall(keys.callback(c)) for c in client.zrange(keys.CALLBACKS_OPEN, 0, -1)]
    mine = sorted((t for t in tickets if t["sender"] in (first.sender, second.sender)), key=lambda t: float(t["window_start"]))
    assert len(mine) == 2 and float(mine[1]["window_start"]) >= float(mine[0]["window_end"])
    for ticket in mine:
        start = datetime.fromtimestamp(float(ticket["window_start"]), TZ)
        end = datetime.fromtimestamp(float(ticket["window_end"]), TZ)
        notice = json.loads(client.xrange(outbox_key(ticket["sender"]))[-1][1]["message"])["text"]
        assert texts.window(start, end, datetime.now(TZ)) in notice  # e.g. 今天 23:30–次日 00:30
