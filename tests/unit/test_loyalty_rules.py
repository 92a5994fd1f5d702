"""Points and membership rules as plain functions: wording, expiry dates, tier gaps, coupons."""

from __future__ import annotations

from datetime import date
from typing import Any, Dict, List

import pytest

from actions import loyalty_rules as rules

TODAY = date(2026, 11, 22)  # a Sunday

TIERS: List[Dict[str, Any]] = [
    {"code": "L3", "name": "银牌会员", "min_growth_value": 10000,
     "benefits": ["购物满49元包邮", "每消费1元累积1积分", "售后申请优先审核（60分钟内响应）"]},
    {"code": "L1", "name": "注册会员", "min_growth_value": 0, "benefits": ["购物满99元包邮", "每消费1元累积1积分"]},
    {"code": "L2", "name": "铜牌会员", "min_growth_value": 2000, "benefits": ["购物满79元包邮", "每消费1元累积1积分", "每月领取1张运费券"]},
    {"code": "L5", "name": "钻石会员", "min_growth_value": 100000, "benefits": ["全场包邮", "每消费1元累积1积分", "一对一专属客服，最高优先级接入"]},
    {"code": "L4", "name": "金牌会员", "min_growth_value": 30000, "benefits": ["全场包邮", "每消费1元累积1积分", "专属客服通道，优先接入人工"]},
]

COUPONS: List[Dict[str, Any]] = [
    {"coupon_id": "CP0005", "title": "无门槛5元券", "points_cost": 500, "value_fen": 500, "threshold_fen": 0, "valid_days": 30},
    {"coupon_id": "CP0010", "title": "满99减10", "points_cost": 1000, "value_fen": 1000, "threshold_fen": 9900, "valid_days": 30},
    {"coupon_id": "CP0020", "title": "满199减20", "points_cost": 2000, "value_fen": 2000, "threshold_fen": 19900, "valid_days": 30},
    {"coupon_id": "CP0050", "title": "满500减50", "points_cost": 5000, "value_fen": 5000, "threshold_fen": 50000, "valid_days": 30},
    {"coupon_id": "CP0100", "title": "满1000减100", "points_cost": 10000, "value_fen": 10000, "threshold_fen": 100000, "valid_days": 60},
]

SUMMARY: Dict[str, Any] = {
    "customer_id": "C000001",
    "balance": 39469,
    "expiring": [
        {"points": 585, "expires_on": "2026-12-31"},
        {"points": 800, "expires_on": "2026-11-30"},
        {"points": 38084, "expires_on": "2027-12-31"},
    ],
    "recent": [
        {"delta": 968, "reason": "购物获得积分（订单 880000010002）", "created_at": "2026-11-19T14:32:00+08:00"},
        {"delta": 800, "reason": "会员日活动赠送积分（当月底到期）", "created_at": "2026-11-01T10:00:00+08:00"},
        {"delta": -2000, "reason": "兑换优惠券：满199减20", "created_at": "2026-09-14T15:25:00+08:00"},
        {"delta": 1287, "reason": "购物获得积分（订单 880000010055）", "created_at": "2026-09-04T14:25:00+08:00"},
    ],
}


def coupon(coupon_id: str) -> Dict[str, Any]:
    return next(item for item in COUPONS if item["coupon_id"] == coupon_id)


@pytest.mark.parametrize(
    ("value", "expected"), [(0, "0"), (800, "800"), (39469, "39,469"), (1000000, "1,000,000")]
)
def test_points_are_written_with_separators(value: int, expected: str) -> None:
    assert rules.points(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0, "¥0.00"), (50, "¥0.50"), (100, "¥1.00"), (39469, "¥394.69"), (2000, "¥20.00")]
)
def test_hundred_points_are_one_yuan(value: int, expected: str) -> None:
    assert rules.points_value(value) == expected


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"points": 800, "expires_on": "2026-11-30"}, "有 800 积分将于 11月30日（周一）过期（还剩 8 天）"),
        ({"points": 5, "expires_on": "2026-11-23"}, "有 5 积分将于 明天 11月23日（周一）过期"),
        ({"points": 12, "expires_on": "2026-11-22"}, "有 12 积分将于 今天 11月22日（周日）过期"),
        ({"points": 585, "expires_on": "2026-12-31"}, "有 585 积分将于 12月31日（周四）过期"),
        ({"points": 38084, "expires_on": "2027-12-31"}, "有 38,084 积分将于 2027年12月31日（周五）过期"),
    ],
)
def test_expiry_phrase_names_the_exact_day(entry: Dict[str, Any], expected: str) -> None:
    assert rules.expiry_phrase(entry, TODAY) == expected


@pytest.mark.parametrize(
    ("expiring", "dates", "this_month"),
    [
        (SUMMARY["expiring"], ["2026-11-30", "2026-12-31", "2027-12-31"], 800),
        ([{"points": 0, "expires_on": "2026-11-30"}, {"points": 9, "expires_on": "2026-11-21"}], [], 0),
        ([{"points": 300, "expires_on": "2026-11-22"}, {"points": 200, "expires_on": "2026-11-30"}], ["2026-11-22", "2026-11-30"], 500),
        ([], [], 0),
    ],
)
def test_upcoming_expiries_skip_past_and_empty_groups(expiring: List[Dict[str, Any]], dates: List[str], this_month: int) -> None:
    assert [entry["expires_on"] for entry in rules.upcoming_expiries(expiring, TODAY)] == dates
    assert rules.expiring_this_month(expiring, TODAY) == this_month


