"""A complaint to the bot right after an agent ended the conversation: action_handoff opens a supervisor review
of that agent and tells the shopper its number and by when, before their place in the queue."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from actions.handoff import ActionHandoff
from handoff import keys, reviews
from tests.support.desk import write_policy
from tests.support.handoff import sync_client

from .test_handoff_actions import TZ, run, tracker, user


def test_a_complaint_right_after_service_opens_a_review_of_that_agent(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    sender, handoff_id = "conv-act-complaint", "h" + "4" * 24
    client = sync_client(redis_url)
    client.hset(keys.record(handoff_id), mapping={"handoff_id": handoff_id, "sender": sender, "status": "resolved", "agent": "agent1",
                                                  "agent_name": "小王", "resolved_at": repr(time.time() - 120)})
    client.set(keys.latest(sender), handoff_id)
    _, messages = run(ActionHandoff(), tracker(sender, [user("刚才那个客服太敷衍了，我要投诉", "complaint")]), redis_url, policy,
                      online=("agent2",))
    review_id = reviews.review_id_for("complaint", handoff_id)
    review = client.hgetall(reviews.review_key(review_id))
    assert (review["kind"], review["agent"], review["status"]) == ("complaint", "agent1", "open")
    due = datetime.fromtimestamp(float(review["due_at"]), TZ)
    assert messages[0]["text"] == (f"非常抱歉刚才客服小王的服务让您不满意。您的意见已登记为主管复盘（编号 {review_id}），"
                                   f"客服主管会在 2 个工作日内（{due.month}月{due.day}日 {due:%H:%M} 前）联系您，核实后把处理结果告诉您。")
    assert "正在为您转接人工客服" in messages[1]["text"] and len(messages) == 2
