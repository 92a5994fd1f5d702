"""The NLU inbox in a real browser: a supervisor reviews the messages the bot missed and labels one;
an agent does not see the inbox."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from bot.nlu_inbox import INDEX, item_key
from tests.support import console
from tests.support.desk import DeskProcess, desk_process
from tests.support.handoff import sync_client
from tests.support.nlu_inbox import seed_inbox
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def supervised_desk(redis_url: str, tmp_path: Path) -> Iterator[DeskProcess]:
    desk = desk_process(tmp_path / "desk", redis_url, agents=("agent1", "supervisor")).start()
    try:
        yield desk
    finally:
        desk.stop()


def log_in(page, desk: DeskProcess, username: str) -> None:
    console.log_in(page, desk.url, username)
    page.wait_for_selector("#me-name:has-text('" + username + "')")


def test_a_supervisor_labels_a_missed_message(browser, supervised_desk: DeskProcess, tmp_path: Path) -> None:
    desk = supervised_desk
    first, second = seed_inbox(desk.redis_url, desk.policy_file, [
        ("优惠券用不了，手机13812345678", "nlu_fallback", 0.45, ("fallback",)),
        ("京享值怎么查看", "out_of_scope", 0.998, ("correction",)),
    ])

    agent = browser.new_page(viewport={"width": 1400, "height": 860}, locale="zh-CN")
    log_in(agent, desk, "agent1")
    assert agent.is_hidden("#tab-inbox") and agent.is_hidden("#inbox-view")
    agent.close()

    page = browser.new_page(viewport={"width": 1400, "height": 860}, locale="zh-CN")
    errors: list = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, desk, "supervisor")
    page.wait_for_selector("#inbox-badge:has-text('2')")
    page.click("#tab-inbox")
    page.wait_for_selector(f".inbox-item[data-id='{second}']")
    assert page.is_hidden("#desk-view") and page.is_visible("#inbox-view")
    rows = page.inner_text("#inbox-rows")
    assert "优惠券用不了，手机138****5678" in rows and "13812345678" not in rows
    assert "没能理解（最接近：常见问题" in rows and "超出服务范围（把握 100%）" in rows
    assert "机器人没能理解" in rows and "顾客随后表示“不是这个意思”" in rows
    assert "共 2 句，已标注 0 句" in page.inner_text("#inbox-counts")
    assert "保留 30 天" in page.inner_text("#inbox-retention")

    row = page.locator(f".inbox-item[data-id='{second}']")
    row.locator(".label-save").click()
    row.locator(".error:has-text('请先选择这句话的正确意图')").wait_for()
    row.locator(".label-picker").select_option("membership_tier")
    row.locator(".label-save").click()
    row.locator(".labelled-as:has-text('已保存，已标注为「会员等级」（supervisor')").wait_for()
    client = sync_client(desk.redis_url)
    assert client.hget(item_key(second), "label") == "membership_tier"
    assert client.hget(item_key(second), "labelled_by") == "supervisor"
    page.wait_for_selector("#inbox-counts:has-text('已标注 1 句')")
    page.wait_for_selector("#inbox-badge:has-text('1')")

    screenshot = Path(os.environ.get("INBOX_SCREENSHOT") or tmp_path / "inbox.png")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    page.select_option("#inbox-filter", "labelled")
    page.wait_for_selector(f".inbox-item.labelled[data-id='{second}']")
    wait_for(lambda: page.locator(".inbox-item").count() == 1)  # the list re-renders after the filter's answer
    page.select_option("#inbox-filter", "unlabelled")
    page.wait_for_selector(f".inbox-item[data-id='{first}']")
    wait_for(lambda: page.locator(".inbox-item").count() == 1)
    assert client.zcard(INDEX) == 2

    page.click("#tab-desk")
    assert page.is_hidden("#inbox-view") and page.is_visible("#desk-view")
    assert errors == []
    page.close()
