"""Real conversations through the trained model and Rasa's Redis tracker store give exactly the
same replies, predictions (action, policy, confidence) and stored events with the per-turn speed
fixes of bot.rasa_speedups as with Rasa's own code: event lookup, rule matching, tracker merge,
slot copies and graph runs."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

from bot import rasa_speedups
from bot.redis_server import RedisServer

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
    """Both ways on one loaded model: the speed fixes first, then Rasa's own code."""
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
    from rasa.core.tracker_store import RedisTrackerStore
    from rasa.shared.core.domain import Domain

    rasa_speedups.install()
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
    with rasa_speedups.stock_turns():
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
