"""The CRM's Prometheus page on a real server: requests counted by route template, never by raw path."""

from __future__ import annotations

from crm.seed import DEMO_CUSTOMERS
from crm.tests.support import CrmServer
from tests.support.metrics import scrape


def test_a_request_moves_its_route_templates_counter_and_histogram(crm: CrmServer) -> None:
    customer = DEMO_CUSTOMERS[0].customer_id
    orders = "/api/customers/<customer_id>/orders"
    before = scrape(crm.base_url)
    assert before.status == 200 and before.content_type.startswith("text/plain")
    assert before.types["shop_crm_responses"] == "counter" and before.types["shop_crm_request_duration_seconds"] == "histogram"

    assert crm.get(f"/api/customers/{customer}/orders")[0] == 200
    assert crm.get("/api/customers/C999999/orders")[0] == 404
    assert crm.get("/api/no-such-route")[0] == 404
    after = scrape(crm.base_url)

    ok = dict(endpoint=orders, method="GET", status_class="2xx")
    assert after.value("shop_crm_responses_total", **ok) == before.value("shop_crm_responses_total", **ok) + 1
    missing = dict(endpoint=orders, method="GET", status_class="4xx")
    assert after.value("shop_crm_responses_total", **missing) == before.value("shop_crm_responses_total", **missing) + 1
    timed = dict(endpoint=orders, method="GET")
    assert after.value("shop_crm_request_duration_seconds_count", **timed) == before.value("shop_crm_request_duration_seconds_count", **timed) + 2
    assert after.value("shop_crm_request_duration_seconds_bucket", le="+Inf", **timed) == after.value(
        "shop_crm_request_duration_seconds_count", **timed)
    other = dict(endpoint="other", method="GET", status_class="4xx")
    assert after.value("shop_crm_responses_total", **other) == before.value("shop_crm_responses_total", **other) + 1

    endpoints = after.label_values("shop_crm_responses_total", "endpoint")
    assert not any(customer in endpoint or "C999999" in endpoint or "no-such" in endpoint for endpoint in endpoints)
    assert "/metrics" not in endpoints  # scrapes are not counted


def test_without_a_token_only_a_direct_loopback_client_is_answered(crm: CrmServer) -> None:
    assert scrape(crm.base_url).status == 200
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        refused = scrape(crm.base_url, headers={header: "203.0.113.9"})
        assert refused.status == 403 and "METRICS_TOKEN" in refused.text
