"""The cached validator of action server responses accepts and refuses exactly what Rasa's does, and
the parse cache hands out what the NLU graph parsed (bot.rasa_patches.action_validation, .parse_cache)."""

from __future__ import annotations

from typing import Any, Dict

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from bot import rasa_patches
from bot.rasa_patches import action_validation, parse_cache

VALID: Dict[str, Any] = {
    "events": [{"event": "slot", "name": "order_id", "value": "880000010001", "timestamp": None}],
    "responses": [{"text": "您的订单运输中", "buttons": [{"title": "转人工", "payload": "/human_agent"}]}],
}
INVALID = [
    {"events": [{"event": "no_such_event"}], "responses": []},
    {"events": "not a list", "responses": []},
    {"events": [], "responses": ["not an object"]},
]


def test_valid_responses_pass_both_validators() -> None:
    jsonschema.validate(VALID, RemoteAction.action_response_format_spec())
    assert action_validation.validate_action_result(VALID) is True
    assert action_validation.validate_action_result({}) is True


@pytest.mark.parametrize("response", INVALID)
def test_invalid_responses_are_refused_like_rasa_does(response: Dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError) as stock:
        jsonschema.validate(response, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError) as cached:
        action_validation.validate_action_result(response)
    assert cached.value.message.startswith(stock.value.message)
    assert "Failed to validate Action server response" in cached.value.message


def test_installed_by_install_and_not_by_importing_the_channels() -> None:
    import importlib

    import connectors

    with rasa_patches.stock():
        importlib.reload(connectors)  # the Rasa server's import of the channels patches nothing
        assert not any(each.applied for each in rasa_patches.patches())
        assert RemoteAction._validate_action_result is action_validation.PATCH.stock(action_validation.TARGET)
        assert rasa_patches.install(enabled=True, only=["action_validation"])["action_validation"] == "installed"
        action = RemoteAction("action_track_order", None)
        assert RemoteAction._validate_action_result is action_validation._validate_action_result
        assert action._validate_action_result(VALID) is True
        with pytest.raises(jsonschema.ValidationError):
            action._validate_action_result(INVALID[0])
        action_validation.PATCH.revert()


def test_parse_cache_hands_out_copies_and_forgets_the_least_recently_used() -> None:
    cache = parse_cache.ParseCache(2)
    first = cache.key("你好", True)
    assert first is not None and cache.get(first) is None
    cache.put(first, {"text": "你好", "intent": {"name": "greet"}, "entities": []})
    found = cache.get(first)
    assert found == {"text": "你好", "intent": {"name": "greet"}, "entities": []}
    found["intent"]["name"] = "changed by a caller"
    assert cache.get(first)["intent"]["name"] == "greet"
    for text in ("谢谢", "转人工"):
        key = cache.key(text, True)
        assert key is not None
        cache.put(key, {"text": text})
    assert len(cache) == 2 and cache.get(first) is None
    assert (cache.hits, cache.misses) == (2, 2)


@pytest.mark.parametrize("text", [None, "", "长" * (parse_cache.NLU_CACHE_MAX_CHARS + 1)])
def test_empty_or_long_messages_are_not_cached(text: Any) -> None:
    assert parse_cache.ParseCache(10).key(text, True) is None
    assert parse_cache.ParseCache(0).key("你好", True) is None


def test_the_installed_parse_runs_the_nlu_graph_once_per_distinct_short_text() -> None:
    from types import SimpleNamespace

    from rasa.core.channels.channel import UserMessage
    from rasa.core.processor import MessageProcessor
    from rasa.shared.nlu.training_data.message import Message

    assert rasa_patches.install(enabled=True)["parse_cache"] == "installed"
    runs = []

    class GraphRunner:
        def run(self, inputs: Dict[str, Any], targets: Any) -> Dict[str, Any]:
            text = inputs["__message__"][0].text
            runs.append(text)
            parsed = Message(data={"text": text})
            parsed.set("intent", {"name": "greet", "confidence": 0.9}, add_to_output=True)
            return {"nlu": [parsed]}

    processor = SimpleNamespace(graph_runner=GraphRunner(), model_metadata=SimpleNamespace(nlu_target="nlu"))
    parse = MessageProcessor._parse_message_with_graph
    first = parse(processor, UserMessage("你好"), None)
    second = parse(processor, UserMessage("你好"), None)
    parse(processor, UserMessage("谢谢"), None)
    parse(processor, UserMessage("长" * 100), None)
    parse(processor, UserMessage("长" * 100), None)
    assert first == second and first["intent"]["name"] == "greet"
    assert first is not second
    assert runs == ["你好", "谢谢", "长" * 100, "长" * 100]