def test_balance_names_value_first_expiry_and_recent_lines() -> None:
    text = rules.describe_balance(SUMMARY, TODAY)
    assert text.splitlines() == [
        "您当前可用积分 39,469，可抵 ¥394.69（100 积分抵 1 元）。",
        "其中有 800 积分将于 11月30日（周一）过期（还剩 8 天），建议尽快兑换优惠券或在下单时抵扣。",
        "最近的积分变动：",
        "· 11月19日 +968 购物获得积分（订单 880000010002）",
        "· 11月1日 +800 会员日活动赠送积分（当月底到期）",
        "· 9月14日 -2,000 兑换优惠券：满199减20",
    ]


def test_balance_with_the_full_ledger() -> None:
    text = rules.describe_balance(SUMMARY, TODAY, ledger=SUMMARY["recent"])
    assert "积分明细（最近 4 笔）：" in text
    assert "· 9月4日 +1,287 购物获得积分（订单 880000010055）" in text


@pytest.mark.parametrize(
    ("summary", "present", "absent"),
    [
        ({"balance": 0, "expiring": [], "recent": []}, ["您当前可用积分 0，可抵 ¥0.00", "每实付 1 元即可累积 1 积分"], ["过期"]),
        ({"balance": 3000, "expiring": [{"points": 3000, "expires_on": "2027-12-31"}], "recent": []},
         ["其中有 3,000 积分将于 2027年12月31日（周五）过期。"], ["建议尽快"]),
    ],
)
def test_balance_edges(summary: Dict[str, Any], present: List[str], absent: List[str]) -> None:
    text = rules.describe_balance(summary, TODAY)
    assert all(fact in text for fact in present), text
    assert not any(fact in text for fact in absent), text


def test_expiry_lists_every_date_this_month_first_with_the_rule() -> None:
    lines = rules.describe_expiry(SUMMARY, TODAY).splitlines()
    assert lines[0] == "您当前可用积分 39,469，本月有 800 积分到期："
    assert lines[1:4] == [
        "· 有 800 积分将于 11月30日（周一）过期（还剩 8 天）",
        "· 有 585 积分将于 12月31日（周四）过期",
        "· 有 38,084 积分将于 2027年12月31日（周五）过期",
    ]
    assert lines[-1] == rules.POINTS_RULE
    assert "次年的 12 月 31 日过期" in rules.POINTS_RULE


@pytest.mark.parametrize(
    ("summary", "first_line"),
    [
        ({"balance": 0, "expiring": []}, "您当前可用积分 0，没有即将过期的积分。"),
        ({"balance": 900, "expiring": [{"points": 900, "expires_on": "2027-12-31"}]}, "您当前可用积分 900，本月没有积分到期。各笔积分的到期时间："),
    ],
)
def test_expiry_edges(summary: Dict[str, Any], first_line: str) -> None:
    assert rules.describe_expiry(summary, TODAY).splitlines()[0] == first_line


@pytest.mark.parametrize(
    ("customer", "current", "upper", "missing"),
    [
        ({"tier": "L1", "growth_value": 0}, "L1", "L2", 2000),
        ({"tier": "L1", "growth_value": 1999}, "L1", "L2", 1),
        ({"tier": "L2", "growth_value": 2500}, "L2", "L3", 7500),
        ({"tier": "L3", "growth_value": 10000}, "L3", "L4", 20000),
        ({"tier": "L4", "growth_value": 38084}, "L4", "L5", 61916),
        ({"tier": "L5", "growth_value": 120000}, "L5", None, 0),
        ({"tier": "?", "growth_value": 12000}, "L3", "L4", 18000),
        ({"tier": "L4", "growth_value": 38084, "next_tier": {"code": "L5", "growth_missing": 61000}}, "L4", "L5", 61000),
        ({"tier": "L2", "growth_value": 2500, "next_tier": {"code": "L4", "growth_missing": 1}}, "L2", "L3", 7500),
    ],
)
def test_tier_gap(customer: Dict[str, Any], current: str, upper: Any, missing: int) -> None:
    gap = rules.tier_gap(customer, TIERS)
    assert gap.current["code"] == current
    assert (gap.next_tier or {}).get("code") == upper
    assert gap.missing == missing


def test_tier_answer_says_exactly_what_is_missing_and_what_it_brings() -> None:
    text = rules.describe_tier({"tier": "L4", "growth_value": 38084}, TIERS)
    assert text.startswith("您目前是金牌会员（L4），近 12 个月成长值 38,084。")
    assert "再累计 61,916 成长值即可升级为钻石会员（L5，门槛 100,000）" in text
    assert "再实付约 61,916 元的已签收订单" in text
    assert "· 专属客服通道，优先接入人工" in text
    assert "升级钻石会员后还将享有：\n· 一对一专属客服，最高优先级接入" in text
    assert "· 全场包邮" in text.split("升级钻石会员后还将享有：")[0]
    assert "每实付 1 元计 1 点" in text and "100,000" in text


