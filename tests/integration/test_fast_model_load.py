"""The model loaded the fast way (bot.rasa_patches.model_load) predicts exactly what Rasa's own load does:
intents, confidences, entities and response keys of the held-out messages, and dialogue turns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List

import yaml

from bot.rasa_patches import model_load
from bot.settings import PROJECT_ROOT

DIALOGUE = ["你好", "我的快递到哪了", "我要退货", "积分有多少", "转人工", "谢谢", "运费怎么算", "这个月有多少积分过期"]


def heldout_texts(limit: int = 120) -> List[str]:
    data = yaml.safe_load((PROJECT_ROOT / "tests" / "nlu" / "heldout.yml").read_text(encoding="utf-8"))
    texts = [line.strip()[2:] for item in data["nlu"] if "intent" in item
             for line in item["examples"].splitlines() if line.strip().startswith("- ")]
    return texts[:limit]


def predictions(model: Path) -> List[Dict[str, Any]]:
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

    agent = Agent.load(str(model))

    async def collect() -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        for text in heldout_texts():
            parsed = await agent.parse_message(text)
            selector = parsed.get("response_selector", {})
            out.append({
                "text": text,
                "intent": parsed["intent"],
                "ranking": parsed.get("intent_ranking", []),
                "entities": [(entity["entity"], entity["value"]) for entity in parsed["entities"]],
                "responses": {key: value.get("response", {}).get("intent_response_key")
                              for key, value in selector.items() if isinstance(value, dict)},
            })
        for number, text in enumerate(DIALOGUE):
            message = UserMessage(text, CollectingOutputChannel(), f"fast-load-{number}")
            tracker = await agent.processor.log_message(message, should_save_tracker=False)
            prediction = agent.processor.predict_next_with_tracker(tracker)
            out.append({"dialogue": text, **{key: prediction.get(key) for key in ("action", "confidence", "policy", "scores")}})
        return out

    return asyncio.run(collect())


def test_fast_load_predicts_exactly_what_rasas_load_predicts(trained_model: Path, rasa_patched: Dict[str, str]) -> None:
    model_load.PATCH.revert()
    try:
        stock = predictions(trained_model)
    finally:
        assert model_load.PATCH.install() is None
    fast = predictions(trained_model)
    assert len(fast) == len(stock) > 100
    for mine, theirs in zip(fast, stock, strict=True):
        assert mine == theirs
