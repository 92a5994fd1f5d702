"""Phone-tail verification throttled in a real Redis before the real CRM is asked: a guessed tail
never reaches the CRM more than the policy allows, whichever conversations make the guesses, a
locked order refuses the right tail too until its window passes, one conversation cannot sweep
orders, and a Redis that cannot count refuses verification instead of allowing unlimited guesses."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from datetime import datetime
from typing import Any, Dict, Iterator, List, Set, Tuple

import pytest
import redis
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import formatting
from actions.crm import set_crm_client
from actions.orders import ActionTrackOrder, ActionTrackOrderFull
from actions.price_protection import ActionPriceProtection
from actions.returns import ActionRefundStatus
from actions.throttle import VerificationPolicy, VerificationThrottle, client_key, default_policy, order_key, set_throttle
from actions.verification import VERIFICATION_UNAVAILABLE
from bot.redis_server import free_port

from .conftest import RecordingCRMClient, fetch, load_tracker, run_action

ORDER_ID = "880000010001"
HUMAN = {"title": "转人工", "payload": "/human_agent"}
POLICY = default_policy()


def entity(name: str, value: str) -> Dict[str, Any]:
    return {"entity": name, "value": value, "start": 0, "end": len(value), "extractor": "ShopPatternExtractor"}


def attempt(sender: str, order_id: str, tail: str, fixture: str = "anonymous_track_order_full"):
    """A new turn of conversation ``sender`` giving an order number and a phone tail."""
    return load_tracker(fixture, sender_id=sender, latest_message={
        "text": f"{order_id} 尾号{tail}", "intent": {"name": "inform", "confidence": 0.95},
        "entities": [entity("order_id", order_id), entity("phone_last4", tail)]})


def proved(events: List[Dict[str, Any]]) -> bool:
    """Whether the turn remembered a proven order."""
    return any(event.get("name") == "verified_order_id" and event.get("value") for event in events)


@pytest.fixture()
def tails(crm_url: str) -> Tuple[str, List[str]]:
    """The order's right tail, and every tail that opens it by neither its phone nor its owner's."""
    order = fetch(crm_url, f"/api/orders/{ORDER_ID}")
    owner = fetch(crm_url, f"/api/customers/{order['customer_id']}")
    right = {order["receiver_phone"][-4:], str(owner.get("phone") or "")[-4:]}
    return order["receiver_phone"][-4:], [f"{n:04d}" for n in range(10000) if f"{n:04d}" not in right]


@pytest.fixture()
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def retry_minutes(raw_redis: redis.Redis, key: str) -> Set[str]:
    """The HH:MM a shopper may be told to retry at: the key's expiry rounded up (either side of a clock tick)."""
    expiry = time.time() + raw_redis.pttl(key) / 1000
    tz = formatting.shop_timezone()
    return {f"{datetime.fromtimestamp(math.ceil((expiry + skew) / 60) * 60, tz):%H:%M}" for skew in (-1, 1)}


def test_300_wrong_tails_from_new_conversations_reach_the_crm_5_times_then_the_right_tail_waits(
        recording_crm: RecordingCRMClient, tails, raw_redis: redis.Redis):
    right, wrong = tails
    refused_texts = []
    for n in range(300):
        events, messages = run_action(ActionTrackOrderFull(), attempt(f"guesser-{n}", ORDER_ID, wrong[n]))
        assert not proved(events)
        if n >= POLICY.max_failures_per_order:
            refused_texts.append(messages[0]["text"])
            assert messages[0]["buttons"] == [HUMAN]
            assert SlotSet("pending_flow", None) in events
    assert recording_crm.count("POST", "/verify") == POLICY.max_failures_per_order == 5
    assert all("核实失败的次数过多" in text and "之后再试" in text and "转人工" in text for text in refused_texts)
    assert int(raw_redis.get(order_key(ORDER_ID))) == 5

    # The right tail is refused the same way, without asking the CRM, with the minute the lock ends.
    events, messages = run_action(ActionTrackOrderFull(), attempt("owner", ORDER_ID, right))
    assert recording_crm.count("POST", "/verify") == 5
    assert not proved(events)
    assert messages[0]["buttons"] == [HUMAN]
    assert any(f"{minute} 之后再试" in messages[0]["text"] for minute in retry_minutes(raw_redis, order_key(ORDER_ID)))
    assert "物流" not in messages[0]["text"]

    # Once the window has passed (its key expires), the right tail opens the order.
    raw_redis.pexpire(order_key(ORDER_ID), 1)
    time.sleep(0.05)
    events, messages = run_action(ActionTrackOrderFull(), attempt("owner", ORDER_ID, right))
    assert recording_crm.count("POST", "/verify") == 6
    assert proved(events)
    assert f"订单 {ORDER_ID}" in messages[0]["text"] and "完整物流" in messages[0]["text"]


