"""LOG_FORMAT=json on the running services: the Rasa server with the app channel, the action server and
the CRM write nothing but JSON lines, and one shopper message leaves its correlation id in all three logs
without the shopper's text, phone number or the CRM's personal data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from bot import launcher, logs, roles
from bot.identity import identity_token_for
from bot.redis_server import RedisServer, free_port
from bot.settings import Settings, load_settings
from tests.integration.conftest import http_exchange, http_json, new_sender

pytestmark = pytest.mark.integration

CUSTOMER = "C000001"
TEXT = "我的快递到哪了？我的电话是13912345678"
PHONE = "13912345678"
SERVICES = {"rasa": "rasa", "action-server": "actions", "crm": "crm"}
"""Log file name (the launcher's child name) → the service field of its lines."""


@pytest.fixture(scope="module")
def json_stack(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, trained_model: Path) -> Iterator[Settings]:
    """The CRM, the action server and the Rasa server (one worker) as ``serve`` starts them, with LOG_FORMAT=json."""
    settings = dataclasses.replace(load_settings({}), var_dir=tmp_path_factory.mktemp("json-logs"), log_format="json",
                                   redis_url=f"redis://127.0.0.1:{redis_server.port}/3", crm_port=free_port(),
                                   action_port=free_port(), rasa_port=free_port(), rasa_workers=1, action_server_token="j" * 32)
    stack = launcher.Stack(settings)
    env = launcher.base_env(settings, settings.redis_url)
    try:
        for role in ("crm", "actions", "rasa"):
            roles.start_role(stack, role, env, trained_model if role == "rasa" else None)
        yield settings
    finally:
        stack.stop()


def log_lines(settings: Settings) -> Dict[str, Tuple[List[Dict[str, Any]], List[str], str]]:
    """Per log file: its JSON lines, the lines that are not JSON objects, its whole text."""
    found = {}
    for name in SERVICES:
        text = (settings.var_dir / "logs" / f"{name}.log").read_text(encoding="utf-8")
        parsed, other = [], []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            (parsed if isinstance(entry, dict) else other).append(entry if isinstance(entry, dict) else line)
        found[name] = (parsed, other, text)
    return found


def say(settings: Settings, headers: Dict[str, str]) -> Tuple[int, Any, Dict[str, str]]:
    """One message of the signed-in customer through the app channel; (status, replies, answer headers)."""
    metadata = {"identity_token": identity_token_for(settings.shop_identity_secret, CUSTOMER)}
    body = {"sender": new_sender("json-logs"), "message": TEXT, "metadata": metadata}
    return http_exchange("POST", f"http://127.0.0.1:{settings.rasa_port}/webhooks/app/webhook", body, headers=headers)


def test_one_message_leaves_its_correlation_id_in_the_rasa_action_and_crm_logs_and_no_personal_data(json_stack: Settings) -> None:
    hostile = 'bad id {"level":"CRITICAL"}'
    status, replies, headers = say(json_stack, {"X-Request-ID": hostile})
    assert status == 200 and replies, replies
    correlation = headers["X-Request-ID"]
    assert correlation != hostile and logs.valid_correlation_id(correlation)

    found = log_lines(json_stack)
    for name, service in SERVICES.items():
        parsed, other, text = found[name]
        assert parsed and not other, (name, other[:5])  # every line is one JSON object
        assert {entry["service"] for entry in parsed} == {service}, name
        assert all({"time", "level", "logger", "message", "service"} <= set(entry) for entry in parsed), name
        assert all(entry["time"].endswith("Z") for entry in parsed), name
        ours = [entry for entry in parsed if entry.get("correlation_id") == correlation]
        assert ours, (name, [entry["message"] for entry in parsed][-10:])
        assert PHONE not in text and TEXT not in text and "快递到哪" not in text, name
        assert '"level":"CRITICAL"' not in text, name

    rasa, actions, crm = (found[name][0] for name in SERVICES)
    assert any(entry["message"].startswith("app.message.received") for entry in rasa if entry.get("correlation_id") == correlation)
    assert any(entry["logger"].startswith("rasa") for entry in rasa)  # Rasa's own loggers are on the same lines
    assert any(entry["message"].startswith("actions.request method=POST route=/webhook status=200 action=")
               for entry in actions if entry.get("correlation_id") == correlation)
    assert any(entry["message"].startswith("crm.request method=GET route=/api/")
               for entry in crm if entry.get("correlation_id") == correlation)

    status, customer = http_json("GET", f"{json_stack.effective_crm_url}/api/customers/{CUSTOMER}",
                                 headers={"X-API-Key": json_stack.crm_api_key})
    assert status == 200
    for name in SERVICES:
        assert customer["phone"] not in found[name][2] and customer["name"] not in found[name][2], name


def test_a_valid_request_id_is_the_turns_correlation_id_in_every_log(json_stack: Settings) -> None:
    given = "shop-req-20261204-0001"
    status, replies, headers = say(json_stack, {"X-Request-ID": given})
    assert status == 200 and replies and headers["X-Request-ID"] == given
    for name in SERVICES:
        assert any(entry.get("correlation_id") == given for entry in log_lines(json_stack)[name][0]), name
