"""The NLU inbox captured by the tracker store in a real redis-server: masked, once per turn, capped,
expiring, and never failing or holding up a turn when its Redis is down or hangs."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Iterator, List

import pytest
import redis
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot import nlu_inbox
from bot.nlu_inbox import INDEX, InboxConfig, TrackerCapture, item_key
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT
from bot.tracker_store import EncryptedRedisTrackerStore

SECRET = "test-inbox-secret"
T0 = time.time() - 600
"""Ten minutes ago: the conversations' clock (items older than their retention are not kept)."""


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT_ROOT / "domain.yml"))


@pytest.fixture()
def store(redis_server: RedisServer, redis_url: str, domain: Domain) -> EncryptedRedisTrackerStore:
    store = EncryptedRedisTrackerStore(domain, host="127.0.0.1", port=redis_server.port, key_prefix="tracker", identity_secret=SECRET)
    store.inbox = TrackerCapture(store.inbox.redis_url, InboxConfig(retention_s=3600, confidence=0.6, max_items=100))
    return store


@pytest.fixture()
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def said(text: str, intent: str, confidence: float, at: float) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": confidence}, [], timestamp=T0 + at, input_channel="app", message_id=f"m{at}")


def conversation(sender: str, domain: Domain, *turns: Event) -> DialogueStateTracker:
    start: List[Event] = [ActionExecuted("action_session_start", timestamp=1.0), SessionStarted(timestamp=1.1),
                          ActionExecuted("action_listen", timestamp=1.2)]
    return DialogueStateTracker.from_events(sender, start + list(turns), slots=domain.slots)


def items(client: redis.Redis) -> List[dict]:
    return [client.hgetall(item_key(i)) for i in client.zrange(INDEX, 0, -1)]


def test_a_fallback_is_kept_masked_once_per_turn(store: EncryptedRedisTrackerStore, client: redis.Redis, domain: Domain) -> None:
    tracker = conversation("conv-inbox-1", domain,
                           said("优惠券用不了，手机13812345678，收货人：王芳", "nlu_fallback", 0.45, 2.0),
                           ActionExecuted("action_nlu_fallback", timestamp=2.1), BotUttered("抱歉，我没太明白", timestamp=2.2),
                           ActionExecuted("action_listen", timestamp=2.3))
    asyncio.run(store.save(tracker))
    asyncio.run(store.save(tracker))  # Rasa saves more than once per turn: one item
    [item] = items(client)
    assert item["text"] == "优惠券用不了，手机138****5678，收货人：王*"
    assert (item["intent"], item["reasons"], item["channel"]) == ("nlu_fallback", "fallback", "app")
    assert 3500 < client.ttl(item_key(item["id"])) <= 3600
    stored = " ".join(client.keys("nlu_inbox:*")) + " ".join(item.values())
    assert "conv-inbox-1" not in stored and "13812345678" not in stored


def test_an_understood_message_is_not_kept(store: EncryptedRedisTrackerStore, client: redis.Redis, domain: Domain) -> None:
    asyncio.run(store.save(conversation("conv-inbox-2", domain, said("我的快递到哪了", "track_order", 0.99, 2.0))))
    assert items(client) == []


def test_a_correction_adds_its_reason_and_a_label_survives_later_saves(store: EncryptedRedisTrackerStore, client: redis.Redis,
                                                                       domain: Domain) -> None:
    first = [said("京享值怎么看", "out_of_scope", 0.55, 2.0), ActionExecuted("utter_out_of_scope", timestamp=2.1),
             ActionExecuted("action_listen", timestamp=2.2)]
    asyncio.run(store.save(conversation("conv-inbox-3", domain, *first)))
    [item] = items(client)
    assert item["reasons"] == "low_confidence"
    assert asyncio.run(_label(client, item["id"])) == "labelled"
    tracker = conversation("conv-inbox-3", domain, *first, said("不是这个意思", "deny", 0.99, 3.0))
    asyncio.run(store.save(tracker))
    [item] = items(client)
    assert (item["reasons"], item["label"], item["labelled_by"]) == ("low_confidence,correction", "membership_tier", "supervisor")


