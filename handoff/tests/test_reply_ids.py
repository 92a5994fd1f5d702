"""An agent's reply retried with the same client id (its first answer was lost) reaches the shopper once."""

from __future__ import annotations

from pathlib import Path
from typing import List

from bot.outbox import outbox_key
from handoff import agents, keys, queue
from handoff.context import HandoffContext
from handoff.conversation import OpResult, agent_message
from tests.support.desk import write_policy
from tests.support.handoff import request, run, sync_client


def test_a_retried_reply_is_written_once(redis_url: str, tmp_path: Path):
    policy = write_policy(tmp_path / "service.yml")
    req = request("conv-reply-ids")

    async def scenario(ctx: HandoffContext) -> List[OpResult]:
        await queue.enqueue(ctx, req)
        await queue.materialize(ctx, req)
        await agents.heartbeat(ctx, "agent1")
        assert (await queue.claim(ctx, req.sender, "agent1", "小王")).status == "ok"
        return [await agent_message(ctx, req.sender, "agent1", "小王", "您好", client_id="r-1"),
                await agent_message(ctx, req.sender, "agent1", "小王", "您好", client_id="r-1"),
                await agent_message(ctx, req.sender, "agent1", "小王", "您好", client_id="r-2"),
                await agent_message(ctx, req.sender, "agent1", "小王", "您好"),
                await agent_message(ctx, req.sender, "agent1", "小王", "您好", client_id="坏 id")]

    first, retry, other, plain, invalid = run(redis_url, policy, scenario)
    assert first.ok and retry.ok and other.ok and plain.ok
    assert first.data is not None and retry.data is not None and other.data is not None
    assert (retry.data["entry"]["id"], retry.data["cursor"]) == (first.data["entry"]["id"], first.data["cursor"])
    assert (first.data["duplicate"], retry.data["duplicate"], other.data["duplicate"]) == (False, True, False)
    assert invalid.status == "invalid_client_id"
    client = sync_client(redis_url)
    agent_lines = [f for _, f in client.xrange(keys.transcript(first.handoff_id)) if f["from"] == "agent"]
    assert len(agent_lines) == 3  # r-1 once, r-2, and the reply without an id
    assert sum('"from": "agent"' in f["message"] for _, f in client.xrange(outbox_key(req.sender))) == 3
