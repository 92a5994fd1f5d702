"""The agent workspace on a real Redis and a seeded reference CRM: the customer overview, who may see it,
and the actions an agent takes for the shopper (checked by the bot's policy, written to the CRM once)."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Iterator, List

import pytest

from actions import formatting
from actions.crm import CRMClient
from bot.settings import get_settings
from desk.workspace import claim_view
from handoff import keys, queue
from tests.support.crm import seeded_crm
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def crm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with seeded_crm(Path(tmp_path_factory.mktemp("workspace-crm"))) as url:
        yield url


@pytest.fixture()
def desk(start_desk, crm_url: str) -> DeskProcess:
    desk = start_desk(agents=("agent1", "agent2", "supervisor"), desk_env={"CRM_URL": crm_url})
    for name in ("agent1", "agent2", "supervisor"):
        desk.login(name)
    return desk


def claimed(desk: DeskProcess, sender: str, customer_id: str, tier: str = "L4", agent: str = "agent1") -> str:
    """A handoff of ``customer_id`` queued as the bot queues it and claimed by ``agent``."""
    handoff = request(sender, customer_id=customer_id, tier=tier)
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, handoff))
    wait_for(lambda: sync_client(desk.redis_url).hget(keys.record(handoff.handoff_id), "status") == "queued")
    status, body = desk.call("POST", f"/api/conversations/{sender}/claim", agent)
    assert status == 200, body
    return handoff.handoff_id


def outbox_texts(desk: DeskProcess, sender: str) -> List[str]:
    client = sync_client(desk.redis_url)
    return [json.loads(fields["message"])["text"] for _, fields in client.xrange(f"outbox:{sender}")]


def test_overview_shows_orders_returns_points_and_is_masked_by_role(desk: DeskProcess) -> None:
    claimed(desk, "app:ws1", "C000001")
    status, body = desk.call("GET", "/api/customers/C000001/overview", "agent1")
    assert status == 200, body
    customer = body["customer"]
    assert customer["tier"] == "L4" and customer["points_balance"] > 0
    assert customer["name"] == "张*" and customer["phone"] == "138****5678"
    orders = {o["order_id"]: o for o in body["orders"]}
    late, delivered = orders["880000010001"], orders["880000010002"]
    assert late["late"] and late["actions"]["late_compensation"] and late["actions"]["late_compensation_points"] == 1000
    assert late["shipment"]["tracking_number"] == "SF880000010001" and late["actions"]["resend_tracking"]
    assert "****" in late["receiver"]["address"]
    shoes = next(i for i in delivered["items"] if "跑鞋" in i["product_name"])
    assert shoes["returnable"] and any(r["reason"] == "wrong_size" and r["eligible"] for r in shoes["reasons"])
    conversations = body["conversations"]
    assert conversations and conversations[0]["sender"] == "app:ws1" and conversations[0]["channel"] == "app"
    # The supervisor sees any customer, with the name in full (phones stay masked).
    status, body = desk.call("GET", "/api/customers/C000003/overview", "supervisor")
    assert status == 200 and body["customer"]["name"] == "王芳" and body["customer"]["phone"] == "150****2222"


def test_overview_refusals(desk: DeskProcess) -> None:
    claimed(desk, "app:ws2", "C000001")
    assert desk.call("GET", "/api/customers/C000003/overview", "agent1")[1]["error"]["code"] == "not_your_customer"
    status, body = desk.call("GET", "/api/customers/C000001/overview", "agent2")
    assert (status, body["error"]["code"]) == (403, "not_your_customer")
    assert desk.call("GET", "/api/customers/xyz/overview", "supervisor")[0] == 400
    assert desk.call("GET", "/api/customers/C999999/overview", "supervisor")[0] == 404
    assert desk.call("GET", "/api/customers/C000001/overview")[0] == 401


def test_crm_down_is_a_clear_503(start_desk) -> None:
    from bot.redis_server import free_port

    desk = start_desk(name="nocrm", agents=("supervisor",), desk_env={"CRM_URL": f"http://127.0.0.1:{free_port()}", "CRM_RETRIES": "0"})
    desk.login("supervisor")
    status, body = desk.call("GET", "/api/customers/C000001/overview", "supervisor")
    assert (status, body["error"]["code"]) == (503, "crm_unavailable")


def test_return_from_the_workspace_is_checked_written_once_and_told(desk: DeskProcess) -> None:
    claimed(desk, "app:ws3", "C000001")
    shoes = {"order_id": "880000010002", "lines": [{"line_id": 1, "quantity": 1}], "reason": "wrong_size", "request_id": "r-1"}
    # The late order is not signed for: the return policy refuses it with its reason.
    status, body = desk.call("POST", "/api/conversations/app:ws3/actions/return", "agent1", {**shoes, "order_id": "880000010001"})
    assert (status, body["error"]["code"]) == (409, "not_returnable") and "not_signed" in body["error"]["rules"]
    status, first = desk.call("POST", "/api/conversations/app:ws3/actions/return", "agent1", shoes)
    assert status == 201, first
    status, again = desk.call("POST", "/api/conversations/app:ws3/actions/return", "agent1", shoes)
    assert status == 200 and again["return"]["return_id"] == first["return"]["return_id"] and again["duplicate"]
    told = [t for t in outbox_texts(desk, "app:ws3") if first["return"]["return_id"] in t]
    assert len(told) == 1 and "退货单号" in told[0]
    status, body = desk.call("GET", "/api/customers/C000001/overview", "agent1")
    assert any(r["return_id"] == first["return"]["return_id"] for r in body["returns"])
    # Only the agent who holds the conversation acts in it.
    assert desk.call("POST", "/api/conversations/app:ws3/actions/return", "agent2", shoes)[0] == 403
    assert desk.call("POST", "/api/conversations/app:ws3/actions/return", "agent1", {**shoes, "order_id": "88"})[0] == 400
    assert desk.call("POST", "/api/conversations/app:ws3/actions/return", "agent1", {**shoes, "order_id": "880000030001"})[0] == 403


def test_compensation_tracking_and_callback(desk: DeskProcess) -> None:
    claimed(desk, "app:ws4", "C000001")
    path = "/api/conversations/app:ws4/actions/"
    status, grant = desk.call("POST", path + "late-compensation", "agent1", {"order_id": "880000010001"})
    assert status in (200, 201) and grant["points"] == 1000, grant
    assert grant["idempotency_key"] == "late-delivery-880000010001"
    status, body = desk.call("POST", path + "late-compensation", "agent1", {"order_id": "880000010002"})
    assert (status, body["error"]["code"]) == (409, "not_late")
    status, sent = desk.call("POST", path + "resend-tracking", "agent1", {"order_id": "880000010001"})
    assert status == 201 and "SF880000010001" in sent["message"]["text"]
    status, booked = desk.call("POST", path + "callback", "agent1", {"note": "顾客希望下午联系", "request_id": "cb-1"})
    assert status == 201 and keys.CALLBACK_ID.fullmatch(booked["callback_id"])
    status, again = desk.call("POST", path + "callback", "agent1", {"note": "顾客希望下午联系", "request_id": "cb-1"})
    assert status == 200 and again["callback_id"] == booked["callback_id"]
    status, tickets = desk.call("GET", "/api/callbacks", "agent1")
    assert sum(1 for t in tickets["callbacks"] if t["callback_id"] == booked["callback_id"]) == 1
    texts = outbox_texts(desk, "app:ws4")
    assert any("1000 积分" in t for t in texts) and any("预约回访" in t for t in texts)



def file_price_protection(crm_url: str, order_id: str, key: str) -> dict:
    """A price-protection claim filed in the CRM as the bot files it (the same key gives the same claim)."""

    async def file() -> dict:
        client = CRMClient(crm_url, get_settings().crm_api_key)
        try:
            return (await client.claim_price_protection(order_id, key)).record
        finally:
            await client.close()

    return asyncio.run(file())


def test_overview_shows_the_price_protection_claims_of_each_order(desk: DeskProcess, crm_url: str) -> None:
    claimed(desk, "app:ws5", "C000001")
    filed = file_price_protection(crm_url, "880000010001", "ws-test-price-protection-1")
    assert file_price_protection(crm_url, "880000010001", "ws-test-price-protection-1")["claim_id"] == filed["claim_id"]
    status, body = desk.call("GET", "/api/customers/C000001/overview", "agent1")
    assert status == 200, body
    orders = {o["order_id"]: o for o in body["orders"]}
    claims = orders["880000010001"]["price_protection"]
    assert [c["claim_id"] for c in claims] == [filed["claim_id"]]
    claim = claims[0]
    assert claim["refund"] == formatting.money(filed["refund_fen"]) and filed["refund_fen"] > 0
    assert (claim["refund_expected_from"], claim["refund_expected_by"]) == (filed["refund_expected_from"], filed["refund_expected_by"])
    today = date.fromisoformat(body["today"])
    assert formatting.day(date.fromisoformat(filed["refund_expected_by"]), today) in claim["window"] and "到账" in claim["window"]
    assert filed["claim_id"] in claim["text"] and claim["refund"] in claim["text"] and "申请" in claim["text"]
    assert claim["created_at"] == filed["created_at"] and not claim["overdue"]
    assert orders["880000010002"]["price_protection"] == []


def test_a_claim_whose_refund_window_ended_is_overdue() -> None:
    claim = {"claim_id": "PP0000000001", "status": "refunding", "status_label": "差价退款中", "refund_fen": 20000,
             "refund_method_label": "微信支付", "refund_expected_from": "2026-12-01", "refund_expected_by": "2026-12-03",
             "created_at": "2026-11-30T10:00:00+08:00"}
    late = claim_view(claim, date(2026, 12, 5))
    assert late["overdue"] and "2 天" in late["overdue_text"] and "12月1日" in late["window"] and "12月3日" in late["window"]
    assert not claim_view(claim, date(2026, 12, 3))["overdue"]
    assert not claim_view({**claim, "status": "refunded"}, date(2026, 12, 5))["overdue"]
    broken = claim_view({"claim_id": "PP1", "refund_fen": "9", "refund_expected_by": "soon", "created_at": "?"}, date(2026, 12, 5))
    assert broken["refund"] == "¥0.00" and not broken["overdue"]