async def _label(client: redis.Redis, identifier: str) -> str:
    connection = redis.asyncio.Redis(host=client.connection_pool.connection_kwargs["host"],
                                     port=client.connection_pool.connection_kwargs["port"], decode_responses=True)
    try:
        return await nlu_inbox.label_item(connection, identifier, "membership_tier", "supervisor")
    finally:
        await connection.close()


def test_the_receivers_name_in_a_slot_is_masked(store: EncryptedRedisTrackerStore, client: redis.Redis, domain: Domain) -> None:
    tracker = conversation("conv-inbox-4", domain, said("改成李建国收，咋弄", "nlu_fallback", 0.3, 2.0),
                           SlotSet("new_receiver_name", "李建国", timestamp=2.1))
    asyncio.run(store.save(tracker))
    [item] = items(client)
    assert "李建国" not in item["text"] and "李**" in item["text"]


def test_the_inbox_is_capped_oldest_first(store: EncryptedRedisTrackerStore, client: redis.Redis, domain: Domain) -> None:
    store.inbox = TrackerCapture(store.inbox.redis_url, InboxConfig(retention_s=3600, confidence=0.6, max_items=3))
    for number in range(5):
        asyncio.run(store.save(conversation(f"conv-cap-{number}", domain, said(f"第{number}句看不懂的话", "nlu_fallback", 0.1, 10.0 + number))))
    assert [item["text"] for item in items(client)] == ["第2句看不懂的话", "第3句看不懂的话", "第4句看不懂的话"]
    assert len(client.keys(nlu_inbox.ITEM_PREFIX + "*")) == 3


def test_a_message_older_than_the_retention_is_not_kept(store: EncryptedRedisTrackerStore, client: redis.Redis,
                                                        domain: Domain) -> None:
    asyncio.run(store.save(conversation("conv-old", domain, said("看不懂", "nlu_fallback", 0.1, -7200))))
    assert items(client) == [] and client.keys(nlu_inbox.ITEM_PREFIX + "*") == []


def test_nothing_is_kept_with_a_retention_of_zero(store: EncryptedRedisTrackerStore, client: redis.Redis, domain: Domain) -> None:
    store.inbox = TrackerCapture(store.inbox.redis_url, InboxConfig(retention_s=0))
    asyncio.run(store.save(conversation("conv-off", domain, said("看不懂", "nlu_fallback", 0.1, 2.0))))
    assert items(client) == []


def test_an_unreachable_inbox_never_fails_the_save(store: EncryptedRedisTrackerStore, client: redis.Redis, domain: Domain,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    store.inbox = TrackerCapture(f"redis://127.0.0.1:{free_port()}/0", InboxConfig(retention_s=3600))
    tracker = conversation("conv-down", domain, said("看不懂", "nlu_fallback", 0.1, 2.0))
    with caplog.at_level(logging.WARNING, logger="bot.nlu_inbox"):
        asyncio.run(store.save(tracker))
    assert client.exists("tracker:tracker:conv-down") and items(client) == []
    assert "nlu_inbox.capture_failed" in caplog.text


def test_a_hanging_inbox_holds_a_turn_up_for_its_timeout_only(store: EncryptedRedisTrackerStore, domain: Domain) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: List[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    store.inbox = TrackerCapture(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", InboxConfig(retention_s=3600), timeout_s=0.3)
    try:
        started = time.monotonic()
        asyncio.run(store.save(conversation("conv-hang", domain, said("看不懂", "nlu_fallback", 0.1, 2.0))))
        assert time.monotonic() - started < 1.5
    finally:
        for connection in accepted:
            connection.close()
        listener.close()
