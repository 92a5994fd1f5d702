"""Reviews beyond ratings, on a real Redis: a missed first-response target and a shopper's complaint while or right
after an agent served them each open one supervisor review (once per handoff), the shopper is told its number and
the concrete time a supervisor contacts them, and supervisors see and close it on the desk."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, List

import pytest

from bot.outbox import outbox_key
from handoff import agents, conversation, keys, queue, reviews
from handoff.complaints import is_complaint
from handoff.context import HandoffContext
from handoff.policy import complaint_is_about_agent, first_response_breached, load_policy
from tests.support.desk import POLICY_FILE, DeskProcess, write_policy
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

TZ_NAME = "Asia/Shanghai"


@pytest.mark.parametrize("due, first_response_at, now, expected", [
    (100.0, None, 99.0, False),    # still within the target
    (100.0, None, 101.0, True),    # unanswered past it
    (100.0, 90.0, 500.0, False),   # answered in time
    (100.0, 130.0, 500.0, True),   # answered late
])
def test_first_response_breach(due, first_response_at, now, expected):
    assert first_response_breached(due, first_response_at, now) is expected


@pytest.mark.parametrize("status, resolved_ago_s, expected", [
    ("assigned", None, True),
    ("resolved", 60, True),
    ("resolved", 1800, True),
    ("resolved", 1801, False),     # reviews.complaint_after_s of the shipped policy: 1800
    ("queued", None, False),       # nobody served them yet
    ("cancelled", 60, False),
])
def test_a_complaint_is_about_the_agent_while_or_right_after_they_served(status, resolved_ago_s, expected):
    now = 10_000.0
    resolved_at = None if resolved_ago_s is None else now - resolved_ago_s
    assert complaint_is_about_agent(load_policy(POLICY_FILE), status, resolved_at, now) is expected


@pytest.mark.parametrize("text, expected", [
    ("你们这个客服态度太差了，我要投诉", True),
    ("气死我了！！", True),
    ("能不能换个客服", True),
    ("好的，谢谢你", False),
    ("我的快递到哪了", False),
    ("", False),
])
def test_complaint_words(text, expected):
    assert is_complaint(text) is expected


def _notices(redis_url: str, sender: str) -> List[str]:
    return [json.loads(fields["message"])["text"] for _, fields in sync_client(redis_url).xrange(outbox_key(sender))]


def _due(review: dict) -> str:
    from zoneinfo import ZoneInfo

    due = datetime.fromtimestamp(float(review["due_at"]), ZoneInfo(TZ_NAME))
    return f"{due.month}月{due.day}日 {due:%H:%M}"


def test_a_missed_first_response_opens_a_review_supervisors_close(start_desk: Callable[..., DeskProcess]):
    desk = start_desk(agents=("agent1", "supervisor1"), recovery={"sweep_interval_s": 1})
    desk.login("agent1")
    desk.login("supervisor1")
    late = dataclasses.replace(request("app:sla-late"), enqueued_at=time.time() - 300)  # waited 5 minutes, target 2
    fresh = request("app:sla-fresh")
    for req in (late, fresh):
        run(desk.redis_url, desk.policy_file, lambda ctx, req=req: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    review_id = wait_for(lambda: client.hget(keys.record(late.handoff_id), "sla_review_id"))  # the desk's sweep opened it
    status, body = desk.call("GET", "/api/reviews", "supervisor1")
    (item,) = body["reviews"]
    assert (item["review_id"], item["kind"], item["handoff_id"], item["status"]) == (review_id, "sla_breach", late.handoff_id, "open")
    assert [text for text in _notices(desk.redis_url, "app:sla-late") if "复盘" in text] == [  # beside any queue position update
        f"非常抱歉让您久等了：人工客服没有在 2 分钟内回复您，超出了我们的服务承诺。已为您登记主管复盘（编号 {review_id}），"
        f"客服主管会在 2 个工作日内（{_due(item)} 前）联系您。您的对话没有中断，客服会尽快为您处理。"]
    assert not any("复盘" in text for text in _notices(desk.redis_url, "app:sla-fresh"))
    assert client.hget(keys.record(fresh.handoff_id), "sla_review_id") is None
    assert run(desk.redis_url, desk.policy_file, reviews.open_sla_reviews) == 0  # once per handoff, whoever sweeps

    status, body = desk.call("POST", f"/api/reviews/{review_id}/close", "supervisor1", {"note": "高峰排班不足，已加派人手"})
    assert (status, body["status"]) == (200, "closed")
    _, body = desk.call("GET", "/api/reviews?include_closed=1", "supervisor1")
    assert [(r["status"], r["note"]) for r in body["reviews"]] == [("closed", "高峰排班不足，已加派人手")]


def test_a_late_first_reply_is_reviewed_too(redis_url: str, tmp_path: Path):
    policy_file = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext):
        await agents.heartbeat(ctx, "agent1")
        req = dataclasses.replace(request("app:sla-reply"), enqueued_at=ctx.now() - 200)
        await queue.enqueue(ctx, req)
        await queue.materialize(ctx, req)
        assert (await queue.claim(ctx, req.sender, "agent1", "小王")).status == "ok"
        assert (await conversation.agent_message(ctx, req.sender, "agent1", "小王", "您好，我来为您处理。")).ok
        return await reviews.open_sla_reviews(ctx), await reviews.list_reviews(ctx)

    count, found = run(redis_url, policy_file, scenario)
    assert count == 1 and [(r["kind"], r["agent"]) for r in found] == [("sla_breach", "agent1")]


def test_a_complaint_while_an_agent_serves_opens_one_review(redis_url: str, tmp_path: Path):
    policy_file = write_policy(tmp_path / "service.yml")
    sender = "app:complain-during"

    async def scenario(ctx: HandoffContext):
        await agents.heartbeat(ctx, "agent1")
        req = request(sender)
        await queue.enqueue(ctx, req)
        await queue.materialize(ctx, req)
        assert (await queue.claim(ctx, sender, "agent1", "小王")).status == "ok"
        for text in ("好的，谢谢", "你这个客服态度太差了，我要投诉你！电话13812345678", "还在敷衍我"):
            await conversation.route_shopper_message(ctx, sender, text, "C000001", "app")
        return await reviews.list_reviews(ctx)

    (review,) = run(redis_url, policy_file, scenario)
    assert (review["kind"], review["agent"], review["sender"]) == ("complaint", "agent1", sender)
    assert "13812345678" not in review["detail"] and "态度太差" in review["detail"]
    notices = _notices(redis_url, sender)
    assert notices[1:] == [
        f"非常抱歉这次的服务让您不满意。您对客服小王的意见已登记为主管复盘（编号 {review['review_id']}），"
        f"客服主管会在 2 个工作日内（{_due(review)} 前）联系您，核实后把处理结果告诉您。"]
    assert notices[0].startswith("客服小王已接入")


def test_a_complaint_right_after_the_agent_ended_opens_a_review(redis_url: str, tmp_path: Path):
    policy_file = write_policy(tmp_path / "service.yml")

    async def scenario(ctx: HandoffContext):
        await agents.heartbeat(ctx, "agent1")
        told = []
        for sender in ("app:after-soon", "app:after-late"):
            req = request(sender)
            await queue.enqueue(ctx, req)
            await queue.materialize(ctx, req)
            assert (await queue.claim(ctx, sender, "agent1", "小王")).status == "ok"
            assert (await queue.resolve(ctx, sender, "agent1", "小王", "resolved")).ok
        await ctx.redis.hset(keys.record(await ctx.redis.get(keys.latest("app:after-late"))), "resolved_at", repr(ctx.now() - 3600))
        for sender in ("app:after-soon", "app:after-late", "app:after-soon", "app:never-served"):
            told.append(await reviews.complaint_after_service(ctx, sender, "刚才那个客服太敷衍了"))
        return told, await reviews.list_reviews(ctx)

    told, found = run(redis_url, policy_file, scenario)
    (review,) = found
    assert (review["kind"], review["agent"], review["sender"]) == ("complaint", "agent1", "app:after-soon")
    assert told == [
        f"非常抱歉刚才客服小王的服务让您不满意。您的意见已登记为主管复盘（编号 {review['review_id']}），"
        f"客服主管会在 2 个工作日内（{_due(review)} 前）联系您，核实后把处理结果告诉您。", None, None, None]
