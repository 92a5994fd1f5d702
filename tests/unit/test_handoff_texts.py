"""What shoppers read about their handoff: concrete times, never 「稍后」."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.handoff import texts

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 14, 31, tzinfo=TZ)  # Monday


@pytest.mark.parametrize(
    "moment, expected",
    [
        (datetime(2026, 11, 23, 14, 35, tzinfo=TZ), "14:35"),
        (datetime(2026, 11, 24, 8, 0, tzinfo=TZ), "明天 08:00"),
        (datetime(2026, 11, 25, 8, 0, tzinfo=TZ), "后天 08:00"),
        (datetime(2026, 11, 28, 9, 30, tzinfo=TZ), "11月28日（周六）09:30"),
    ],
)
def test_clock(moment, expected):
    assert texts.clock(moment, NOW) == expected


def test_queue_notice_is_concrete():
    text = texts.queue_notice(3, 240, NOW, priority_lane=True, tier_name="金牌会员")
    assert "您是金牌会员，已为您进入优先队列" in text
    assert "您前面还有 2 位顾客，预计 14:35 前接入（约 4 分钟）" in text
    assert "不用再重复描述" in text and "稍后" not in text
    assert "您是下一位，预计 14:32 前接入（约 1 分钟）" in texts.queue_notice(1, 60, NOW)


def test_callback_offer_names_the_window():
    start, end = datetime(2026, 11, 24, 8, 0, tzinfo=TZ), datetime(2026, 11, 24, 9, 0, tzinfo=TZ)
    text = texts.callback_offer(start, end, NOW, "08:00–23:00", closed_now=True)
    assert "每天 08:00–23:00" in text and "明天（11月24日） 08:00–09:00" in text and "稍后" not in text
    assert "都不在线" in texts.callback_offer(start, end, NOW, "08:00–23:00", closed_now=False)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        ((14, 40), (15, 40), "今天 14:40–15:40"),
        ((23, 20), (24, 20), "今天 23:20–次日 00:20"),
        ((23, 20), (24, 0), "今天 23:20–24:00"),
    ],
)
def test_a_window_past_midnight_says_so(start, end, expected):
    day = datetime(2026, 11, 23, tzinfo=TZ)
    assert texts.window(day + timedelta(hours=start[0], minutes=start[1]), day + timedelta(hours=end[0], minutes=end[1]), NOW) == expected


def test_rating_buttons_carry_the_entity():
    buttons = texts.rating_buttons()
    assert [b["title"][:2] for b in buttons] == ["5分", "4分", "3分", "2分", "1分"]
    for button, score in zip(buttons, "54321", strict=True):
        assert button["payload"].startswith("/rate_service")
        assert json.loads(button["payload"][len("/rate_service"):]) == {"rating": score}


def test_low_ratings_get_an_apology():
    assert "非常抱歉" in texts.rating_thanks(1) and "感谢" in texts.rating_thanks(5)


def test_a_rating_without_a_handoff_promises_no_review():
    # Only a rating of a handoff opens a supervisor review (with its number and due date).
    assert "复盘" not in texts.rating_thanks(1) and "主管" not in texts.rating_thanks(2)


def test_every_shopper_text_is_polite_and_concrete():
    samples = [
        texts.position_update(2, 120, NOW), texts.position_update(1, None, NOW), texts.waiting_ack(3, 300, NOW), texts.with_agent_ack("小王"),
        texts.agent_joined("小王"), texts.transferred("小李"), texts.resolved("小王", "问题已解决"), texts.rating_prompt("小王"), texts.cancelled(),
    ]
    for text in samples:
        assert "稍后" not in text and "您" in text
