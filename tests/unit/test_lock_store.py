"""Rasa's conversation lock in a real redis-server: order, atomicity across servers, leases, failures."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path
from typing import List, Tuple

import pytest
import redis
from rasa.core.lock_store import LockError, LockStore
from rasa.utils.endpoints import read_endpoint_config

from bot.launcher import base_env
from bot.lock_store import ISSUE, RedisTicketLockStore
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, load_settings
from handoff.context import redis_client
from handoff.conversation import script


def store_for(server: RedisServer, lease_s: float = 10.0) -> RedisTicketLockStore:
    return RedisTicketLockStore(host="127.0.0.1", port=str(server.port), db="0", password="", key_prefix="shop", lease_s=lease_s)


def ticket_fields(url: str, conversation_id: str) -> List[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(name for name in client.hgetall(f"shop:conversation_lock:{conversation_id}") if name.startswith("t:"))
    finally:
        client.close()


def test_a_lock_is_a_ticket_while_held_and_nothing_after(redis_server: RedisServer, redis_url: str) -> None:
    store = store_for(redis_server)

    async def scenario() -> Tuple[List[str], int]:
        async with store.lock("conv-1") as held:
            during = ticket_fields(redis_url, "conv-1")
            number = held.tickets[0].number
        return during, number

    during, number = asyncio.run(scenario())
    assert len(during) == 1 and during[0].startswith(f"t:{number}:")
    assert ticket_fields(redis_url, "conv-1") == []
    ttl = redis.Redis.from_url(redis_url).pttl("shop:conversation_lock:conv-1")
    assert 0 < ttl <= 1000 * (60 + 60)  # the counter expires after the longest ticket could


def test_tickets_of_two_servers_are_served_one_at_a_time_in_issue_order(redis_server: RedisServer, redis_url: str) -> None:
    servers = [store_for(redis_server), store_for(redis_server)]
    log: List[Tuple[str, int]] = []
    inside = {"now": 0, "most": 0}

    async def turn(index: int) -> None:
        async with servers[index % 2].lock("conv-2", wait_time_in_seconds=0.05) as held:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
            log.append(("start", held.tickets[0].number))
            await asyncio.sleep(0.01)
            log.append(("end", held.tickets[0].number))
            inside["now"] -= 1

    async def scenario() -> None:
        await asyncio.gather(*(turn(index) for index in range(12)))

    asyncio.run(scenario())
    assert inside["most"] == 1
    numbers = [number for kind, number in log if kind == "start"]
    assert numbers == sorted(numbers) and len(set(numbers)) == 12
    assert ticket_fields(redis_url, "conv-2") == []


def test_a_dead_servers_ticket_is_given_up_after_its_lease_not_its_lifetime(redis_server: RedisServer, redis_url: str) -> None:
    store = store_for(redis_server, lease_s=0.3)

    async def scenario() -> int:
        # a server issued a ticket (lease 0.3 s, lifetime 60 s) and died: nobody renews it
        client = redis_client(store.redis_url, 2.0)
        await script(client, ISSUE)(keys=[store.key("conv-3")], args=[secrets.token_hex(8), 300, 120_000])
        async with store.lock("conv-3", lock_lifetime=60, wait_time_in_seconds=0.05) as held:
            return held.tickets[0].number

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=20)) == 2


def test_a_live_holder_keeps_its_ticket_past_the_lease_by_renewing_it(redis_server: RedisServer, redis_url: str) -> None:
    store = store_for(redis_server, lease_s=0.3)
    log: List[str] = []

    async def long_turn() -> None:
        async with store.lock("conv-4", lock_lifetime=30):
            log.append("long start")
            await asyncio.sleep(1.2)  # four leases
            log.append("long end")

    async def next_turn() -> None:
        await asyncio.sleep(0.05)
        async with store.lock("conv-4", lock_lifetime=30, wait_time_in_seconds=0.05):
            log.append("next")

    async def scenario() -> None:
        await asyncio.gather(long_turn(), next_turn())

    asyncio.run(scenario())
    assert log == ["long start", "long end", "next"]


def test_a_ticket_that_outlives_its_lifetime_waiting_is_a_lock_error(redis_server: RedisServer, redis_url: str) -> None:
    store = store_for(redis_server, lease_s=5)

    async def holder(started: asyncio.Event) -> None:
        async with store.lock("conv-5", lock_lifetime=30):
            started.set()
            await asyncio.sleep(1.0)

    async def impatient(started: asyncio.Event) -> str:
        await started.wait()
        try:
            async with store.lock("conv-5", lock_lifetime=0.3, wait_time_in_seconds=0.05):
                return "served"
        except LockError:
            return "lock error"

    async def scenario() -> str:
        started = asyncio.Event()
        _, outcome = await asyncio.gather(holder(started), impatient(started))
        return outcome

    assert asyncio.run(scenario()) == "lock error"
    assert ticket_fields(redis_url, "conv-5") == []


def test_a_holder_past_its_lifetime_is_overtaken_as_in_rasa(redis_server: RedisServer, redis_url: str) -> None:
    store = store_for(redis_server, lease_s=0.2)
    log: List[str] = []

    async def stuck_turn() -> None:
        async with store.lock("conv-6", lock_lifetime=0.5):
            await asyncio.sleep(1.5)
            log.append("stuck end")

    async def next_turn() -> None:
        await asyncio.sleep(0.05)
        async with store.lock("conv-6", lock_lifetime=30, wait_time_in_seconds=0.05):
            log.append("next")

    async def scenario() -> None:
        await asyncio.gather(stuck_turn(), next_turn())

    asyncio.run(scenario())
    assert log == ["next", "stuck end"]


def test_an_unreachable_redis_is_a_lock_error() -> None:
    store = RedisTicketLockStore(host="127.0.0.1", port=free_port(), key_prefix="shop")

    async def scenario() -> None:
        async with store.lock("conv-7"):
            pass

    with pytest.raises(LockError, match="Could not issue a ticket"):
        asyncio.run(scenario())


@pytest.mark.parametrize("options, error", [
    ({"key_prefix": "not-alphanumeric"}, "alphanumeric"),
    ({"lease_s": "0"}, "positive"),
])
def test_bad_options_are_refused_with_the_reason(options: dict, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        RedisTicketLockStore(host="127.0.0.1", **options)


def test_endpoints_yml_makes_this_lock_store_on_a_password_protected_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer(free_port(), tmp_path, password="pa:ss/w@rd%1").start()
    try:
        url = server.url.replace("/0", "/3")
        for name, value in base_env(load_settings({"SHOP_IDENTITY_SECRET": "lock-test"}), url).items():
            monkeypatch.setenv(name, value)  # the environment the launcher gives Rasa
        store = LockStore.create(read_endpoint_config(os.fspath(PROJECT_ROOT / "endpoints.yml"), "lock_store"))
        assert isinstance(store, RedisTicketLockStore)
        assert store.key("c") == "shop:conversation_lock:c" and store.lease_s == 10

        async def scenario(lock_store: LockStore) -> None:
            async with lock_store.lock("conv-8"):
                assert len(ticket_fields(url, "conv-8")) == 1

        asyncio.run(scenario(store))
        assert ticket_fields(url, "conv-8") == []
        monkeypatch.setenv("REDIS_PASSWORD", "wrong")
        wrong = LockStore.create(read_endpoint_config(os.fspath(PROJECT_ROOT / "endpoints.yml"), "lock_store"))
        with pytest.raises(LockError, match="AuthenticationError"):
            asyncio.run(scenario(wrong))
    finally:
        server.stop()
