"""Pure policy functions: tiers, coupons, points lots, dates."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from bot.shop_calendar import add_working_days
from crm.clock import iso_datetime, last_day_of_month, points_expiry, to_utc_naive
from crm.points import replay
from crm.policy import (
    SERVICE_POLICIES,
    PolicyError,
    load_coupons,
    load_service_policies,
    load_tiers,
    next_tier,
    parse_coupons,
    parse_service_policy,
    parse_tiers,
    tier_for_growth,
)

TIER = {
    "code": "L1",
    "name": "注册会员",
    "min_growth_value": 0,
    "free_shipping_threshold_fen": 9900,
    "after_sales_response_minutes": 100,
    "dedicated_agent": False,
    "benefits": ["满99包邮"],
}


def test_shipped_tier_table() -> None:
    tiers = load_tiers()
    assert [tier.code for tier in tiers] == ["L1", "L2", "L3", "L4", "L5"]
    assert [tier.min_growth_value for tier in tiers] == [0, 2000, 10000, 30000, 100000]
    assert tier_for_growth(tiers, 0).code == "L1"
    assert tier_for_growth(tiers, 1999).code == "L1"
    assert tier_for_growth(tiers, 2000).code == "L2"
    assert tier_for_growth(tiers, 99999).code == "L4"
    assert tier_for_growth(tiers, 10**7).code == "L5"
    assert next_tier(tiers, "L4").code == "L5"  # type: ignore[union-attr]
    assert next_tier(tiers, "L5") is None and next_tier(tiers, "L9") is None
    assert [tier.dedicated_agent for tier in tiers] == [False, False, False, True, True]


def test_parse_tiers_sorts_and_validates() -> None:
    upper = {**TIER, "code": "L2", "min_growth_value": 10}
    assert [tier.code for tier in parse_tiers({"tiers": [upper, TIER]})] == ["L1", "L2"]
    with pytest.raises(PolicyError):
        parse_tiers({"tiers": []})
    with pytest.raises(PolicyError):
        parse_tiers({"tiers": [{**TIER, "min_growth_value": 5}]})
    with pytest.raises(PolicyError):
        parse_tiers({"tiers": [TIER, {**TIER}]})
    with pytest.raises(PolicyError):
        parse_tiers({"tiers": [{**TIER, "min_growth_value": "0"}]})
    with pytest.raises(PolicyError):
        parse_tiers({"tiers": [{**TIER, "benefits": [1]}]})


def test_coupon_catalogue() -> None:
    coupons = load_coupons()
    assert any(coupon.title == "满199减20" and coupon.points_cost == 2000 for coupon in coupons)
    with pytest.raises(PolicyError):
        parse_coupons(
            {"coupons": [{"coupon_id": "X", "title": "t", "points_cost": 0, "value_fen": 1, "threshold_fen": 0, "valid_days": 1}]}
        )


def test_shipped_service_policies() -> None:
    policies = load_service_policies()
    assert set(policies) == set(SERVICE_POLICIES)
    assert policies["invoices"]["issue_hours_after_signing"] == 24
    assert policies["invoices"]["special_vat"]["mail_working_days"] == [3, 5]
    assert policies["price_protection"]["window_days"] == 7
    assert "秒杀价" in policies["price_protection"]["excluded"]
    assert policies["after_sales"]["warranty"]["quality_return_days"] == 15
    assert policies["after_sales"]["installation"]["assembly_fee_fen"] == 6000
    assert policies["coupon_rules"]["coupons_per_order"] == 1


def test_service_policy_quality_window_matches_the_return_policy() -> None:
    """The warranty answer's quality window is the return policy's (actions/policy/returns.yml)."""
    import yaml

    from bot.settings import PROJECT_ROOT

    returns = yaml.safe_load((PROJECT_ROOT / "actions" / "policy" / "returns.yml").read_text(encoding="utf-8"))
    assert load_service_policies()["after_sales"]["warranty"]["quality_return_days"] == returns["windows"]["quality_days"]


def test_free_assembly_tiers_exist() -> None:
    codes = {tier.code for tier in load_tiers()}
    assert set(load_service_policies()["after_sales"]["installation"]["free_assembly_tiers"]) <= codes


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d.pop("window_days"), "missing keys"),
        (lambda d: d.update(extra=1), "unknown keys"),
        (lambda d: d.update(window_days=-1), "non-negative"),
        (lambda d: d.update(window_days=True), "non-negative"),
        (lambda d: d.update(excluded=[]), "non-empty list"),
        (lambda d: d.update(apply_path=" "), "non-empty text"),
        (lambda d: d.update(other_shops="no"), "true or false"),
        (lambda d: d["refund_working_days"].update({"银行卡": [7, 3]}), "after latest"),
        (lambda d: d["refund_working_days"].update({"银行卡": [3]}), "earliest, latest"),
    ],
)
def test_service_policy_refuses_malformed_documents(change, message: str) -> None:
    document = copy.deepcopy(load_service_policies()["price_protection"])
    change(document)
    with pytest.raises(PolicyError, match=message):
        parse_service_policy("price_protection", document)


def test_unknown_service_policy() -> None:
    with pytest.raises(PolicyError):
        parse_service_policy("loyalty", {})


def test_points_replay_consumes_earliest_expiry_first() -> None:
    d = dt.date
    lots = replay([(500, d(2025, 12, 31)), (300, d(2026, 11, 30)), (1000, d(2026, 12, 31)), (-600, None)])
    assert lots.balance == 1200
    assert lots.expiring(d(2026, 11, 1)) == [(d(2026, 11, 30), 200), (d(2026, 12, 31), 1000)]
    assert lots.expired_before(d(2026, 12, 1)) == 200
    assert replay([(100, None), (-30, None)]).balance == 70


def test_dates() -> None:
    assert last_day_of_month(dt.date(2024, 2, 3)) == dt.date(2024, 2, 29)
    assert last_day_of_month(dt.date(2026, 12, 31)) == dt.date(2026, 12, 31)
    assert points_expiry(dt.date(2025, 1, 1)) == dt.date(2026, 12, 31)
    assert add_working_days(dt.date(2026, 11, 20), 1) == dt.date(2026, 11, 23)  # Friday → Monday
    assert add_working_days(dt.date(2026, 11, 20), 0) == dt.date(2026, 11, 20)
    shanghai = dt.timezone(dt.timedelta(hours=8))
    stored = to_utc_naive(dt.datetime(2026, 11, 22, 7, 30), shanghai)
    assert stored == dt.datetime(2026, 11, 21, 23, 30)
    assert iso_datetime(stored, shanghai) == "2026-11-22T07:30:00+08:00"
