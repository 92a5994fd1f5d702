"""Prometheus pages of the running stack: one shopper message moves the counters of the Rasa server
(the turn, by channel and intent), the action server (the action it ran) and the CRM (the route the
action called), summed over the Rasa server's forked workers; the desk's gauges parse too."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest
import yaml

from bot import launcher, roles
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, Settings, load_settings
from tests.integration.conftest import RunningStack, http_json, new_sender
from tests.support.metrics import Scrape, scrape

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
TOKEN = "rasa-metrics-token-0123456789"


def pages(stack: RunningStack) -> Dict[str, Scrape]:
    settings = stack.settings
    urls = {"rasa": f"http://127.0.0.1:{settings.rasa_port}", "actions": f"http://127.0.0.1:{settings.action_port}",
            "crm": settings.effective_crm_url, "desk": f"http://127.0.0.1:{settings.desk_port}"}
    found = {name: scrape(url) for name, url in urls.items()}
    assert {name: page.status for name, page in found.items()} == dict.fromkeys(urls, 200)
    return found


def moved(before: Scrape, after: Scrape, name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    """The samples ``name`` that grew, by their labels, with how much."""
    grown = {}
    for (sample, labels), value in after.samples.items():
        if sample == name and value != before.samples.get((sample, labels), 0.0):
            grown[labels] = value - before.samples.get((sample, labels), 0.0)
    return grown


def test_one_message_moves_the_turn_action_and_crm_counters(running_stack: RunningStack) -> None:
    before = pages(running_stack)
    status, replies = running_stack.say(new_sender("metrics"), "我的快递到哪了", customer_id="C000001")
    assert status == 200 and replies
    after = pages(running_stack)

    turns = moved(before["rasa"], after["rasa"], "shop_turns_total")
    assert len(turns) == 1 and list(turns.values()) == [1.0], turns
    labels = dict(next(iter(turns)))
    assert labels["channel"] == "app" and labels["intent"] in DOMAIN["intents"], labels
    assert moved(before["rasa"], after["rasa"], "shop_turn_duration_seconds_count") == turns
    assert after["rasa"].types["shop_turn_duration_seconds"] == "histogram"

    actions = moved(before["actions"], after["actions"], "shop_action_duration_seconds_count")
    assert actions and {dict(labels)["action"] for labels in actions} <= set(DOMAIN["actions"]), actions
    assert not moved(before["actions"], after["actions"], "shop_action_errors_total")

    calls = moved(before["crm"], after["crm"], "shop_crm_responses_total")
    assert calls and all(dict(labels)["endpoint"].startswith("/api/") for labels in calls), calls
    assert not any("C000001" in dict(labels)["endpoint"] for labels in calls)  # route templates, not paths

    assert after["desk"].value("shop_desk_redis_up") == 1 and "shop_handoff_queue_depth" in after["desk"].types


def test_every_scrape_sums_the_rasa_servers_workers(running_stack: RunningStack) -> None:
    assert running_stack.settings.rasa_workers > 1
    sender = new_sender("metrics-workers")
    for text in ("你好", "我的快递到哪了", "谢谢"):
        assert running_stack.say(sender, text, customer_id="C000002")[0] == 200
    rasa = f"http://127.0.0.1:{running_stack.settings.rasa_port}"
    totals = {scrape(rasa).total("shop_turns_total", channel="app") for _ in range(8)}
    assert len(totals) == 1 and totals.pop() >= 3  # whichever worker answers the scrape, every worker's turns count


def test_the_rasa_servers_page_refuses_a_client_behind_a_proxy(running_stack: RunningStack) -> None:
    rasa = f"http://127.0.0.1:{running_stack.settings.rasa_port}"
    refused = scrape(rasa, headers={"X-Forwarded-For": "203.0.113.9"})
    assert refused.status == 403 and "METRICS_TOKEN" in refused.text


@pytest.fixture(scope="module")
def stock_rasa(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, trained_model: Path) -> Iterator[Settings]:
    """A Rasa server alone, as ``serve rasa`` starts it, with RASA_SPEEDUPS=0 (stock Rasa) and a METRICS_TOKEN."""
    settings = dataclasses.replace(load_settings({}), var_dir=tmp_path_factory.mktemp("stock-rasa"), rasa_port=free_port(),
                                   redis_url=f"redis://127.0.0.1:{redis_server.port}/2", action_port=free_port(), rasa_workers=1,
                                   rasa_speedups=False, action_server_token="t" * 32, metrics_token=TOKEN)
    stack = launcher.Stack(settings)
    try:
        roles.start_role(stack, "rasa", launcher.base_env(settings, settings.redis_url), trained_model)
        yield settings
    finally:
        stack.stop()


def test_stock_rasa_serves_the_page_too_and_only_to_the_token(stock_rasa: Settings) -> None:
    rasa = f"http://127.0.0.1:{stock_rasa.rasa_port}"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    before = scrape(rasa, headers=bearer)
    assert before.status == 200
    status, _ = http_json("POST", f"{rasa}/webhooks/app/webhook", {"sender": new_sender("stock"), "message": "你好"})
    assert status in (200, 502)  # no action server here: the greeting may still need one
    after = scrape(rasa, headers=bearer)
    assert after.total("shop_turns_total", channel="app") == before.total("shop_turns_total", channel="app") + 1
    for headers in ({}, {"Authorization": "Bearer guess"}):
        assert scrape(rasa, headers=headers).status == 401
