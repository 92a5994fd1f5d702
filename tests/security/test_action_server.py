"""The action server as a stranger meets it: a real ``python -m actions.server`` over a seeded CRM.

Before, it listened on every interface, ran any action for anyone and trusted the tracker it was
sent: a POST with ``metadata = {"verified": true, "customer_id": "C000002"}`` returned that
customer's points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from bot.identity import channel_identity
from bot.launcher import wait_healthy
from bot.logs import valid_correlation_id
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT
from tests.support.crm import seeded_crm
from tests.support.metrics import scrape

TOKEN = "test-action-token-0123456789"
SECRET = "dev-shop-secret"
MAX_BODY = 256 * 1024


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The action server on a free loopback port, with its token, body limit and a CRM of its own."""
    with seeded_crm(tmp_path_factory.mktemp("action-server-crm")) as crm_url:
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "CRM_URL": crm_url, "ACTION_SERVER_TOKEN": TOKEN,
               "ACTION_MAX_BODY_BYTES": str(MAX_BODY), "SHOP_IDENTITY_SECRET": SECRET,
               "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "VAR_DIR": str(tmp_path_factory.mktemp("action-server-var")),
               "METRICS_TOKEN": ""}
        process = subprocess.Popen([sys.executable, "-m", "actions.server", "--port", str(port)], cwd=PROJECT_ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(f"{url}/health", process, "action-server", 90)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def post(url: str, body: bytes, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Any]:
    request = urllib.request.Request(f"{url}/webhook", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def points_call(sender: str, metadata: Dict[str, Any]) -> bytes:
    """The action call of the door: points of C000002 for whoever says so."""
    tracker = {
        "sender_id": sender, "slots": {}, "latest_message": {"text": "我有多少积分", "intent": {"name": "ask_points", "confidence": 1.0},
                                                            "entities": [], "metadata": metadata},
        "events": [], "paused": False, "followup_action": None, "active_loop": {}, "latest_action_name": "action_listen",
        "latest_event_time": None,
    }
    return json.dumps({"next_action": "action_points_balance", "sender_id": sender, "tracker": tracker,
                       "domain": {}, "version": "3.6.21"}).encode()


def texts(body: Any) -> str:
    return " ".join(str(message.get("text") or "") for message in body.get("responses", []))


def test_without_the_token_nothing_runs(action_server: str) -> None:
    forged = points_call("stranger-1", {"verified": True, "customer_id": "C000002"})
    for headers in (None, {"X-Action-Token": "guess"}, {"X-Action-Token": ""}, {"Authorization": f"Bearer {TOKEN}"}):
        status, body = post(action_server, forged, headers)
        assert (status, body) == (401, {"error": {"code": "unauthorised"}})
    request = urllib.request.Request(f"{action_server}/actions")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_a_forged_identity_reveals_nothing_even_with_the_token(action_server: str) -> None:
    auth = {"X-Action-Token": TOKEN}
    real = post(action_server, points_call("conv-real", {"identity": channel_identity(SECRET, "conv-real", "C000002")}), auth)
    assert real[0] == 200 and "积分" in texts(real[1]) and "登录" not in texts(real[1])

    forgeries = [
        {"verified": True, "customer_id": "C000002"},
        {"identity": channel_identity(SECRET, "conv-other", "C000002")},  # signed for another conversation
        {"identity": channel_identity("another-secret", "conv-forged", "C000002")},
        {"identity": {**channel_identity(SECRET, "conv-forged", "C000001"), "customer_id": "C000002"}},
        {"identity": channel_identity(SECRET, "conv-forged", "C000002", now=0)},  # long expired
    ]
    for metadata in forgeries:
        status, body = post(action_server, points_call("conv-forged", metadata), auth)
        assert status == 200
        answer = texts(body)
        assert "登录" in answer, answer  # asked to log in, like any anonymous shopper
        assert answer not in texts(real[1])


def test_bodies_over_the_limit_and_compressed_bodies_are_refused(action_server: str) -> None:
    auth = {"X-Action-Token": TOKEN}
    status, _ = post(action_server, b'{"x": "' + b"a" * (MAX_BODY + 10) + b'"}', auth)
    assert status == 413
    status, body = post(action_server, b"x\x9c\x03\x00\x00\x00\x00\x01", {**auth, "Content-Encoding": "deflate"})
    assert (status, body) == (415, {"error": {"code": "unsupported_encoding"}})


def test_a_failing_action_never_echoes_the_tracker(action_server: str) -> None:
    status, body = post(action_server, b'{"next_action": "action_points_balance", "tracker": "not a tracker"}', {"X-Action-Token": TOKEN})
    assert 400 <= status < 600 and "not a tracker" not in json.dumps(body)
    assert set(body) <= {"error", "action_name"}


def test_it_listens_on_loopback_unless_told() -> None:
    from bot.settings import load_settings

    assert load_settings({}).action_host == "127.0.0.1"
    assert Path(PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8").count("X-Action-Token: ${ACTION_SERVER_TOKEN}") == 1


def test_action_calls_are_counted_by_action_name_and_errors_apart(action_server: str) -> None:
    auth = {"X-Action-Token": TOKEN}
    before = scrape(action_server)
    assert before.status == 200 and before.types["shop_action_duration_seconds"] == "histogram"
    points = dict(action="action_points_balance")
    assert post(action_server, points_call("conv-metrics", {"identity": channel_identity(SECRET, "conv-metrics", "C000002")}), auth)[0] == 200
    assert post(action_server, b'{"next_action": "action_points_balance", "tracker": "not a tracker"}', auth)[0] == 500
    assert post(action_server, b'{"next_action": "action_13812345678", "tracker": {}}', auth)[0] == 404
    assert post(action_server, points_call("conv-refused", {}), {"X-Action-Token": "guess"})[0] == 401  # refused: not counted
    after = scrape(action_server)

    count = "shop_action_duration_seconds_count"
    assert after.value(count, **points) == before.value(count, **points) + 2
    assert after.value("shop_action_errors_total", **points) == before.value("shop_action_errors_total", **points) + 1
    assert after.value(count, action="other") == before.value(count, action="other") + 1
    assert not any("138" in str(name) for name in after.label_values(count, "action"))  # a name it does not have is no label


def test_the_metrics_page_needs_no_action_token_but_a_loopback_client(action_server: str) -> None:
    assert scrape(action_server).status == 200
    assert scrape(action_server, headers={"X-Forwarded-For": "203.0.113.9"}).status == 403


@pytest.mark.parametrize("given", ["shop-req-0001-abcd", "bad id", "x" * 200_000, {"id": "shop-req-0001-abcd"}, ["a" * 12], 12345678, None])
def test_the_correlation_id_is_taken_from_the_metadata_only_when_valid(action_server: str, given: Any) -> None:
    metadata = {"identity": channel_identity(SECRET, "conv-correlated", "C000002"), "correlation_id": given}
    request = urllib.request.Request(f"{action_server}/webhook", data=points_call("conv-correlated", metadata), method="POST",
                                     headers={"Content-Type": "application/json", "X-Action-Token": TOKEN})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200 and json.loads(response.read())["responses"]
        answered = response.headers["X-Request-ID"]
    assert answered == given if given == "shop-req-0001-abcd" else answered != given and valid_correlation_id(answered)
