"""Crashes in the middle of handoffs: the desk killed, Redis killed and restarted from its
append-only file. Nothing is lost and nothing is duplicated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.outbox import outbox_key
from bot.redis_server import RedisServer, free_port
from desk.intake import ensure_group
from handoff import conversation, keys, queue
from handoff.context import HandoffContext
from tests.support.desk import desk_process
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def ready(client) -> bool:
    """Whether a restarted Redis has finished loading its append-only file."""
    try:
        return bool(client.ping())
    except (BusyLoadingError, RedisConnectionError):
        return False


def transcript(client, handoff_id: str) -> List[tuple]:
    return [(fields["from"], fields["text"]) for _, fields in client.xrange(keys.transcript(handoff_id))]


def test_kill_the_desk_and_restart_redis_mid_handoff(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis").start()
    desk = desk_process(tmp_path / "desk", server.url)
    try:
        desk.start()
        desk.login("agent1")
        policy = desk.policy_file
        client = sync_client(server.url)

        # a handoff in progress: queued, claimed, one reply, two shopper messages
        h1 = request("conv-rec-1", customer_id="C000001", tier="L4")
        run(server.url, policy, lambda ctx: queue.enqueue(ctx, h1))
        wait_for(lambda: client.hget(keys.record(h1.handoff_id), "status") == "queued")
        assert desk.call("POST", "/api/conversations/conv-rec-1/claim", "agent1")[0] == 200
        assert desk.call("POST", "/api/conversations/conv-rec-1/messages", "agent1", {"text": "您好，我是客服小王"})[0] == 201
        for text in ("第一句", "第二句"):
            assert run(server.url, policy, lambda ctx, text=text: conversation.route_shopper_message(ctx, "conv-rec-1", text))

        # the desk dies
        desk.kill()

        # meanwhile the bot keeps handing off and the shopper keeps writing
        h2, h3, h4 = (request(f"conv-rec-{n}", customer_id=f"C00000{n}") for n in (2, 3, 4))

        async def while_desk_is_down(ctx: HandoffContext) -> None:
            for req in (h2, h3, h4):
                await queue.enqueue(ctx, req)
            await ensure_group(ctx.redis)
            # another desk had read h2's request and died before acknowledging it
            read = await ctx.redis.xreadgroup(keys.CONSUMER_GROUP, "desk-that-crashed", {keys.REQUESTS_STREAM: ">"}, count=1)
            assert read[0][1][0][1]["handoff_id"] == h2.handoff_id
            assert await conversation.route_shopper_message(ctx, "conv-rec-1", "第三句")
            assert await conversation.route_shopper_message(ctx, "conv-rec-2", "排队时的留言")

        run(server.url, policy, while_desk_is_down)

        # Redis crashes and comes back from its append-only file
        server.kill()
        server = RedisServer(server.port, tmp_path / "redis").start()
        client = sync_client(server.url)
        wait_for(lambda: ready(client))
        assert client.hget(keys.record(h1.handoff_id), "status") == "assigned"

        # the desk comes back; the requests it never saw and the one a dead desk held are queued once
        desk.start()
        wait_for(lambda: client.zcard(keys.QUEUE) == 3, timeout_s=15)
        assert sorted(client.zrange(keys.QUEUE, 0, -1)) == sorted([h2.handoff_id, h3.handoff_id, h4.handoff_id])
        wait_for(lambda: client.xpending(keys.REQUESTS_STREAM, keys.CONSUMER_GROUP)["pending"] == 0, timeout_s=15)
        assert client.xlen(keys.REQUESTS_STREAM) == 0
        day = client.keys("handoff:stats:day:*")
        assert sum(int(client.hget(key, "handoffs") or 0) for key in day) == 4

        # the conversation in progress is intact, in order, without duplicates
        assert transcript(client, h1.handoff_id) == [
            ("system", "小王（agent1）接入会话"), ("agent", "您好，我是客服小王"),
            ("shopper", "第一句"), ("shopper", "第二句"), ("shopper", "第三句"),
        ]
        assert transcript(client, h2.handoff_id) == [("shopper", "排队时的留言")]
        pushed = [json.loads(fields["message"])["text"] for _, fields in client.xrange(outbox_key("conv-rec-1"))]
        assert pushed.count("您好，我是客服小王") == 1

        # the agent's session survived too: they go on and finish
        assert desk.call("POST", "/api/conversations/conv-rec-1/messages", "agent1", {"text": "已为您催促快递"})[0] == 201
        assert desk.call("POST", "/api/conversations/conv-rec-1/resolve", "agent1", {"code": "resolved"})[0] == 200
        assert desk.call("POST", "/api/conversations/conv-rec-2/claim", "agent1")[0] == 200
        assert client.get(keys.active("conv-rec-1")) is None and client.get(keys.rating_pending("conv-rec-1")) == h1.handoff_id
    finally:
        desk.stop()
        server.stop()


def test_redis_restart_while_the_desk_runs(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path / "redis").start()
    desk = desk_process(tmp_path / "desk", server.url)
    try:
        desk.start()
        policy = desk.policy_file
        before = request("conv-live-1")
        run(server.url, policy, lambda ctx: queue.enqueue(ctx, before))
        client = sync_client(server.url)
        wait_for(lambda: client.zscore(keys.QUEUE, before.handoff_id) is not None)

        server.stop()  # graceful: the append-only file is flushed
        server = RedisServer(server.port, tmp_path / "redis").start()
        client = sync_client(server.url)
        wait_for(lambda: ready(client))

        after = request("conv-live-2")
        run(server.url, policy, lambda ctx: queue.enqueue(ctx, after))
        wait_for(lambda: client.zscore(keys.QUEUE, after.handoff_id) is not None, timeout_s=20)
        assert client.zcard(keys.QUEUE) == 2
        assert desk.process is not None and desk.process.poll() is None
        status, body = desk.call("GET", "/health")
        assert status == 200, body
    finally:
        desk.stop()
        server.stop()
