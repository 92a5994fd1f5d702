"""Carrier-urge tickets in a real browser: an agent sees an urge whose promised answer time has passed
among the overdue tickets and answers the shopper from the console."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bot.outbox import outbox_key
from handoff import carrier_urges
from tests.support.console import signed_in_page
from tests.support.desk import DeskProcess
from tests.support.handoff import run, sync_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
SHOP = dt.timezone(dt.timedelta(hours=8))


def promised(desk: DeskProcess, sender: str, due_in_s: float, urge_id: int) -> str:
    now = dt.datetime.now(SHOP).replace(microsecond=0)
    urge = {"urge_id": urge_id, "order_id": "202611150023", "target": "carrier", "carrier_name": "中通快递",
            "created_at": (now - dt.timedelta(hours=2)).isoformat(), "answer_due_at": (now + dt.timedelta(seconds=due_in_s)).isoformat()}
    ticket_id = run(desk.redis_url, desk.policy_file, lambda ctx: carrier_urges.promise(ctx, urge, sender))
    assert ticket_id is not None
    return ticket_id


def test_agent_answers_an_overdue_carrier_urge(browser, desk: DeskProcess) -> None:
    sender = "conv-urge-browser"
    late = promised(desk, sender, due_in_s=-60, urge_id=41)
    waiting = promised(desk, "conv-urge-browser-2", due_in_s=3600, urge_id=42)

    page, errors = signed_in_page(browser, desk.url, "agent1")
    page.click("#tab-callbacks")
    page.wait_for_selector(f"tr.overdue[data-urge='{late}']")
    page.wait_for_selector(f"tr[data-urge='{waiting}']:not(.overdue)")
    page.wait_for_selector("#tickets-overdue:has-text('催件未回复 1 件')")

    row = page.wait_for_selector(f"tr[data-urge='{late}'] .cb-answer")
    row.query_selector(".urge-answer-text").fill("您好，中通快递已确认快件今天派送，请保持电话畅通。")
    row.query_selector(".urge-answer-send").click()
    page.wait_for_selector("#tickets-overdue:has-text('催件未回复 0 件')")
    wait_for(lambda: page.query_selector(f"tr[data-urge='{late}']") is None)
    sent = [json.loads(f["message"]) for _, f in sync_client(desk.redis_url).xrange(outbox_key(sender))]
    assert [m["text"] for m in sent if m.get("from") == "agent"] == ["您好，中通快递已确认快件今天派送，请保持电话畅通。"]
    assert not errors, errors
