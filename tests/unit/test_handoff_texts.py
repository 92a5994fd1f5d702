"""What shoppers read about their handoff: concrete times, never 「稍后」."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from handoff import texts

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 14, 31, tzinfo=TZ)  # Monday


UTC = ZoneInfo("UTC")


def shop(day: int, hour: int, minute: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    "moment, expected",
    [
        (shop(23, 14, 35), "今天 14:35"),
        (shop(24, 8, 0), "明天 08:00"),
        (shop(25, 8, 0), "11月25日 08:00"),
        (shop(28, 9, 30), "11月28日 09:30"),
        (shop(22, 22, 40), "11月22日 22:40"),  # an earlier day (when an answer came) names its date too
    ],
)
def test_clock(moment, expected):
    assert texts.clock(moment, NOW) == expected


# (now, promised moment, what the shopper reads): times around midnight in the shop's timezone, and
# moments given in UTC (as stored) read in shop time.
NEAR_MIDNIGHT = [
    (shop(23, 23, 58), shop(23, 23, 59), "今天 23:59"),
    (shop(23, 23, 58), shop(24, 0, 3), "明天 00:03"),
    (shop(23, 23, 59), shop(24, 23, 59), "明天 23:59"),
    (shop(23, 23, 59), shop(25, 0, 0), "11月25日 00:00"),
    (shop(24, 0, 0), shop(24, 0, 5), "今天 00:05"),
    (shop(24, 0, 1), shop(24, 9, 0), "今天 09:00"),  # after midnight 09:00 is today's, no longer 明天
    (shop(24, 0, 1), shop(25, 9, 0), "明天 09:00"),
    (shop(23, 23, 50), datetime(2026, 11, 23, 16, 20, tzinfo=UTC), "明天 00:20"),  # 16:20 UTC is 00:20 in Shanghai
    (shop(24, 7, 30), datetime(2026, 11, 23, 23, 30, tzinfo=UTC), "今天 07:30"),
    (shop(31, 23, 40, month=12), shop(1, 0, 10, month=1).replace(year=2027), "明天 00:10"),  # across the year
    (shop(31, 23, 40, month=12), shop(2, 8, 0, month=1).replace(year=2027), "1月2日 08:00"),
]


@pytest.mark.parametrize("now, moment, expected", NEAR_MIDNIGHT)
def test_a_promised_time_near_midnight_names_its_day(now, moment, expected):
    assert texts.clock(moment, now) == expected


@pytest.mark.parametrize("now, moment, expected", NEAR_MIDNIGHT)
def test_an_eta_near_midnight_names_its_day(now, moment, expected):
    wait_s = int((moment - now).total_seconds())
    if wait_s > 0:
        assert texts.eta_phrase(wait_s, now).startswith(f"预计{expected} 前接入")


@pytest.mark.parametrize(
    "now, start, end, expected",
    [
        (shop(23, 22, 30), shop(23, 23, 0), shop(24, 0, 0), "今天 23:00–24:00"),
        (shop(23, 22, 50), shop(23, 23, 20), shop(24, 0, 20), "今天 23:20–明天 00:20"),
        (shop(23, 23, 50), shop(24, 0, 10), shop(24, 1, 10), "明天（11月24日） 00:10–01:10"),
        (shop(24, 0, 5), shop(24, 8, 0), shop(24, 9, 0), "今天 08:00–09:00"),
        (shop(23, 23, 59), shop(24, 23, 30), shop(25, 0, 30), "明天（11月24日） 23:30–11月25日 00:30"),
        (shop(23, 23, 59), shop(25, 8, 0), shop(25, 9, 0), "11月25日 08:00–09:00"),
        (shop(23, 23, 30), datetime(2026, 11, 24, 0, 0, tzinfo=UTC), datetime(2026, 11, 24, 1, 0, tzinfo=UTC), "明天（11月24日） 08:00–09:00"),
    ],
)
def test_a_window_near_midnight_names_each_day(now, start, end, expected):
    assert texts.window(start, end, now) == expected


def test_every_callback_notice_near_midnight_is_concrete():
    now, start, end = shop(23, 23, 58), shop(24, 8, 0), shop(24, 9, 0)
    notices = [
        texts.callback_offer(start, end, now, "08:00–22:00", closed_now=True), texts.closed_while_waiting(start, end, now),
        texts.unattended_while_waiting(start, end, now), texts.unclaimed_while_waiting(start, end, now),
        texts.callback_agent_offline("小王", start, end, now, closed_now=True),
    ]
    for notice in notices:
        assert "明天（11月24日） 08:00–09:00" in notice and "稍后" not in notice


def test_queue_notice_is_concrete():
    text = texts.queue_notice(3, 240, NOW, priority_lane=True, tier_name="金牌会员")
    assert "您是金牌会员，已为您进入优先队列" in text
    assert "您前面还有 2 位顾客，预计今天 14:35 前接入（约 4 分钟）" in text
    assert "不用再重复描述" in text and "稍后" not in text
    assert "您是下一位，预计今天 14:32 前接入（约 1 分钟）" in texts.queue_notice(1, 60, NOW)


def test_callback_offer_names_the_window():
    start, end = datetime(2026, 11, 24, 8, 0, tzinfo=TZ), datetime(2026, 11, 24, 9, 0, tzinfo=TZ)
    text = texts.callback_offer(start, end, NOW, "08:00–23:00", closed_now=True)
    assert "每天 08:00–23:00" in text and "明天（11月24日） 08:00–09:00" in text and "稍后" not in text
    assert "都不在线" in texts.callback_offer(start, end, NOW, "08:00–23:00", closed_now=False)


@pytest.mark.parametrize(
    "start, end, expected",
    [
        ((14, 40), (15, 40), "今天 14:40–15:40"),
        ((23, 20), (24, 20), "今天 23:20–明天 00:20"),
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
