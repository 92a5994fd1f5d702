"""Supervisor review items: supervisors list and close them with a note, agents may not; overdue ones are counted."""

from __future__ import annotations

from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

import pytest

from handoff import reviews
from tests.support.desk import DeskProcess
from tests.support.handoff import run, sync_client

TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("start, days, expected", [
    ("2026-12-03 10:00", 2, "2026-12-07 10:00"),   # Thursday + 2 working days: Monday
    ("2026-12-04 18:30", 1, "2026-12-07 18:30"),   # Friday + 1: Monday
    ("2026-12-05 09:00", 1, "2026-12-07 09:00"),   # Saturday + 1: Monday
    ("2026-12-07 09:00", 5, "2026-12-14 09:00"),   # Monday + 5: next Monday
    ("2026-12-01 12:00", 1, "2026-12-02 12:00"),
])
def test_a_review_is_due_in_working_days_and_keeps_its_clock_time(start: str, days: int, expected: str):
    moment = datetime.strptime(start, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)
    assert f"{reviews.add_workdays(moment, days):%Y-%m-%d %H:%M}" == expected


@pytest.fixture()
def desk(start_desk: Callable[..., DeskProcess]) -> DeskProcess:
    desk = start_desk(agents=("agent1", "supervisor1"))
    desk.login("agent1")
    desk.login("supervisor1")
    return desk


def test_supervisors_list_and_close_reviews(desk: DeskProcess):
    opened = run(desk.redis_url, desk.policy_file,
                 lambda ctx: reviews.open_review(ctx, "low_rating", "h" + "3" * 24, "conv-review", "顾客评分 1 分，电话 13812345678", score=1))
    again = run(desk.redis_url, desk.policy_file, lambda ctx: reviews.open_review(ctx, "low_rating", "h" + "3" * 24, "conv-review", "再次"))
    assert opened["created"] and not again["created"] and again["review_id"] == opened["review_id"]
    review_id = opened["review_id"]

    assert desk.call("GET", "/api/reviews", "agent1")[0] == 403
    assert desk.call("POST", f"/api/reviews/{review_id}/close", "agent1", {"note": "已处理"})[0] == 403
    status, body = desk.call("GET", "/api/reviews", "supervisor1")
    assert status == 200
    (item,) = [r for r in body["reviews"] if r["review_id"] == review_id]
    assert item["kind"] == "low_rating" and item["score"] == 1 and not item["overdue"] and "13812345678" not in item["detail"]

    for path, note, code in [(f"/api/reviews/{review_id}/close", " ", 400), ("/api/reviews/nope/close", "好", 400),
                             ("/api/reviews/r" + "0" * 24 + "/close", "好", 404)]:
        assert desk.call("POST", path, "supervisor1", {"note": note})[0] == code
    status, body = desk.call("POST", f"/api/reviews/{review_id}/close", "supervisor1", {"note": "已致电顾客，补发优惠券"})
    assert status == 200 and body["status"] == "closed"
    status, body = desk.call("POST", f"/api/reviews/{review_id}/close", "supervisor1", {"note": "再关一次"})
    assert status == 409 and body["error"]["code"] == "review_done"
    _, body = desk.call("GET", "/api/reviews?include_closed=1", "supervisor1")
    (item,) = [r for r in body["reviews"] if r["review_id"] == review_id]
    assert item["status"] == "closed" and item["closed_by"] == "supervisor1" and item["note"] == "已致电顾客，补发优惠券"


def test_overdue_tickets_are_counted_in_the_metrics(desk: DeskProcess):
    opened = run(desk.redis_url, desk.policy_file, lambda ctx: reviews.open_review(ctx, "low_rating", "h" + "4" * 24, "conv-late", "1 分"))
    client = sync_client(desk.redis_url)
    client.zadd(reviews.REVIEWS_OPEN, {opened["review_id"]: 1.0})  # its due time has passed
    client.hset(reviews.review_key(opened["review_id"]), "due_at", "1.0")
    status, body = desk.call("GET", "/api/metrics", "supervisor1")
    assert status == 200 and body["overdue_tickets"]["reviews"] == 1 and body["overdue_tickets"]["callbacks"] == 0
    _, body = desk.call("GET", "/api/tickets/overdue", "agent1")
    assert body["overdue"]["reviews"] == 1
    _, body = desk.call("GET", "/api/reviews", "supervisor1")
    assert [r["overdue"] for r in body["reviews"] if r["review_id"] == opened["review_id"]] == [True]
