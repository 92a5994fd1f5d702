"""The cached validator of action server responses accepts and refuses exactly what Rasa's does."""

from __future__ import annotations

from typing import Any, Dict

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from bot import rasa_speedups

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
    assert rasa_speedups.validate_action_result(VALID) is True
    assert rasa_speedups.validate_action_result({}) is True


@pytest.mark.parametrize("response", INVALID)
def test_invalid_responses_are_refused_like_rasa_does(response: Dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError) as stock:
        jsonschema.validate(response, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError) as cached:
        rasa_speedups.validate_action_result(response)
    assert cached.value.message.startswith(stock.value.message)
    assert "Failed to validate Action server response" in cached.value.message


def test_installed_on_rasa_when_the_channels_are_imported() -> None:
    import connectors  # noqa: F401  (importing the channels installs the fixes)

    action = RemoteAction("action_track_order", None)
    assert action._validate_action_result(VALID) is True
    with pytest.raises(jsonschema.ValidationError):
        action._validate_action_result(INVALID[0])
