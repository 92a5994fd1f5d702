"""Supervisor reviews in a real browser: a supervisor sees the open reviews of every kind below the tickets and
closes one with a note; an agent's console shows none."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from handoff import reviews
from tests.support.console import signed_in_page
from tests.support.desk import DeskProcess, desk_process
from tests.support.handoff import run, sync_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def desk(redis_url: str, tmp_path: Path) -> Iterator[DeskProcess]:
    process = desk_process(tmp_path / "desk", redis_url, ("agent1", "supervisor1")).start()
    try:
        yield process
    finally:
        process.stop()


def test_a_supervisor_closes_a_review_with_a_note(browser, desk: DeskProcess) -> None:
    complaint = run(desk.redis_url, desk.policy_file, lambda ctx: reviews.open_review(
        ctx, "complaint", "h" + "5" * 24, "app:review-ui", "客服态度太差了，我要投诉", agent="agent1"))["review_id"]
    breach = run(desk.redis_url, desk.policy_file, lambda ctx: reviews.open_review(
        ctx, "sla_breach", "h" + "6" * 24, "app:review-ui-2", "首次响应目标 120 秒未达成"))["review_id"]

    page, errors = signed_in_page(browser, desk.url, "supervisor1")
    page.click("#tab-callbacks")
    row = page.wait_for_selector(f"tr[data-review='{complaint}']")
    assert "顾客投诉客服" in row.inner_text() and "agent1" in row.inner_text()
    assert "首次响应超时" in page.wait_for_selector(f"tr[data-review='{breach}']").inner_text()
    row.query_selector(".review-close").click()  # without a note: refused, the supervisor is told
    page.wait_for_selector(f"tr[data-review='{complaint}'] .review-status:has-text('请填写复盘结论')")
    page.fill(f"tr[data-review='{complaint}'] .review-note", "已致电顾客道歉，客服已做辅导")
    page.click(f"tr[data-review='{complaint}'] .review-close")
    page.wait_for_selector(f"tr[data-review='{complaint}']", state="detached")
    client = sync_client(desk.redis_url)
    assert wait_for(lambda: client.hget(reviews.review_key(complaint), "status")) == "closed"
    assert client.hget(reviews.review_key(complaint), "note") == "已致电顾客道歉，客服已做辅导"
    assert not errors, errors

    agent_page, agent_errors = signed_in_page(browser, desk.url, "agent1")
    agent_page.click("#tab-callbacks")
    agent_page.wait_for_selector("#tickets-overdue")
    assert agent_page.query_selector("#reviews") is None and not agent_errors
