"""The agent workspace in a real browser: an agent opens a conversation, sees the customer's orders beside
the transcript (with a price-protection claim and its refund window) and starts a return the policy allows;
the shopper is told in the chat."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from bot.settings import get_settings
from handoff import keys, queue
from tests.support.console import signed_in_page
from tests.support.crm import seeded_crm
from tests.support.desk import DeskProcess, desk_process
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def crm_desk(redis_url: str, tmp_path: Path) -> Iterator[DeskProcess]:
    """A desk calling its own seeded reference CRM."""
    with seeded_crm(tmp_path / "crm") as crm_url:
        desk = desk_process(tmp_path / "desk", redis_url, desk_env={"CRM_URL": crm_url}).start()
        try:
            yield desk
        finally:
            desk.stop()


def test_agent_sees_orders_and_starts_a_return(browser, crm_desk: DeskProcess) -> None:
    sender = "conv-workspace-1"
    handoff = request(sender, customer_id="C000001", tier="L4", intents=("return_request",))
    run(crm_desk.redis_url, crm_desk.policy_file, lambda ctx: queue.enqueue(ctx, handoff))
    client = sync_client(crm_desk.redis_url)
    wait_for(lambda: client.zscore(keys.QUEUE, handoff.handoff_id) is not None)

    filing = urllib.request.Request(f"{crm_desk.env['CRM_URL']}/api/orders/880000010001/price-protection", data=b"{}", method="POST",
                                    headers={"X-API-Key": get_settings().crm_api_key, "Idempotency-Key": "browser-workspace-pp-1",
                                             "Content-Type": "application/json"})
    with urllib.request.urlopen(filing, timeout=10) as answer:
        claim = json.load(answer)

    page, errors = signed_in_page(browser, crm_desk.url, "agent1")
    page.wait_for_selector(f".queue-item[data-sender='{sender}']").query_selector(".claim-button").click()
    page.wait_for_selector("#reply-form:not([hidden])")

    order = page.wait_for_selector(".ws-order[data-order='880000010002']", timeout=15000)
    assert "已签收" in order.inner_text()
    page.wait_for_selector(".ws-order[data-order='880000010001'] .ws-compensate")
    assert "金牌会员" in page.inner_text("#workspace")
    shown = page.wait_for_selector(f".ws-order[data-order='880000010001'] .ws-claim[data-claim='{claim['claim_id']}']").inner_text()
    assert "到账" in shown and "申请" in shown and "到账期已过" not in shown
    order.query_selector(".ws-return").click()
    page.select_option(".ws-order[data-order='880000010002'] .ws-reason", "wrong_size")
    page.click(".ws-order[data-order='880000010002'] .ws-return-go")
    page.wait_for_selector(".ws-order[data-order='880000010002'] .ws-status.ok, .ws-returns li:has-text('R')", timeout=15000)
    page.wait_for_selector("#transcript .entry.agent:has-text('退货单号')", timeout=10000)
    page.wait_for_selector(".ws-returns li:has-text('申请')", timeout=10000)
    assert not errors, errors
