"""action_handoff, action_nlu_fallback and action_record_rating against the real CRM and a real Redis."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions.crm import get_crm_client
from actions.handoff import HANDOFF_FAILED, ActionHandoff, ActionNluFallback, ActionRecordRating, set_handoff_context
from actions.replies import human_buttons
from bot.redis_server import free_port
from handoff import agents, keys, texts
from handoff.context import HandoffContext
from handoff.express import express_enqueue, metadata_for
from handoff.models import HandoffRequest
from handoff.policy import load_policy
from handoff.windows import book_window, window_key
from tests.support.desk import write_policy
from tests.support.handoff import sync_client

from .conftest import signed_metadata

TZ = ZoneInfo("Asia/Shanghai")


def tracker(sender: str, events: List[Dict[str, Any]], customer_id: Optional[str] = "C000001", slots: Optional[Dict[str, Any]] = None,
            metadata: Optional[Dict[str, Any]] = None) -> Tracker:
    latest = next(e for e in reversed(events) if e["event"] == "user")
    return Tracker.from_dict({
        "sender_id": sender,
        "slots": {"order_id": None, "phone_last4": None, "verified_order_id": None, "failed_attempts": 0.0, "pending_flow": None,
                  "handoff_reason": None, **(slots or {})},
        "latest_message": {"text": latest["text"], "intent": latest["parse_data"]["intent"], "entities": latest["parse_data"]["entities"],
                           "metadata": {**signed_metadata(sender, customer_id), **(metadata or {})}},
        "events": events, "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen",
    })


def user(text: str, intent: str, entities: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    return {"event": "user", "text": text, "timestamp": time.time(), "parse_data": {"intent": {"name": intent, "confidence": 0.9},
                                                                                  "entities": entities or []}}


def bot(text: str) -> Dict[str, Any]:
    return {"event": "bot", "text": text, "timestamp": time.time()}


def run(action: Any, tr: Tracker, redis_url: str, policy: Path, online: Tuple[str, ...] = ()) -> Tuple[List[Any], List[Dict[str, Any]]]:
    async def go():
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=2, socket_connect_timeout=1)
        ctx = HandoffContext(client, load_policy(policy), TZ)
        set_handoff_context(ctx)
        try:
            for agent in online:
                await agents.heartbeat(ctx, agent)
            dispatcher = CollectingDispatcher()
            events = await action.run(dispatcher, tr, {})
            return events, dispatcher.messages
        finally:
            set_handoff_context(None)
            await get_crm_client().close()
            await client.close()

    return asyncio.run(go())


def closed_now(tmp_path: Path) -> Path:
    hour = datetime.now(TZ).hour
    hours = {"open": "13:00", "close": "14:00"} if hour < 12 else {"open": "01:00", "close": "02:00"}
    return write_policy(tmp_path / "closed.yml", opening_hours={"default": hours, "closed_dates": []})


def request_payload(redis_url: str) -> Dict[str, Any]:
    entries = sync_client(redis_url).xrange(keys.REQUESTS_STREAM)
    assert len(entries) == 1
    return json.loads(entries[0][1]["payload"])


def test_handoff_with_agents_online_queues_a_full_summary(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    events = [user("我的快递到哪了", "track_order"), bot("您的订单 880000010001 运输中，非常抱歉已经晚了。"), user("转人工", "human_agent")]
    returned, messages = run(ActionHandoff(), tracker("conv-act-1", events), redis_url, policy, online=("agent1",))
    (message,) = messages
    assert "正在为您转接人工客服" in message["text"] and "您是金牌会员，已为您进入优先队列" in message["text"]
    assert "您是下一位，预计" in message["text"] and "（约 1 分钟）" in message["text"]
    payload = request_payload(redis_url)
    assert payload["sender"] == "conv-act-1" and payload["customer_id"] == "C000001" and payload["tier"] == "L4"
    assert payload["reason"] == "requested" and payload["intents"] == ["track_order", "human_agent"] and payload["position_told"] == 1
    who = payload["summary"]["who"]
    assert who["phone"] == "138****5678" and who["name"] == "张*" and who["verified"]
    assert [o["order_id"] for o in payload["summary"]["orders"]] == ["880000010001"]
    assert "13812345678" not in json.dumps(payload, ensure_ascii=False)
    assert sync_client(redis_url).get(keys.active("conv-act-1")) == payload["handoff_id"]
    assert [e for e in returned if e.get("name") == "handoff_reason"]


def test_a_handoff_the_channel_opened_is_completed_not_queued_again(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")

    async def channel_opens() -> HandoffRequest:
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
        try:
            ctx = HandoffContext(client, load_policy(policy), TZ)
            await agents.heartbeat(ctx, "agent1")
            opened = await express_enqueue(ctx, "conv-act-express", "C000001", "app", "转人工")
            assert opened is not None
            return opened
        finally:
            await client.close()

    opened = asyncio.run(channel_opens())
    sync_client(redis_url).delete(keys.REQUESTS_STREAM)  # taken in by a desk
    events = [user("我的快递到哪了", "track_order"), bot("您的订单 880000010001 运输中。"), user("转人工", "human_agent")]
    _, messages = run(ActionHandoff(), tracker("conv-act-express", events, metadata=metadata_for(opened)), redis_url, policy,
                      online=("agent1",))
    (message,) = messages
    assert "正在为您转接人工客服" in message["text"] and "您是金牌会员，已为您进入优先队列" in message["text"]
    payload = request_payload(redis_url)
    assert payload["refines"] is True and payload["handoff_id"] == opened.handoff_id and payload["enqueued_at"] == opened.enqueued_at
    assert payload["tier"] == "L4" and [o["order_id"] for o in payload["summary"]["orders"]] == ["880000010001"]
    assert sync_client(redis_url).get(keys.active("conv-act-express")) == opened.handoff_id


def test_a_handoff_the_channel_opened_that_ended_meanwhile_gives_a_new_one(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    ended = HandoffRequest(keys.new_handoff_id(), "conv-act-ended", "C000001", None, "", "requested", ["human_agent"], {}, "", time.time())
    events = [user("人工客服", "human_agent")]
    _, messages = run(ActionHandoff(), tracker("conv-act-ended", events, metadata=metadata_for(ended)), redis_url, policy,
                      online=("agent1",))
    assert "正在为您转接人工客服" in messages[0]["text"]
    payload = request_payload(redis_url)
    assert payload["refines"] is False and payload["handoff_id"] != ended.handoff_id
    assert sync_client(redis_url).get(keys.active("conv-act-ended")) == payload["handoff_id"]


def test_second_request_while_waiting_does_not_queue_twice(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    events = [user("人工", "human_agent")]
    run(ActionHandoff(), tracker("conv-act-2", events), redis_url, policy, online=("agent1",))
    _, messages = run(ActionHandoff(), tracker("conv-act-2", events), redis_url, policy, online=("agent1",))
    assert "您已经在人工客服队列中了" in messages[0]["text"]
    assert sync_client(redis_url).xlen(keys.REQUESTS_STREAM) == 1


def test_no_agent_online_books_a_callback_with_a_window(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    _, messages = run(ActionHandoff(), tracker("conv-act-3", [user("我要投诉快递员", "complaint")], "C000007"), redis_url, policy)
    text = messages[0]["text"]
    assert "现在人工客服都不在线" in text and "已为您登记人工回访" in text and "稍后" not in text
    client = sync_client(redis_url)
    (callback_id,) = client.zrange(keys.CALLBACKS_OPEN, 0, -1)
    ticket = client.hgetall(keys.callback(callback_id))
    assert ticket["reason"] == "complaint" and ticket["after_sales"] == "1" and ticket["phone_masked"] == "135****7777"
    assert float(ticket["window_end"]) - float(ticket["window_start"]) == 3600
    start = datetime.fromtimestamp(float(ticket["window_start"]), TZ)
    assert f"{start:%H:%M}" in text
    assert client.get(keys.active("conv-act-3")) is None  # the bot keeps the conversation meanwhile


def test_outside_opening_hours_the_callback_says_so(crm, redis_url: str, tmp_path: Path):
    _, messages = run(ActionHandoff(), tracker("conv-act-4", [user("转人工", "human_agent")]), redis_url, closed_now(tmp_path), online=("agent1",))
    assert "现在不在人工客服服务时间" in messages[0]["text"]
    assert sync_client(redis_url).zcard(keys.CALLBACKS_OPEN) == 1


def test_anonymous_shopper_can_be_handed_off(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    _, messages = run(ActionHandoff(), tracker("conv-act-5", [user("人工客服", "human_agent")], None), redis_url, policy, online=("agent2",))
    assert "正在为您转接人工客服" in messages[0]["text"] and "优先队列" not in messages[0]["text"]
    payload = request_payload(redis_url)
    assert payload["customer_id"] is None and payload["summary"]["who"]["verified"] is False


def test_redis_down_is_told_honestly(crm, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    _, messages = run(ActionHandoff(), tracker("conv-act-6", [user("转人工", "human_agent")]), f"redis://127.0.0.1:{free_port()}/0", policy)
    assert messages[0]["text"] == HANDOFF_FAILED


def test_fallback_helps_first_then_hands_off(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    first = [user("asdfgh", "nlu_fallback")]
    _, messages = run(ActionNluFallback(), tracker("conv-act-7", first), redis_url, policy, online=("agent1",))
    assert len(messages) == 1 and messages[0]["response"] == "utter_default"
    second = [*first, {"event": "action", "name": "action_nlu_fallback"}, bot("抱歉，我没太明白您的意思。"), user("qwerty", "nlu_fallback")]
    _, messages = run(ActionNluFallback(), tracker("conv-act-7", second), redis_url, policy, online=("agent1",))
    assert "正在为您转接人工客服" in messages[0]["text"]
    assert request_payload(redis_url)["reason"] == "fallback"


@pytest.mark.parametrize(
    "text, entities, expected",
    [
        ('/rate_service{"rating":"4"}', [{"entity": "rating", "value": "4"}], "收到您的 4 分评价"),
        ("五星好评", [], "收到您的 5 分评价"),
        ("1分，太差了", [], "非常抱歉"),
    ],
)
def test_rating_is_stored_against_the_handoff(crm, redis_url: str, tmp_path: Path, text, entities, expected):
    policy = write_policy(tmp_path / "open.yml")
    client = sync_client(redis_url)
    client.hset(keys.record("h" + "1" * 24), mapping={"handoff_id": "h" + "1" * 24, "status": "resolved"})
    client.set(keys.rating_pending("conv-act-8"), "h" + "1" * 24)
    _, messages = run(ActionRecordRating(), tracker("conv-act-8", [user(text, "rate_service", entities)]), redis_url, policy)
    assert expected in messages[0]["text"]
    assert client.hget(keys.record("h" + "1" * 24), "rating") in ("4", "5", "1")
    assert client.get(keys.rating_pending("conv-act-8")) is None


def test_rating_without_a_score_asks_again(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    _, messages = run(ActionRecordRating(), tracker("conv-act-9", [user("嗯", "rate_service")]), redis_url, policy)
    assert "打几分" in messages[0]["text"] and len(messages[0]["buttons"]) == 5


def test_a_flow_that_failed_twice_is_the_reason(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    tr = tracker("conv-act-10", [user("转人工", "human_agent")], slots={"flow_invalid_answers": 2.0})
    run(ActionHandoff(), tr, redis_url, policy, online=("agent1",))
    assert request_payload(redis_url)["reason"] == "flow_failed"


def test_a_contested_policy_verdict_reaches_the_agent_as_undecided(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "open.yml")
    button = human_buttons("policy_undecided")[0]
    assert button["payload"] == '/human_agent{"handoff_reason":"policy_undecided"}'
    tr = tracker("conv-act-11", [user(button["payload"], "human_agent",
                                      [{"entity": "handoff_reason", "value": "policy_undecided",
                                        "extractor": "RegexMessageHandler"}])])
    run(ActionHandoff(), tr, redis_url, policy, online=("agent1",))
    assert request_payload(redis_url)["reason"] == "policy_undecided"


def test_a_low_rating_opens_a_supervisor_review_and_says_by_when(crm, redis_url: str, tmp_path: Path):
    from handoff import reviews

    policy = write_policy(tmp_path / "open.yml", reviews={"due_workdays": 3})
    handoff_id = "h" + "2" * 24
    client = sync_client(redis_url)
    client.hset(keys.record(handoff_id), mapping={"handoff_id": handoff_id, "status": "resolved", "agent": "agent1"})
    client.set(keys.rating_pending("conv-act-review"), handoff_id)
    _, messages = run(ActionRecordRating(), tracker("conv-act-review", [user("2分", "rate_service")]), redis_url, policy)
    review_id = reviews.review_id_for("low_rating", handoff_id)
    review = client.hgetall(reviews.review_key(review_id))
    assert review["status"] == "open" and review["agent"] == "agent1" and review["score"] == "2"
    due = datetime.fromtimestamp(float(review["due_at"]), TZ)
    assert f"客服主管会在 3 个工作日内（{due.month}月{due.day}日 {due:%H:%M} 前）联系您" in messages[0]["text"]
    assert review_id in messages[0]["text"] and due.weekday() < 5
    assert client.zscore(reviews.REVIEWS_OPEN, review_id) == float(review["due_at"])


def test_a_full_window_offers_the_next_one_and_says_which(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "one.yml", callback={"window_minutes": 60, "lead_minutes": 20, "capacity_per_window": 1})

    async def fill_first() -> List[Tuple[datetime, datetime]]:
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
        try:
            ctx = HandoffContext(client, load_policy(policy), TZ)
            # the first window from now, and the one after the next ten-minute mark (the first if the clock passes it meanwhile)
            return [await book_window(ctx, keys.new_callback_id(), ctx.local(ctx.now() + ahead)) for ahead in (0, 600)]
        finally:
            await client.close()

    full = asyncio.run(fill_first())
    _, messages = run(ActionHandoff(), tracker("conv-act-full", [user("转人工", "human_agent")]), redis_url, policy)
    client = sync_client(redis_url)
    (callback_id,) = [c for c in client.zrange(keys.CALLBACKS_OPEN, 0, -1) if client.hget(keys.callback(c), "sender") == "conv-act-full"]
    ticket = client.hgetall(keys.callback(callback_id))
    start, end = (datetime.fromtimestamp(float(ticket[name]), TZ) for name in ("window_start", "window_end"))
    assert (start, end) not in full and start >= full[0][1]
    assert client.sismember(window_key(start), callback_id)
    assert f"客服将在 {texts.window(start, end, datetime.now(TZ))} 联系您" in messages[0]["text"]


def test_every_window_full_books_nothing_and_says_so(crm, redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "one.yml", callback={"capacity_per_window": 1},
                          opening_hours={"default": {"open": "08:00", "close": "09:00"}, "closed_dates": []})  # one window a day

    async def fill_all() -> int:
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=2)
        try:
            ctx, count = HandoffContext(client, load_policy(policy), TZ), 0
            while await book_window(ctx, keys.new_callback_id()) is not None and count < 30:
                count += 1
            return count
        finally:
            await client.close()

    assert 21 <= asyncio.run(fill_all()) <= 22
    _, messages = run(ActionHandoff(), tracker("conv-act-all-full", [user("转人工", "human_agent")]), redis_url, policy)
    assert [m["text"] for m in messages] == [texts.say("callbacks_full")]
    assert "三周的人工回访时段也都已约满" in messages[0]["text"]
    assert sync_client(redis_url).zcard(keys.CALLBACKS_OPEN) == 0
