"""The carrier's answer to an urge (催件), on SQLite and PostgreSQL: a new scan, a reason, or no answer
by the due time, chosen from the urge's id and shown against the CRM's clock (moved on by the test)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from crm.carrier import AnswerTable, load_table, outcome_of, parse_table
from crm.openapi import build_openapi
from crm.policy import PolicyError
from crm.tests.clock_support import MovableClock, crm_with_clock
from crm.tests.support import CrmServer
from crm.tests.test_api import ISO_TIME, assert_error, query

SHOP_TZ = dt.timezone(dt.timedelta(hours=8))
IN_FLIGHT = "('shipped', 'in_transit', 'out_for_delivery')"
Urge = Dict[str, Any]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def crm_clock(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[CrmServer, MovableClock]]:
    """A seeded CRM server with a clock the test moves on, per backend."""
    with crm_with_clock(request.param, tmp_path_factory.mktemp(f"crm-clock-{request.param}")) as pair:
        yield pair


def shop_time(moment: dt.datetime) -> str:
    return moment.astimezone(SHOP_TZ).replace(microsecond=0).isoformat()


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def shipped_orders(crm: CrmServer) -> List[str]:
    """Non-demo orders on their way (the carrier answers for them)."""
    rows = query(crm, f"SELECT order_id FROM orders WHERE status IN {IN_FLIGHT} AND customer_id > 'C000009' ORDER BY order_id")
    return [row[0] for row in rows]


def urge_with_outcome(crm: CrmServer, clock: MovableClock, wanted: str, hours: float = 2) -> Urge:
    """File urges on shipped orders until one gets the ``wanted`` outcome (the urge id decides it)."""
    for order_id in shipped_orders(crm)[:60]:
        due = shop_time(clock.now() + dt.timedelta(hours=hours))
        status, urge = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": due})
        assert status in (200, 201), urge
        if status == 201 and outcome_of(urge["urge_id"], "carrier") == wanted:
            return urge
    raise AssertionError(f"no urge with outcome {wanted} among 60 orders")


def listed(crm: CrmServer, urge: Urge) -> Urge:
    page = crm.ok(f"/api/orders/{urge['order_id']}/urges?limit=50")
    return next(item for item in page["items"] if item["urge_id"] == urge["urge_id"])


# ---------------------------------------------------------------------------- the table
def test_the_outcome_follows_the_urge_id_and_the_weights() -> None:
    table = load_table()
    outcomes = [outcome_of(urge_id, "carrier", table) for urge_id in range(1, 2001)]
    assert outcomes == [outcome_of(urge_id, "carrier", table) for urge_id in range(1, 2001)]
    shares = {name: outcomes.count(name) / len(outcomes) for name in ("scan", "reason", "none")}
    assert abs(shares["scan"] - 0.5) < 0.05 and abs(shares["reason"] - 0.3) < 0.05 and abs(shares["none"] - 0.2) < 0.05
    warehouse = {outcome_of(urge_id, "warehouse", table) for urge_id in range(1, 200)}
    assert warehouse == {"reason", "none"}


def test_a_malformed_table_is_refused() -> None:
    good = {"outcomes": {"scan": 1, "reason": 1, "none": 1}, "answer_after": [0.2, 0.9], "scans": ["【{location}】加急"],
            "reasons": [{"code": "x", "label": "爆仓", "detail": "积压", "targets": ["carrier", "warehouse"]}]}
    assert isinstance(parse_table(good), AnswerTable)
    for bad in ({**good, "outcomes": {"scan": 0, "reason": 0, "none": 0}}, {**good, "answer_after": [0.5, 1.5]},
                {**good, "scans": ["没有地点"]}, {**good, "reasons": [{**good["reasons"][0], "targets": ["carrier"]}]},
                {key: value for key, value in good.items() if key != "scans"}):
        with pytest.raises(PolicyError):
            parse_table(bad)


# ---------------------------------------------------------------------------- over HTTP
def test_a_scan_answer_arrives_before_the_due_time_and_joins_the_track(crm_clock: Tuple[CrmServer, MovableClock]) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "scan")
    assert urge["answer"] == {"status": "pending", "answered_at": None, "kind": None, "reason": None, "scan": None}
    order = crm.ok(f"/api/orders/{urge['order_id']}")
    before = order["shipment"]["events"]
    assert all(not event["description"].startswith("应您的催件") for event in before)

    due = parse(urge["answer_due_at"])
    clock.advance_past(due - dt.timedelta(seconds=1))  # the latest answer time is 90 % of the window
    answer = listed(crm, urge)["answer"]
    assert set(answer) == set(build_openapi()["components"]["schemas"]["UrgeAnswer"]["properties"])
    assert answer["status"] == "answered" and answer["kind"] == "scan" and answer["reason"] is None
    answered_at = parse(answer["answered_at"])
    assert ISO_TIME.match(answer["answered_at"]) and parse(urge["created_at"]) < answered_at < due
    scan = answer["scan"]
    assert scan["time"] == answer["answered_at"] and scan["location"] == before[0]["location"]
    assert scan["description"] in [text.format(location=scan["location"]) for text in load_table().scans]
    after = crm.ok(f"/api/orders/{urge['order_id']}")["shipment"]["events"]
    assert [event for event in after if event != scan] == before and scan in after
    assert [event["time"] for event in after] == sorted((event["time"] for event in after), reverse=True)
    listed_order = crm.ok(f"/api/customers/{order['customer_id']}/orders?limit=50")["items"]
    assert next(o for o in listed_order if o["order_id"] == urge["order_id"])["shipment"]["events"] == after


def test_a_reason_answer_names_the_reason_from_the_table(crm_clock: Tuple[CrmServer, MovableClock]) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "reason")
    clock.advance_past(parse(urge["answer_due_at"]) - dt.timedelta(seconds=1))
    answer = listed(crm, urge)["answer"]
    assert answer["status"] == "answered" and answer["kind"] == "reason" and answer["scan"] is None
    table = {reason.code: reason for reason in load_table().reasons}
    reason = table[answer["reason"]["code"]]
    assert answer["reason"] == {"code": reason.code, "label": reason.label, "detail": reason.detail} and "carrier" in reason.targets
    events = crm.ok(f"/api/orders/{urge['order_id']}")["shipment"]["events"]
    assert all(not event["description"].startswith("应您的催件") for event in events)


def test_no_answer_is_pending_until_the_due_time_then_unanswered(crm_clock: Tuple[CrmServer, MovableClock]) -> None:
    crm, clock = crm_clock
    urge = urge_with_outcome(crm, clock, "none", hours=1)
    due = parse(urge["answer_due_at"])
    clock.advance_past(due - dt.timedelta(seconds=30))
    seen = listed(crm, urge)
    assert seen["open"] is True and seen["answer"]["status"] == "pending"
    clock.advance_past(due)
    seen = listed(crm, urge)
    assert seen["open"] is False
    assert seen["answer"] == {"status": "unanswered", "answered_at": None, "kind": None, "reason": None, "scan": None}
    # urging again files a new urge, with its own answer
    status, again = crm.post(f"/api/orders/{urge['order_id']}/urge", {"answer_due_at": shop_time(clock.now() + dt.timedelta(hours=2))})
    assert status == 201 and again["urge_id"] != urge["urge_id"] and again["answer"]["status"] == "pending"


def test_a_warehouse_answers_with_a_reason_of_its_own(crm_clock: Tuple[CrmServer, MovableClock]) -> None:
    crm, clock = crm_clock
    rows = query(crm, "SELECT order_id FROM orders WHERE status = 'awaiting_shipment' AND customer_id > 'C000009' ORDER BY order_id")
    warehouse_reasons = {reason.code for reason in load_table().reasons if "warehouse" in reason.targets}
    for (order_id,) in rows[:20]:
        status, urge = crm.post(f"/api/orders/{order_id}/urge", {"answer_due_at": shop_time(clock.now() + dt.timedelta(hours=2))})
        assert status == 201, urge
        if outcome_of(urge["urge_id"], "warehouse") == "reason":
            break
    else:
        raise AssertionError("no warehouse urge with a reason among 20 orders")
    assert urge["target"] == "warehouse"
    clock.advance_past(parse(urge["answer_due_at"]) - dt.timedelta(seconds=1))
    answer = listed(crm, urge)["answer"]
    assert answer["kind"] == "reason" and answer["reason"]["code"] in warehouse_reasons and answer["scan"] is None


def test_listing_urges_keeps_the_api_errors(crm_clock: Tuple[CrmServer, MovableClock]) -> None:
    crm, _ = crm_clock
    order_id = shipped_orders(crm)[-1]
    for bad in ("limit=0", "limit=abc", "offset=-1"):
        assert_error(*crm.get(f"/api/orders/{order_id}/urges?{bad}"), 400, "invalid_argument")
    assert_error(*crm.get("/api/orders/999999999999/urges"), 404, "not_found")
    page = crm.ok(f"/api/orders/{order_id}/urges?limit=1&offset=0")
    assert set(page) == {"items", "total", "limit", "offset"} and page["limit"] == 1


def test_the_test_clock_is_refused_where_strangers_reach_the_crm(tmp_path: Path) -> None:
    import os
    import subprocess

    from crm.tests.support import PYTHON, REPO

    env = {**os.environ, "PYTHONPATH": str(REPO), "CRM_CLOCK_OFFSET_FILE": str(tmp_path / "offset"), "SHOP_ENV": "production",
           "CRM_API_KEY": "k" * 40, "DATABASE_URL": f"sqlite:///{tmp_path / 'crm.sqlite3'}", "VAR_DIR": str(tmp_path)}
    result = subprocess.run([PYTHON, "-m", "crm", "serve", "--host", "127.0.0.1", "--port", "9"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "CRM_CLOCK_OFFSET_FILE" in (result.stdout + result.stderr)