def test_top_tier_is_told_how_to_keep_it() -> None:
    text = rules.describe_tier({"tier": "L5", "growth_value": 120000}, TIERS)
    assert "这已是最高等级" in text and "100,000 以上" in text
    assert "升级" not in text.split("成长值按")[0]


@pytest.mark.parametrize(
    ("balance", "coupon_id", "allowed", "missing", "after"),
    [
        (39469, "CP0020", True, 0, 37469),
        (500, "CP0005", True, 0, 0),
        (499, "CP0005", False, 1, 499),
        (0, "CP0005", False, 500, 0),
        (9999, "CP0100", False, 1, 9999),
    ],
)
def test_redemption_eligibility(balance: int, coupon_id: str, allowed: bool, missing: int, after: int) -> None:
    assert rules.redemption_eligibility(balance, coupon(coupon_id)) == rules.Eligibility(allowed, missing, after)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("满199减20", ["CP0020"]),
        ("我要换满1000减100的", ["CP0100"]),
        ("cp0050", ["CP0050"]),
        ("/points_redeem{\"coupon_id\":\"CP0005\"}", ["CP0005"]),
        ("用2000积分换", ["CP0020"]),
        ("2,000 积分那张", ["CP0020"]),
        ("换张20块的券", ["CP0020"]),
        ("减10的", ["CP0010"]),
        ("无门槛5元券", ["CP0005"]),
        ("１０元或者２０元的都行", ["CP0010", "CP0020"]),
        ("换个优惠券", []),
        ("", []),
        ("30元的", []),
    ],
)
def test_match_coupon(text: str, expected: List[str]) -> None:
    assert [item["coupon_id"] for item in rules.match_coupon(text, COUPONS)] == expected


@pytest.mark.parametrize(
    ("balance", "affordable"),
    [(0, []), (500, ["CP0005"]), (2500, ["CP0005", "CP0010", "CP0020"]), (39469, ["CP0005", "CP0010", "CP0020", "CP0050", "CP0100"])],
)
def test_split_catalogue(balance: int, affordable: List[str]) -> None:
    catalogue = rules.split_catalogue(list(reversed(COUPONS)), balance)
    assert [item["coupon_id"] for item in catalogue.affordable] == affordable
    assert len(catalogue.affordable) + len(catalogue.out_of_reach) == len(COUPONS)


def test_catalogue_without_enough_points_says_how_many_are_missing() -> None:
    text = rules.describe_catalogue(COUPONS, 120)
    assert "您当前可用积分 120，暂时还不够兑换优惠券。" in text
    assert "最低档的「无门槛5元券」需要 500 积分，还差 380 积分" in text


def test_catalogue_lists_costs_and_the_nearest_coupon_out_of_reach() -> None:
    text = rules.describe_catalogue(COUPONS, 2500)
    assert "· 满199减20：2,000 积分，订单满 ¥199.00 可减 ¥20.00，兑换后 30 天内有效" in text
    assert "· 无门槛5元券：500 积分，无门槛减 ¥5.00，兑换后 30 天内有效" in text
    assert "「满500减50」需要 5,000 积分，您还差 2,500 积分。" in text


def test_coupon_button_carries_the_coupon_id() -> None:
    assert rules.coupon_button(coupon("CP0020")) == {"title": "满199减20（2,000积分）", "payload": '/points_redeem{"coupon_id":"CP0020"}'}


def test_confirmation_gives_exact_cost_balance_after_and_earliest_expiry() -> None:
    text = rules.confirm_redemption_text(coupon("CP0020"), 39469, SUMMARY, TODAY)
    assert "用 2,000 积分兑换「满199减20」优惠券（订单满 ¥199.00 可减 ¥20.00，兑换后 30 天内有效）" in text
    assert "兑换后您的积分从 39,469 变为 37,469。" in text
    assert "优先使用最早到期的积分（11月30日（周一）到期的 800 积分）" in text
    assert text.endswith("确认兑换吗？")


def test_redemption_result_gives_number_validity_and_balance() -> None:
    redemption = {
        "redemption_id": "PR1234567890",
        "coupon": coupon("CP0020"),
        "points_spent": 2000,
        "balance": 37469,
        "valid_until": "2026-12-22",
    }
    text = rules.redemption_done_text(redemption, TODAY)
    assert "「满199减20」已发放到您的账户，兑换单号 PR1234567890" in text
    assert "有效期至 12月22日（周二），订单满 ¥199.00 可用" in text
    assert "本次使用 2,000 积分，剩余 37,469 积分。" in text


def test_not_enough_points() -> None:
    assert rules.not_enough_points_text(coupon("CP0005"), 0) == (
        "抱歉，积分还不够：兑换「无门槛5元券」需要 500 积分，您当前可用 0 积分，还差 500 积分。"
    )
