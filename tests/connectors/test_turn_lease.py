"""A conversation's turn is a lease its holder renews: a long answer keeps it, a dead process's ends soon."""

from __future__ import annotations

import asyncio

import pytest
import redis

from bot.settings import load_settings
from connectors import common
from connectors.app import AppInput
from connectors.binding import turn_key


@pytest.fixture()
def channel(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> AppInput:
    monkeypatch.setattr(common, "TURN_LOCK_TTL_MS", 300)  # a short lease, renewed every 100 ms
    return AppInput(redis_url=redis_url, identity_secret="turn-lease-secret", settings=load_settings({}))


def test_a_long_answer_keeps_its_turn_past_the_lease_and_gives_it_back(channel: AppInput, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    log = []

    async def long_turn() -> None:
        async with channel.conversation_turn("lease-1"):
            log.append("first starts")
            await asyncio.sleep(1.0)  # three leases
            log.append(("still held", client.pttl(turn_key("lease-1")) > 0))
            log.append("first ends")

    async def next_message() -> None:
        await asyncio.sleep(0.05)
        async with channel.conversation_turn("lease-1"):
            log.append("second")

    async def scenario() -> None:
        await asyncio.gather(long_turn(), next_message())
        await channel.close()

    asyncio.run(scenario())
    assert log == ["first starts", ("still held", True), "first ends", "second"]
    assert not client.exists(turn_key("lease-1"))


def test_the_turn_of_a_process_that_died_ends_with_its_lease(channel: AppInput, redis_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "TURN_WAIT_S", 60.0)  # never given up on: the lease must end the dead turn
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set(turn_key("lease-2"), "dead-process-token", px=300)  # taken, never renewed nor released

    async def scenario() -> bool:
        async with channel.conversation_turn("lease-2"):
            taken = client.get(turn_key("lease-2")) != "dead-process-token"
        await channel.close()
        return taken

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=20)) is True
