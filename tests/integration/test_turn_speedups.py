"""Real conversations through the trained model and Rasa's Redis tracker store give exactly the
same replies, predictions (action, policy, confidence) and stored events with every patch of
bot.rasa_patches (event lookup, rule matching, tracker merge, slot copies, graph runs, the parse
cache, the action response validation) as with stock Rasa (RASA_SPEEDUPS=0); and the same parses
of the project's test messages."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from bot import rasa_patches
from bot.redis_server import RedisServer
from bot.settings import PROJECT_ROOT

CONVERSATIONS: List[Tuple[str, List[str]]] = [
    ("C000001", ["你好", "我的快递到哪了", "运费怎么算", "谢谢"]),
    ("C000002", ["在吗", "你是机器人吗", "物流信息查一下", "订单 880000010001 到哪了", "好的谢谢"]),
    ("C000003", ["我要退货", "积分有多少", "这个月有多少积分过期", "转人工"]),
    ("C000004", ["哈喽", "会员包邮吗", "快递呢", "包裹在哪", "多谢"]),
    ("", ["你好", "我的快递到哪了", "880000010001", "1234", "谢谢"]),
]
VOLATILE = ("timestamp", "message_id", "model_id")


def stable(value: Any) -> Any:
    """Events and replies without what differs between two runs of the same turns."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [stable(item) for item in value]
    if isinstance(value, str):
        return re.sub(r"speedups-(ours|stock)-", "speedups-", value)
    return value


def play(model: Path, redis_port: int) -> Dict[str, Any]:
    """Both ways on one loaded model: patched first, then stock Rasa."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.tracker_store import RedisTrackerStore
    from rasa.shared.core.domain import Domain

    assert set(rasa_patches.install(enabled=True).values()) == {"installed"}
    store = RedisTrackerStore(Domain.empty(), host="127.0.0.1", port=redis_port, db=3, key_prefix="speedups")
    agent = Agent.load(str(model), tracker_store=store)

    async def conversations(way: str) -> Dict[str, Any]:
        played: Dict[str, Any] = {}
        for number, (customer_id, texts) in enumerate(CONVERSATIONS):
            sender = f"speedups-{way}-{number}"
            metadata = {"channel": "app", "verified": bool(customer_id), "customer_id": customer_id or None}
            replies = []
            for text in texts:
                output = CollectingOutputChannel()
                await agent.handle_message(UserMessage(text, output, sender, input_channel="app", metadata=metadata))
                replies.append(output.messages)
            stored = store.red.get(store.key_prefix + sender)
            played[str(number)] = {"replies": replies, "stored": json.loads(stored)}
        return played

    ours = asyncio.run(conversations("ours"))
    with rasa_patches.stock():
        stock = asyncio.run(conversations("stock"))
    store.red.flushdb()
    return {"ours": ours, "stock": stock}


def test_turns_are_identical_with_and_without_the_speed_fixes(trained_model: Path, redis_server: RedisServer) -> None:
    played = play(trained_model, redis_server.port)
    ours, stock = stable(played["ours"]), stable(played["stock"])
    events = [event for conversation in stock.values() for event in conversation["stored"]["events"]]
    policies = {event.get("policy") for event in events if event["event"] == "action"}
    assert len(events) > 100 and {"RulePolicy", "MemoizationPolicy"} & policies  # real predictions compared
    assert any(event["event"] == "slot" and event["name"] == "session_started_metadata" for event in events)
    for number in stock:
        assert ours[number]["replies"] == stock[number]["replies"]
        assert ours[number]["stored"] == stock[number]["stored"]


def test_parses_are_identical_with_and_without_the_patches(trained_model: Path) -> None:
    """The held-out and regression messages and every conversation's texts: parsed twice patched
    (the parse cache's miss, then its hit) and once by stock Rasa, the same parse each time."""
    from rasa.core.agent import Agent

    from tests.integration.test_fast_model_load import heldout_texts

    sample = yaml.safe_load((PROJECT_ROOT / "tests" / "nlu" / "regression_sample.yml").read_text(encoding="utf-8"))
    texts = heldout_texts(limit=10_000) + [line.strip()[2:] for item in sample["nlu"] if "intent" in item
                                            for line in item["examples"].splitlines() if line.strip().startswith("- ")]
    texts += [text for _, turns in CONVERSATIONS for text in turns]
    assert set(rasa_patches.install(enabled=True).values()) == {"installed"}
    agent = Agent.load(str(trained_model))

    async def parse_all() -> List[Dict[str, Any]]:
        return [await agent.parse_message(text) for text in texts]

    first, cached = asyncio.run(parse_all()), asyncio.run(parse_all())
    with rasa_patches.stock():
        assert not any(each.applied for each in rasa_patches.patches())
        stock = asyncio.run(parse_all())
    assert agent.processor is not None and agent.processor._shop_parse_cache.hits >= len(set(texts)) // 2
    assert len(texts) > 200 and len({parsed["intent"]["name"] for parsed in stock}) > 10
    for text, ours, again, theirs in zip(texts, first, cached, stock, strict=True):
        assert ours == theirs, text
        assert again == theirs, text
