"""Unit tests of bot.outbox against the session's real redis-server."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Awaitable, Callable, TypeVar

import pytest
from redis.asyncio import Redis

from bot.outbox import InvalidCursor, Outbox, outbox_key, validate_cursor

T = TypeVar("T")


def run_with_outbox(redis_url: str, scenario: Callable[[Outbox, Redis], Awaitable[T]], **kwargs: Any) -> T:
    """Run an async scenario with an Outbox over a fresh client in a fresh event loop."""

    async def main() -> T:
        client = Redis.from_url(redis_url, decode_responses=kwargs.pop("decode_responses", True))
        try:
            return await scenario(Outbox(client, **kwargs), client)
        finally:
            await client.close()

    return asyncio.run(main())


def test_push_then_fetch_returns_messages_in_order_with_cursors(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        first = await outbox.push("conv-1", {"text": "您好，我是客服小王", "from": "agent"})
        second = await outbox.push(
            "conv-1", {"text": "请选择", "buttons": [{"title": "是", "payload": "/affirm"}], "from": "bot"}
        )
        messages, cursor = await outbox.fetch("conv-1")
        assert [m["cursor"] for m in messages] == [first, second]
        assert cursor == second
        assert messages[0]["text"] == "您好，我是客服小王"
        assert messages[0]["from"] == "agent"
        assert messages[0]["recipient_id"] == "conv-1"
        assert datetime.fromisoformat(messages[0]["sent_at"]).tzinfo is not None
        assert messages[1]["buttons"] == [{"title": "是", "payload": "/affirm"}]

    run_with_outbox(redis_url, scenario)


def test_fetch_after_cursor_is_exclusive_and_pages(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        ids = [await outbox.push("conv-2", {"text": f"第{n}条"}) for n in range(5)]
        page, cursor = await outbox.fetch("conv-2", limit=2)
        assert [m["text"] for m in page] == ["第0条", "第1条"] and cursor == ids[1]
        page, cursor = await outbox.fetch("conv-2", after=cursor, limit=2)
        assert [m["text"] for m in page] == ["第2条", "第3条"] and cursor == ids[3]
        page, cursor = await outbox.fetch("conv-2", after=cursor, limit=2)
        assert [m["text"] for m in page] == ["第4条"] and cursor == ids[4]
        page, cursor = await outbox.fetch("conv-2", after=cursor)
        assert page == [] and cursor == ids[4]

    run_with_outbox(redis_url, scenario)


def test_fetch_of_empty_outbox(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        assert await outbox.fetch("nobody") == ([], None)
        assert await outbox.fetch("nobody", after="0-0") == ([], "0-0")

    run_with_outbox(redis_url, scenario)


def test_defaults_ttl_and_trimming(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        for n in range(300):
            await outbox.push("conv-3", {"text": str(n), "cursor": "9-9", "sent_at": "2024-01-01T00:00:00+08:00"})
        ttl = await client.ttl(outbox_key("conv-3"))
        assert 0 < ttl <= 3600
        # approximate trimming keeps at least maxlen and far fewer than everything pushed
        assert 100 <= await client.xlen(outbox_key("conv-3")) < 300
        messages, _ = await outbox.fetch("conv-3", limit=1)
        assert messages[0]["from"] == "system"
        assert messages[0]["sent_at"] == "2024-01-01T00:00:00+08:00"
        assert messages[0]["cursor"] != "9-9"

    run_with_outbox(redis_url, scenario, ttl_s=3600, maxlen=100)


def test_works_with_a_bytes_client(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        cursor = await outbox.push("conv-4", {"text": "字节"})
        assert isinstance(cursor, str)
        messages, next_cursor = await outbox.fetch("conv-4")
        assert messages[0]["text"] == "字节" and next_cursor == cursor

    run_with_outbox(redis_url, scenario, decode_responses=False)


def test_malformed_entries_are_skipped_but_advance_the_cursor(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        bad = await client.xadd(outbox_key("conv-5"), {"message": "not json"})
        good = await outbox.push("conv-5", {"text": "ok"})
        messages, cursor = await outbox.fetch("conv-5")
        assert [m["cursor"] for m in messages] == [good] and bad != good and cursor == good

    run_with_outbox(redis_url, scenario)


@pytest.mark.parametrize("cursor", ["", "abc", "1-", "-1", "1-2-3", " 1-2", "1-2\n", "99999999999999999999999-0", 5])
def test_invalid_cursors_raise_a_value_error(cursor: Any) -> None:
    with pytest.raises(InvalidCursor):
        validate_cursor(cursor)
    assert issubclass(InvalidCursor, ValueError)


def test_fetch_rejects_invalid_cursor_and_limit(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        with pytest.raises(InvalidCursor):
            await outbox.fetch("conv-6", after="../etc")
        for limit in (0, -1, 10_001, True):
            with pytest.raises(ValueError):
                await outbox.fetch("conv-6", limit=limit)

    run_with_outbox(redis_url, scenario)


def test_push_rejects_bad_messages(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        with pytest.raises(ValueError):
            await outbox.push("conv-7", {"text": "x", "from": "customer"})
        with pytest.raises(ValueError):
            await outbox.push("conv-7", {"text": object()})
        with pytest.raises(ValueError):
            await outbox.push("", {"text": "x"})
        with pytest.raises(TypeError):
            await outbox.push("conv-7", "just text")  # type: ignore[arg-type]
        assert await client.exists(outbox_key("conv-7")) == 0

    run_with_outbox(redis_url, scenario)


def test_last_possible_cursor(redis_url: str) -> None:
    async def scenario(outbox: Outbox, client: Redis) -> None:
        top = f"{2**64 - 1}-{2**64 - 1}"
        await outbox.push("conv-8", {"text": "x"})
        assert await outbox.fetch("conv-8", after=top) == ([], top)
        ms_edge = f"5-{2**64 - 1}"
        messages, _ = await outbox.fetch("conv-8", after=ms_edge)
        assert len(messages) == 1

    run_with_outbox(redis_url, scenario)
