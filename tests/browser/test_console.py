"""The agent console in a real browser: login → claim → summary → live messages both ways → resolve."""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from actions.handoff_summary import ShopperFacts, build_summary, render_summary
from bot.outbox import Outbox
from handoff import agents, conversation, keys, queue
from handoff.express import express_enqueue, refine
from handoff.models import HandoffRequest
from tests.support.console import log_in, signed_in_page
from tests.support.desk import DeskProcess
from tests.support.handoff import request, run, sync_client
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def realistic_request(sender: str) -> HandoffRequest:
    """The handoff a signed L4 customer with a late order makes after two turns with the bot."""
    now = time.time()
    events = [
        {"event": "user", "text": "我的快递到哪了", "timestamp": now - 120, "parse_data": {"intent": {"name": "track_order"}, "entities": []}},
        {"event": "bot", "text": "您的订单 880000010001 运输中（顺丰速运 SF880000010001），承诺 2 天前送达，非常抱歉已经晚了。",
         "timestamp": now - 119},
        {"event": "user", "text": "怎么还没到！！我要投诉", "timestamp": now - 30, "parse_data": {"intent": {"name": "complaint"}, "entities": []}},
    ]
    order = {"order_id": "880000010001", "customer_id": "C000001", "status": "in_transit", "status_label": "运输中",
             "promised_date": "2026-11-20", "is_late": True, "paid_fen": 56900, "items": [{"product_name": "耐克 Air Zoom 跑鞋", "quantity": 1}],
             "shipment": {"carrier_name": "顺丰速运", "tracking_number": "SF880000010001"}}
    facts = ShopperFacts("C000001", "signed", {"name": "张伟", "phone": "13812345678", "tier": "L4", "tier_name": "金牌会员"}, [order])
    summary = build_summary(events, facts, "angry", "顾客情绪激动", date(2026, 11, 22))
    base = request(sender, customer_id="C000001", tier="L4", reason="angry", intents=("track_order", "complaint"))
    return dataclasses.replace(base, summary=summary, summary_text=render_summary(summary, ZoneInfo("Asia/Shanghai")), tier_name="金牌会员")


def test_login_claim_reply_resolve(browser, desk: DeskProcess, tmp_path: Path) -> None:
    sender = "conv-browser-1"
    req = realistic_request(sender)
    run(desk.redis_url, desk.policy_file, lambda ctx: queue.enqueue(ctx, req))
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.zscore(keys.QUEUE, req.handoff_id) is not None)

    page = browser.new_page(viewport={"width": 1400, "height": 860}, locale="zh-CN")
    errors: list = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, desk.url, "agent1", "wrong-password")
    page.wait_for_selector("#login-error:has-text('用户名或密码不正确')")
    page.fill("#login-password", "agent1-pass")
    page.click("#login-submit")
    page.wait_for_selector("#me-name:has-text('小王')")
    page.wait_for_selector("#live-dot.on")

    card = page.wait_for_selector(f".queue-item[data-sender='{sender}']")
    assert "优先" in card.inner_text() and "情绪激动" in card.inner_text()
    card.query_selector(".claim-button").click()
    page.wait_for_selector("#summary:has-text('【转人工摘要】')")
    summary = page.inner_text("#summary")
    assert "张*（138****5678）" in summary and "880000010001 运输中" in summary and "13812345678" not in summary
    page.wait_for_selector("#reply-form:not([hidden])")
    assert client.hget(keys.record(req.handoff_id), "agent") == "agent1"

    run(desk.redis_url, desk.policy_file, lambda ctx: conversation.route_shopper_message(ctx, sender, "我的快递三天没动了"))
    page.wait_for_selector("#transcript .entry.shopper:has-text('我的快递三天没动了')", timeout=5000)

    page.select_option("#canned", index=1)
    assert "您好，我是客服小王" in page.input_value("#reply-text")
    page.fill("#reply-text", "您好，我是客服小王，已经在帮您催顺丰了。")
    page.press("#reply-text", "Enter")
    page.wait_for_selector("#transcript .entry.agent:has-text('已经在帮您催顺丰了')")

    async def delivered(ctx):
        messages, _ = await Outbox(ctx.redis, ttl_s=3600).fetch(sender)
        return [m["text"] for m in messages if m.get("from") == "agent"]

    assert run(desk.redis_url, desk.policy_file, delivered) == ["您好，我是客服小王，已经在帮您催顺丰了。"]

    page.fill("#note-text", "顺丰单号延误，已提交催件")
    page.click("#note-add")
    page.wait_for_selector("#notes li:has-text('已提交催件')")

    screenshot = Path(os.environ.get("CONSOLE_SCREENSHOT") or tmp_path / "console.png")
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000

    page.select_option("#resolve-code", "resolved")
    page.click("#resolve-button")
    page.wait_for_selector("#conv-status:has-text('已结束')")
    page.wait_for_selector("#reply-form[hidden]", state="attached")
    assert client.get(keys.active(sender)) is None
    assert client.hget(keys.record(req.handoff_id), "resolution_code") == "resolved"
    assert errors == []

    page.click("#tab-callbacks")
    page.wait_for_selector("#callbacks-empty:not([hidden])")
    page.close()


def test_the_full_summary_replaces_the_short_one_while_the_agent_reads_it(browser, desk: DeskProcess) -> None:
    sender = "conv-browser-express"

    async def channel_queues(ctx) -> HandoffRequest:
        await agents.heartbeat(ctx, "agent2")
        opened = await express_enqueue(ctx, sender, "C000001", "app", "转人工！！")
        assert opened is not None
        return opened

    opened = run(desk.redis_url, desk.policy_file, channel_queues)
    client = sync_client(desk.redis_url)
    wait_for(lambda: client.zscore(keys.QUEUE, opened.handoff_id) is not None)

    page, _ = signed_in_page(browser, desk.url, "agent1")
    page.wait_for_selector(f".queue-item[data-sender='{sender}']").query_selector(".claim-button").click()
    page.wait_for_selector("#summary:has-text('完整摘要正在生成')")
    assert "转人工！！" in page.inner_text("#summary")

    full = dataclasses.replace(realistic_request(sender), handoff_id=opened.handoff_id, enqueued_at=opened.enqueued_at)
    assert run(desk.redis_url, desk.policy_file, lambda ctx: refine(ctx, full))
    page.wait_for_selector("#summary:has-text('880000010001 运输中')", timeout=5000)  # no reload: the desk's live event
    summary = page.inner_text("#summary")
    assert "完整摘要正在生成" not in summary and "张*（138****5678）" in summary
    assert client.hget(keys.record(opened.handoff_id), "agent") == "agent1"
    page.close()
