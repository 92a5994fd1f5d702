"""Waiting shoppers are never left waiting in vain: closing time and unattended queues become callbacks."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from bot.outbox import outbox_key
from handoff import keys, queue
from handoff.callbacks import queued_to_callbacks
from handoff.context import HandoffContext
from tests.support.desk import DeskProcess, write_policy
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for


def closed_hours() -> dict:
    """Opening hours that exclude the current time."""
    hour = datetime.now(ZoneInfo("Asia/Shanghai")).hour
    return {"default": {"open": "13:00", "close": "14:00"} if hour < 12 else {"open": "01:00", "close": "02:00"}, "closed_dates": []}


def test_unattended_waits_become_callbacks(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    old = dataclasses.replace(request("conv-unattended-old"), enqueued_at=time.time() - 700)
    new = request("conv-unattended-new")

    async def scenario(ctx: HandoffContext) -> int:
        for req in (old, new):
            await queue.enqueue(ctx, req)
            await queue.materialize(ctx, req)
        return await queued_to_callbacks(ctx, waited_s=ctx.policy.unattended_after_s)

    assert run(redis_url, policy, scenario) == 1
    client = sync_client(redis_url)
    assert client.hget(keys.record(old.handoff_id), "status") == "callback"
    assert client.get(keys.active(old.sender)) is None
    assert client.zrange(keys.QUEUE, 0, -1) == [new.handoff_id]
    (callback_id,) = client.zrange(keys.CALLBACKS_OPEN, 0, -1)
    assert client.hget(keys.callback(callback_id), "source_handoff") == old.handoff_id
    notice = json.loads(client.xrange(outbox_key(old.sender))[-1][1]["message"])
    assert "人工客服都不在线" in notice["text"] and "已为您登记人工回访" in notice["text"]


def test_the_desk_turns_the_queue_into_callbacks_at_closing_time(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(opening_hours=closed_hours())
    req = request("conv-closing")
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(req.handoff_id), "status") == "callback", timeout_s=15)
    assert client.get(keys.active(req.sender)) is None
    notice = json.loads(client.xrange(outbox_key(req.sender))[-1][1]["message"])
    assert "服务时间已结束" in notice["text"] and "–" in notice["text"]
    desk.login("agent1")
    _, body = desk.call("GET", "/api/callbacks", "agent1")
    assert [c["sender"] for c in body["callbacks"]] == [req.sender]
