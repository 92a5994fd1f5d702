"""Admitting a shopper's message in one Redis round trip: owner, new-conversation count, turn, express 「转人工」.

Real redis-server (the session's); each test builds its keys through the same functions as the channels.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Dict, List

from connectors.binding import ANONYMOUS_OWNER, Admission, admit, owner_key, turn_key
from handoff import agents, keys
from handoff.context import HandoffContext
from handoff.express import express_request
from tests.support.desk import write_policy
from tests.support.handoff import run

TTL_S = 600


def _stats_key(ctx: HandoffContext) -> str:
    return keys.day_stats(ctx.day(ctx.now()))


async def _admit(ctx: HandoffContext, sender: str, customer_id: str | None, text: str = "你好", take_turn: bool = True) -> Admission:
    express = express_request(ctx, sender, customer_id, "app", text)
    return await admit(ctx.redis, sender, customer_id, TTL_S, _stats_key(ctx),
                       turn_token=uuid.uuid4().hex if take_turn else None, express=express)


async def _requests(ctx: HandoffContext) -> List[Dict[str, Any]]:
    return [json.loads(fields["payload"]) for _, fields in await ctx.redis.xrange(keys.REQUESTS_STREAM)]


def test_first_message_binds_counts_and_takes_the_turn(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        first = await _admit(ctx, "conv-adm-1", "C000001")
        again = await _admit(ctx, "conv-adm-1", "C000001", take_turn=False)
        anonymous = await _admit(ctx, "conv-adm-2", None)
        return {
            "first": first, "again": again, "anonymous": anonymous,
            "owner": await ctx.redis.get(owner_key("conv-adm-1")),
            "owner_ttl": await ctx.redis.ttl(owner_key("conv-adm-1")),
            "anonymous_owner": await ctx.redis.get(owner_key("conv-adm-2")),
            "turn": await ctx.redis.get(turn_key("conv-adm-1")),
            "counted": await ctx.redis.hget(_stats_key(ctx), "conversations"),
        }

    seen = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    assert seen["first"].binding.allowed and seen["first"].binding.created
    assert seen["first"].turn_token is not None and seen["turn"] == seen["first"].turn_token
    assert seen["again"].binding.allowed and not seen["again"].binding.created and seen["again"].turn_token is None
    assert seen["owner"] == "C000001" and 0 < seen["owner_ttl"] <= TTL_S
    assert seen["anonymous"].binding.created and seen["anonymous_owner"] == ANONYMOUS_OWNER
    assert seen["counted"] == "2"  # two new conversations; the second message of the first is not counted


def test_another_owner_is_refused_and_nothing_is_done(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        await agents.heartbeat(ctx, "agent1")
        await _admit(ctx, "conv-adm-3", "C000001", take_turn=False)
        intruder = await _admit(ctx, "conv-adm-3", "C000002", text="转人工")
        anonymous = await _admit(ctx, "conv-adm-3", None, text="转人工")
        return {"intruder": intruder, "anonymous": anonymous, "turn": await ctx.redis.get(turn_key("conv-adm-3")),
                "active": await ctx.redis.get(keys.active("conv-adm-3")), "requests": await _requests(ctx)}

    seen = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    for refused in (seen["intruder"], seen["anonymous"]):
        assert refused == Admission(binding=refused.binding) and not refused.binding.allowed
    assert seen["turn"] is None and seen["active"] is None and seen["requests"] == []


def test_an_explicit_request_is_queued_in_the_same_round_trip(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        await agents.heartbeat(ctx, "agent1")
        queued = await _admit(ctx, "conv-adm-4", "C000003", text="人工客服！！")
        plain = await _admit(ctx, "conv-adm-5", "C000003", text="我的快递到哪了")
        return {"queued": queued, "plain": plain, "requests": await _requests(ctx),
                "active": await ctx.redis.get(keys.active("conv-adm-4"))}

    seen = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    opened = seen["queued"].express
    assert opened is not None and seen["queued"].turn_token is not None
    assert seen["active"] == opened.handoff_id
    [payload] = seen["requests"]
    assert payload["handoff_id"] == opened.handoff_id and payload["sender"] == "conv-adm-4"
    assert payload["summary"]["preliminary"] is True and payload["channel"] == "app"
    assert seen["plain"].express is None and seen["plain"].turn_token is not None


def test_no_express_while_another_message_has_the_turn_or_nobody_is_online(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        offline = await _admit(ctx, "conv-adm-6", "C000004", text="转人工")
        await agents.heartbeat(ctx, "agent1")
        await ctx.redis.set(turn_key("conv-adm-7"), "previous-message")
        busy = await _admit(ctx, "conv-adm-7", "C000004", text="转人工")
        return {"offline": offline, "busy": busy, "requests": await _requests(ctx),
                "turn": await ctx.redis.get(turn_key("conv-adm-7"))}

    seen = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    assert seen["offline"].express is None and seen["offline"].turn_token is not None  # the bot offers a callback
    assert seen["busy"].express is None and seen["busy"].turn_token is None  # routed after the turn before it
    assert seen["turn"] == "previous-message" and seen["requests"] == []


def test_a_customer_with_a_handoff_open_on_another_channel_is_not_queued_twice(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        await agents.heartbeat(ctx, "agent1")
        on_web = await _admit(ctx, "web-adm-8", "C000005", text="转人工")
        assert on_web.express is not None
        await ctx.redis.set(keys.by_customer("C000005"), "web-adm-8")
        from_app = await _admit(ctx, "app-adm-8", "C000005", text="转人工")
        return {"from_app": from_app, "requests": await _requests(ctx)}

    seen = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    assert seen["from_app"].express is None and seen["from_app"].turn_token is not None  # it joins the open handoff
    assert [payload["sender"] for payload in seen["requests"]] == ["web-adm-8"]


def test_an_anonymous_sender_without_the_token_may_only_start_a_conversation(redis_url: str, tmp_path: Path) -> None:
    async def scenario(ctx: HandoffContext) -> Dict[str, Any]:
        await agents.heartbeat(ctx, "agent1")

        async def unproven(sender: str, text: str = "你好") -> Admission:
            return await admit(ctx.redis, sender, None, TTL_S, _stats_key(ctx), turn_token=uuid.uuid4().hex,
                               express=express_request(ctx, sender, None, "app", text), proven=False)

        started = await unproven("conv-adm-9")
        await ctx.redis.delete(turn_key("conv-adm-9"))
        again = await unproven("conv-adm-9", "转人工")
        proven = await _admit(ctx, "conv-adm-9", None, text="还在吗")
        await _admit(ctx, "conv-adm-10", "C000006", take_turn=False)
        on_a_customers = await unproven("conv-adm-10", "转人工")
        return {"started": started, "again": again, "proven": proven, "on_a_customers": on_a_customers,
                "owner": await ctx.redis.get(owner_key("conv-adm-9")), "requests": await _requests(ctx),
                "turn": await ctx.redis.get(turn_key("conv-adm-10")),
                "counted": await ctx.redis.hget(_stats_key(ctx), "conversations")}

    seen = run(redis_url, write_policy(tmp_path / "service.yml"), scenario)
    assert seen["started"].binding.allowed and seen["started"].binding.created and seen["owner"] == ANONYMOUS_OWNER
    for refused in (seen["again"], seen["on_a_customers"]):  # nothing done: no turn, nobody queued
        assert refused == Admission(binding=refused.binding) and not refused.binding.allowed
    assert seen["proven"].binding.allowed and not seen["proven"].binding.created and seen["proven"].turn_token is not None
    assert seen["requests"] == [] and seen["turn"] is None and seen["counted"] == "2"