def test_a_short_window_passes_by_itself(recording_crm: RecordingCRMClient, tails, redis_url: str):
    right, wrong = tails
    set_throttle(VerificationThrottle(redis_url, VerificationPolicy(2, window_s=2, max_failures_per_order=5,
                                                                     max_failures_per_client=10)))
    started = time.monotonic()
    for n in range(8):
        run_action(ActionTrackOrderFull(), attempt(f"short-{n}", ORDER_ID, wrong[n]))
    _, messages = run_action(ActionTrackOrderFull(), attempt("short-owner", ORDER_ID, right))
    assert recording_crm.count("POST", "/verify") == 5 and "之后再试" in messages[0]["text"]
    assert time.monotonic() - started < 2, "the attempts must fit in the window for this test to mean anything"
    time.sleep(max(0.0, 2.1 - (time.monotonic() - started)))
    events, messages = run_action(ActionTrackOrderFull(), attempt("short-owner", ORDER_ID, right))
    assert recording_crm.count("POST", "/verify") == 6
    assert proved(events)


def test_concurrent_guesses_are_counted_before_the_crm_answers(recording_crm: RecordingCRMClient, tails):
    """60 guesses at once in one action server: the reservation, not the CRM's answer, is what counts."""
    _, wrong = tails

    async def all_at_once() -> List[List[Dict[str, Any]]]:
        async def one(n: int) -> List[Dict[str, Any]]:
            dispatcher = CollectingDispatcher()
            await ActionTrackOrderFull().run(dispatcher, attempt(f"crowd-{n}", ORDER_ID, wrong[n]), {})
            return dispatcher.messages
        try:
            return await asyncio.gather(*(one(n) for n in range(60)))
        finally:
            await recording_crm.close()

    replies = asyncio.run(all_at_once())
    assert recording_crm.count("POST", "/verify") <= 5
    assert sum("之后再试" in messages[0]["text"] for messages in replies) >= 55


def test_a_right_tail_gives_its_reservation_back(recording_crm: RecordingCRMClient, tails, raw_redis: redis.Redis):
    right, wrong = tails
    for n in range(4):
        run_action(ActionTrackOrderFull(), attempt(f"almost-{n}", ORDER_ID, wrong[n]))
    for turn in range(3):
        events, _ = run_action(ActionTrackOrderFull(), attempt(f"owner-{turn}", ORDER_ID, right))
        assert proved(events)
    assert int(raw_redis.get(order_key(ORDER_ID))) == 4
    assert raw_redis.get(client_key("sender:owner-0")) is None
    assert recording_crm.count("POST", "/verify") == 7


def test_one_conversation_cannot_sweep_orders(recording_crm: RecordingCRMClient, raw_redis: redis.Redis):
    """Each order is tried once only, yet the conversation is stopped at its own limit."""
    orders = [f"99990000{n:04d}" for n in range(POLICY.max_failures_per_client + 5)]
    for order_id in orders:
        events, messages = run_action(ActionTrackOrder(), attempt("sweeper", order_id, "0000", "anonymous_track_order"))
    assert recording_crm.count("POST", "/verify") == POLICY.max_failures_per_client == 10
    assert "这次对话中核实失败的次数过多" in messages[0]["text"] and messages[0]["buttons"] == [HUMAN]
    assert SlotSet("pending_flow", None) in events
    assert int(raw_redis.get(client_key("sender:sweeper"))) == 10
    # Another conversation may still try those orders: each has a single failure.
    run_action(ActionTrackOrder(), attempt("someone-else", orders[-1], "0000", "anonymous_track_order"))
    assert recording_crm.count("POST", "/verify") == 11


class SilentServer:
    """A TCP server that accepts connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.held: List[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


@pytest.fixture(params=["refused", "hanging"])
def broken_redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "refused":
        yield f"redis://127.0.0.1:{free_port()}/0"
        return
    server = SilentServer()
    yield f"redis://127.0.0.1:{server.port}/0"
    server.close()


@pytest.mark.parametrize(("action_class", "fixture", "pending"), [
    (ActionTrackOrder, "anonymous_track_order", "pending_flow"),
    (ActionTrackOrderFull, "anonymous_track_order_full", "pending_flow"),
    (ActionRefundStatus, "anonymous_refund_status", "pending_flow"),
    (ActionPriceProtection, "anonymous_price_protection", "pending_flow"),
], ids=["track", "full-track", "refund-status", "price-protection"])
def test_redis_unreachable_fails_closed(recording_crm: RecordingCRMClient, tails, broken_redis_url: str, action_class, fixture, pending):
    right, _ = tails
    set_throttle(VerificationThrottle(broken_redis_url))
    started = time.monotonic()
    events, messages = run_action(action_class(), attempt("no-redis", ORDER_ID, right, fixture))
    assert time.monotonic() - started < 3
    assert messages[0]["text"] == VERIFICATION_UNAVAILABLE and messages[0]["buttons"] == [HUMAN]
    assert recording_crm.requests == []
    assert not proved(events)
    assert SlotSet(pending, None) in events


def test_the_crm_down_gives_the_reservation_back(tails, raw_redis: redis.Redis, crm_url: str):
    _, wrong = tails
    dead = RecordingCRMClient(f"http://127.0.0.1:{free_port()}", timeout_s=0.3)
    set_crm_client(dead)
    try:
        _, messages = run_action(ActionTrackOrderFull(), attempt("crm-down", ORDER_ID, wrong[0]))
    finally:
        set_crm_client(None)
    assert "暂时没有响应" in messages[0]["text"]
    assert raw_redis.get(order_key(ORDER_ID)) is None
