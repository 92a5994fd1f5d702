"""The desk's Prometheus page on a real desk over a real Redis: gauges read at scrape time, the token
rule, and the supervisors' charts page moved to ``/charts``."""

from __future__ import annotations

import functools
import time
from typing import Callable

from bot.push import dead_letter_key
from handoff import keys, queue
from handoff.callbacks import create_callback
from handoff.models import CallbackTicket
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.http import http
from tests.support.metrics import scrape
from tests.support.waiting import wait_for

StartDesk = Callable[..., DeskProcess]
TOKEN = "metrics-token-of-the-test-0123456789"


def callback(desk: DeskProcess, suffix: str, due: float) -> None:
    ticket = CallbackTicket(keys.new_callback_id(), f"conv-metrics-{suffix}", "C000001", "138****5678", "L4", "requested",
                            {"wanted": ["查询物流"]}, "【转人工摘要】", due - 3600, due, time.time())
    assert run(desk.redis_url, desk.policy_file, functools.partial(create_callback, ticket=ticket))


def test_the_gauges_are_read_from_redis_at_each_scrape(start_desk: StartDesk) -> None:
    desk = start_desk()
    empty = scrape(desk.url)
    assert empty.status == 200 and empty.content_type.startswith("text/plain")
    assert empty.value("shop_desk_redis_up") == 1 and empty.value("shop_handoff_queue_depth") == 0
    assert empty.types["shop_handoff_queue_depth"] == "gauge"
    assert empty.value("shop_tickets_overdue", kind="callbacks") == 0 and empty.value("shop_callbacks_open") == 0

    waiting = request("conv-metrics-queued")
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, waiting))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.hget(keys.record(waiting.handoff_id), "status") == "queued")
    now = time.time()
    callback(desk, "late", now - 60)
    callback(desk, "soon", now + 1800)
    callback(desk, "later", now + 3 * 3600)
    client.xadd(dead_letter_key("app"), {"sender": "conv-metrics-dead", "channel": "app", "reason": "http_500", "attempts": "8"})

    seen = scrape(desk.url)
    assert seen.value("shop_handoff_queue_depth") == 1
    assert seen.value("shop_handoff_queue_oldest_wait_seconds") >= 0
    assert (seen.value("shop_callbacks_open"), seen.value("shop_callbacks_due_soon")) == (3, 1)
    assert seen.value("shop_tickets_overdue", kind="callbacks") == 1 and seen.value("shop_tickets_overdue", kind="reviews") == 0
    assert seen.value("shop_push_dead_letters", channel="app") == 1 and seen.value("shop_push_dead_letters", channel="web") == 0
    assert "C000001" not in seen.text and "conv-metrics" not in seen.text  # no customer or conversation in any label


def test_with_a_token_only_its_bearer_reads_the_page(start_desk: StartDesk) -> None:
    desk = start_desk(desk_env={"METRICS_TOKEN": TOKEN})
    for headers in ({}, {"Authorization": "Bearer guess"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        refused = scrape(desk.url, headers=headers)
        assert refused.status == 401 and "METRICS_TOKEN" in refused.text, headers
    assert scrape(desk.url, headers={"Authorization": f"Bearer {TOKEN}"}).value("shop_desk_redis_up") == 1
    proxied = scrape(desk.url, headers={"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 200  # the token is what counts, wherever the scrape comes from


def test_without_a_token_a_client_behind_a_proxy_is_refused(start_desk: StartDesk) -> None:
    desk = start_desk()
    assert scrape(desk.url).status == 200
    assert scrape(desk.url, headers={"X-Forwarded-For": "203.0.113.9"}).status == 403
    assert scrape(desk.url, headers={"Authorization": "Bearer anything"}).status == 200  # no token set: loopback decides


def test_the_charts_page_is_at_charts_and_the_console_links_it(start_desk: StartDesk) -> None:
    desk = start_desk()
    status, page = http("GET", f"{desk.url}/charts")
    assert status == 200 and "数据看板" in page and "/static/metrics.js" in page
    status, console = http("GET", f"{desk.url}/")
    assert status == 200 and 'href="/charts"' in console and 'href="/metrics"' not in console
