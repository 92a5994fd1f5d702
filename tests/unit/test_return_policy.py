"""The return policy, rule by rule and edge by edge (``actions/return_policy.py`` over
``actions/policy/returns.yml``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any, Dict, List, Optional

import pytest

from actions import return_policy as rp
from bot.shop_calendar import ShopCalendar

POLICY = rp.default_policy()
SIGNED = date(2026, 11, 19)  # a Thursday
CATEGORIES = ("shoes", "apparel", "electronics", "home", "books", "fresh_food", "customized", "digital_goods",
              "gift_card", "personal_care", "underwear")
NEVER = ("fresh_food", "customized", "digital_goods", "gift_card")
SEALED_ONLY = ("personal_care", "underwear")
QUALITY_REASONS = ("quality_issue", "damaged_on_arrival", "not_as_described")
NO_REASONS = ("wrong_size", "no_longer_wanted", "other")


def item(line_id: int = 1, category: str = "shoes", quantity: int = 1, unit: int = 89900, paid: Optional[int] = None,
         returned: int = 0, no_reason_returnable: Optional[bool] = None, name: str = "商品") -> Dict[str, Any]:
    line: Dict[str, Any] = {
        "line_id": line_id, "product_name": name, "category": category, "quantity": quantity,
        "unit_price_fen": unit, "returned_quantity": returned,
        "no_reason_returnable": category not in NEVER + SEALED_ONLY if no_reason_returnable is None else no_reason_returnable,
    }
    if paid is not None:
        line["paid_fen"] = paid
    return line


def order(items: List[Dict[str, Any]], *, status: str = "delivered", signed: Optional[date] = SIGNED, coupon: int = 0,
          shipping: int = 0, insurance: bool = False, method: str = "wallet") -> Dict[str, Any]:
    subtotal = sum(line["unit_price_fen"] * line["quantity"] for line in items)
    return {
        "order_id": "880000000001", "status": status, "items": items, "coupon_discount_fen": coupon,
        "shipping_fee_fen": shipping, "subtotal_fen": subtotal, "paid_fen": subtotal - coupon + shipping,
        "has_shipping_insurance": insurance, "payment_method": method,
        "signed_at": f"{signed.isoformat()}T14:32:00+08:00" if signed else None,
    }


def decide(days_after: int, reason: str, category: str = "shoes", opened: Optional[bool] = None, **item_args: Any) -> rp.Decision:
    line = item(category=category, **item_args)
    return rp.decide(order([line]), line, reason, SIGNED + timedelta(days=days_after), POLICY, opened)


# ------------------------------------------------------------------------------ policy file
def test_the_policy_file_holds_the_reference_policy() -> None:
    assert (POLICY.no_reason_days, POLICY.quality_days) == (7, 15)
    assert set(POLICY.shop_at_fault_reasons) == set(QUALITY_REASONS)
    assert set(POLICY.reason_codes) == set(QUALITY_REASONS + NO_REASONS)
    assert set(POLICY.never_without_quality) == set(NEVER)
    assert set(POLICY.sealed_only) == set(SEALED_ONLY)
    assert POLICY.refund_working_days == {"balance": (0, 0), "points": (0, 0), "wallet": (1, 3), "bank_card": (3, 7)}


def test_a_reason_without_a_class_is_an_error_in_the_policy_file() -> None:
    import yaml

    raw = yaml.safe_load(rp.POLICY_FILE.read_text(encoding="utf-8"))
    raw["reasons"]["labels"]["lost_in_transit"] = "丢件"
    with pytest.raises(ValueError, match="lost_in_transit"):
        rp.policy_from_dict(raw)


# ------------------------------------------------------------------------------- windows
@pytest.mark.parametrize(
    ("days_after", "reason", "eligible", "rule"),
    [
        (0, "wrong_size", True, rp.RULE_NO_REASON),
        (3, "no_longer_wanted", True, rp.RULE_NO_REASON),
        (7, "wrong_size", True, rp.RULE_NO_REASON),  # day 7 after sign-for: still in
        (8, "wrong_size", False, rp.RULE_NO_REASON_EXPIRED),  # day 8: out
        (8, "other", False, rp.RULE_NO_REASON_EXPIRED),
        (8, "quality_issue", True, rp.RULE_QUALITY),
        (15, "quality_issue", True, rp.RULE_QUALITY),  # day 15: still in
        (15, "damaged_on_arrival", True, rp.RULE_QUALITY),
        (16, "quality_issue", False, rp.RULE_QUALITY_EXPIRED),  # day 16: out
        (16, "not_as_described", False, rp.RULE_QUALITY_EXPIRED),
        (40, "no_longer_wanted", False, rp.RULE_NO_REASON_EXPIRED),
    ],
)
def test_windows_count_from_the_sign_for_date(days_after: int, reason: str, eligible: bool, rule: str) -> None:
    decision = decide(days_after, reason)
    assert (decision.eligible, decision.rule) == (eligible, rule)
    assert decision.day_number == days_after
    assert decision.signed_on == SIGNED


def test_deadlines_are_the_last_day_allowed() -> None:
    assert decide(2, "wrong_size").deadline == date(2026, 11, 26)
    assert decide(2, "quality_issue").deadline == date(2026, 12, 4)
    assert decide(2, "wrong_size").quality_deadline == date(2026, 12, 4)


def test_the_sign_for_date_is_read_in_the_shops_timezone() -> None:
    line = item()
    late_evening_utc = dict(order([line]), signed_at="2026-11-19T17:30:00+00:00")  # 01:30 on the 20th in Shanghai
    assert rp.signed_date(late_evening_utc) == date(2026, 11, 20)
    assert rp.decide(late_evening_utc, line, "wrong_size", date(2026, 11, 27), POLICY).eligible


@pytest.mark.parametrize("status", ["pending_payment", "awaiting_shipment", "shipped", "in_transit", "out_for_delivery", "cancelled"])
def test_an_order_not_signed_for_cannot_be_returned(status: str) -> None:
    line = item()
    decision = rp.decide(order([line], status=status, signed=None), line, "quality_issue", SIGNED, POLICY)
    assert (decision.eligible, decision.rule) == (False, rp.RULE_NOT_SIGNED)


def test_completed_orders_are_returnable_like_delivered_ones() -> None:
    line = item()
    assert rp.decide(order([line], status="completed"), line, "wrong_size", SIGNED + timedelta(days=2), POLICY).eligible


# ---------------------------------------------------------------------------- categories
@pytest.mark.parametrize("category", NEVER)
@pytest.mark.parametrize("reason", NO_REASONS)
def test_excluded_categories_are_refused_without_a_quality_problem(category: str, reason: str) -> None:
    decision = decide(1, reason, category)
    assert (decision.eligible, decision.rule) == (False, rp.RULE_EXCLUDED_CATEGORY)
    assert decision.category_label == POLICY.never_without_quality[category]
    assert decision.alternatives == (rp.ALT_QUALITY_REASON, rp.ALT_HUMAN)


@pytest.mark.parametrize("category", NEVER + SEALED_ONLY)
@pytest.mark.parametrize("reason", QUALITY_REASONS)
def test_every_category_is_returnable_for_a_quality_problem(category: str, reason: str) -> None:
    decision = decide(10, reason, category, opened=True)
    assert (decision.eligible, decision.rule) == (True, rp.RULE_QUALITY)


@pytest.mark.parametrize("category", SEALED_ONLY)
@pytest.mark.parametrize(
    ("opened", "eligible", "rule"),
    [(False, True, rp.RULE_NO_REASON), (True, False, rp.RULE_OPENED), (None, False, rp.RULE_PACKAGE_UNKNOWN)],
)
def test_personal_care_and_underwear_only_while_sealed(category: str, opened: Optional[bool], eligible: bool, rule: str) -> None:
    decision = decide(2, "no_longer_wanted", category, opened=opened)
    assert (decision.eligible, decision.rule) == (eligible, rule)


@pytest.mark.parametrize("category", SEALED_ONLY)
def test_a_sealed_item_still_needs_the_7_day_window(category: str) -> None:
    assert decide(8, "wrong_size", category, opened=False).rule == rp.RULE_NO_REASON_EXPIRED


@pytest.mark.parametrize(
    ("category", "reason", "needed"),
    [("personal_care", "wrong_size", True), ("underwear", None, True), ("underwear", "quality_issue", False),
     ("shoes", "wrong_size", False), ("fresh_food", "no_longer_wanted", False)],
)
def test_the_sealed_question_only_for_no_reason_returns_of_sealed_only_categories(category: str, reason: Optional[str], needed: bool) -> None:
    assert rp.needs_package_check(item(category=category), reason, POLICY) is needed


@pytest.mark.parametrize("category", ["shoes", "apparel", "electronics", "home", "books"])
def test_ordinary_categories_follow_the_7_day_rule(category: str) -> None:
    assert decide(7, "no_longer_wanted", category).eligible
    assert not decide(8, "no_longer_wanted", category).eligible


def test_a_product_the_crm_marks_not_returnable_is_refused_without_a_quality_problem() -> None:
    decision = decide(1, "wrong_size", "home", no_reason_returnable=False)
    assert (decision.eligible, decision.rule) == (False, rp.RULE_EXCLUDED_CATEGORY)
    assert decide(1, "quality_issue", "home", no_reason_returnable=False).eligible


# ---------------------------------------------------------------------------- quantities
@pytest.mark.parametrize(("quantity", "returned", "eligible"), [(1, 0, True), (1, 1, False), (3, 2, True), (3, 3, False)])
def test_already_returned_units_cannot_be_returned_again(quantity: int, returned: int, eligible: bool) -> None:
    decision = decide(1, "quality_issue", quantity=quantity, returned=returned)
    assert decision.eligible is eligible
    if not eligible:
        assert decision.rule == rp.RULE_NOTHING_LEFT


# -------------------------------------------------------------------------- alternatives
@pytest.mark.parametrize(
    ("days_after", "reason", "category", "alternatives"),
    [
        (9, "wrong_size", "shoes", (rp.ALT_QUALITY_REASON, rp.ALT_HUMAN)),
        (16, "wrong_size", "shoes", (rp.ALT_REPAIR, rp.ALT_HUMAN)),
        (16, "quality_issue", "shoes", (rp.ALT_REPAIR, rp.ALT_HUMAN)),
        (2, "no_longer_wanted", "fresh_food", (rp.ALT_QUALITY_REASON, rp.ALT_HUMAN)),
        (20, "no_longer_wanted", "gift_card", (rp.ALT_REPAIR, rp.ALT_HUMAN)),
    ],
)
def test_a_refusal_comes_with_alternatives(days_after: int, reason: str, category: str, alternatives: tuple) -> None:
    assert decide(days_after, reason, category).alternatives == alternatives


def test_explanations_name_the_rule_and_its_dates() -> None:
    today = SIGNED + timedelta(days=3)
    assert rp.explain(decide(3, "wrong_size"), POLICY, today) == (
        "「商品」符合「7天无理由退货」：您11月19日（周四）签收，11月26日（周四）前都可以申请，今天是签收后第 3 天。"
    )
    expired = rp.explain(decide(8, "wrong_size"), POLICY, SIGNED + timedelta(days=8))
    assert "7天无理由退货" in expired and "11月26日" in expired and "第 8 天" in expired
    fresh = rp.explain(decide(1, "no_longer_wanted", "fresh_food"), POLICY)
    assert "生鲜商品" in fresh and "不支持七天无理由" in fresh
    quality = rp.explain(decide(15, "quality_issue"), POLICY, SIGNED + timedelta(days=15))
    assert "质量问题 15 天包退换" in quality and "今天 12月4日" in quality and "运费由商家承担" in quality
    assert "12月4日" in rp.explain_alternatives(decide(9, "wrong_size"), POLICY)
    assert "维修" in rp.explain_alternatives(decide(16, "quality_issue"), POLICY)


# ------------------------------------------------------------------------------ shipping
@pytest.mark.parametrize(
    ("reason", "insurance", "payer", "crm_payer"),
    [
        ("wrong_size", False, rp.PAYER_SHOPPER, "shopper"),
        ("no_longer_wanted", True, rp.PAYER_INSURANCE, "shop"),
        ("quality_issue", False, rp.PAYER_SHOP, "shop"),
        ("damaged_on_arrival", True, rp.PAYER_SHOP, "shop"),
        ("not_as_described", False, rp.PAYER_SHOP, "shop"),
    ],
)
def test_who_pays_the_return_shipping(reason: str, insurance: bool, payer: str, crm_payer: str) -> None:
    assert rp.shipping_payer(order([item()], insurance=insurance), reason, POLICY) == payer
    assert rp.crm_shipping_payer(payer) == crm_payer


# ---------------------------------------------------------------------------------- money
@pytest.mark.parametrize(
    ("totals", "coupon", "shares"),
    [
        ([89900, 8900], 2000, [1820, 180]),
        ([100, 100, 100], 100, [34, 33, 33]),  # ties: earlier lines first
        ([1, 1, 1], 2, [1, 1, 0]),
        ([5000], 700, [700]),
        ([3333, 3333, 3334], 1000, [333, 333, 334]),
        ([100, 200], 0, [0, 0]),
        ([100, 200], 500, [100, 200]),  # never more than the lines are worth
        ([], 100, []),
    ],
)
def test_the_coupon_is_shared_pro_rata_and_sums_exactly(totals: List[int], coupon: int, shares: List[int]) -> None:
    result = rp.share_coupon(totals, coupon)
    assert result == shares
    assert sum(result) == min(coupon, sum(totals))


@pytest.mark.parametrize("coupon", [1, 7, 999, 2000, 12345])
def test_shares_always_sum_to_the_coupon(coupon: int) -> None:
    totals = [89900, 8900, 12345, 1]
    assert sum(rp.share_coupon(totals, coupon)) == coupon


def test_line_paid_amounts_use_the_crms_figures_when_they_add_up() -> None:
    lines = [item(1, unit=89900, paid=88080), item(2, "apparel", unit=8900, paid=8720)]
    assert rp.line_paid_amounts(order(lines, coupon=2000)) == {1: 88080, 2: 8720}


def test_line_paid_amounts_share_the_coupon_when_the_crm_gives_none() -> None:
    lines = [item(1, unit=100), item(2, unit=100), item(3, unit=100)]
    assert rp.line_paid_amounts(order(lines, coupon=100)) == {1: 66, 2: 67, 3: 67}
    inconsistent = [item(1, unit=100, paid=1), item(2, unit=100, paid=1)]
    assert rp.line_paid_amounts(order(inconsistent, coupon=50)) == {1: 75, 2: 75}


@pytest.mark.parametrize(
    ("paid", "quantity", "steps"),
    [
        (1000, 3, [1, 1, 1]),
        (1000, 3, [2, 1]),
        (1000, 3, [1, 2]),
        (1001, 2, [1, 1]),
        (99999, 7, [3, 3, 1]),
        (5, 5, [1, 1, 1, 1, 1]),
    ],
)
def test_partial_returns_add_up_to_what_was_paid(paid: int, quantity: int, steps: List[int]) -> None:
    returned, refunds = 0, []
    for step in steps:
        refunds.append(rp.refund_for_quantity(paid, quantity, returned, step))
        returned += step
    assert sum(refunds) == paid
    assert all(refund >= 0 for refund in refunds)


def test_refund_for_quantity_rounds_down_until_the_last_unit() -> None:
    assert rp.refund_for_quantity(1000, 3, 0, 1) == 333
    assert rp.refund_for_quantity(1000, 3, 1, 1) == 333
    assert rp.refund_for_quantity(1000, 3, 2, 1) == 334
    with pytest.raises(ValueError):
        rp.refund_for_quantity(1000, 3, 2, 2)


def test_quote_for_the_demo_running_shoe() -> None:
    lines = [item(1, unit=89900, paid=88080, name="耐克 Air Zoom 跑鞋"), item(2, "apparel", unit=8900, paid=8720)]
    quote = rp.quote_refund(order(lines, coupon=2000), [(1, 1)], "wrong_size", date(2026, 11, 22), POLICY)
    assert (quote.items_fen, quote.coupon_fen, quote.shipping_fen, quote.total_fen) == (88080, 1820, 0, 88080)
    assert quote.payer == rp.PAYER_SHOPPER
    assert quote.pickup_date == date(2026, 11, 23)
    assert quote.refund_issued_by == date(2026, 11, 25)
    assert quote.refund_expected_by == date(2026, 11, 30)  # wallet: 3 working days after Wednesday


def test_shipping_is_refunded_when_the_shop_is_at_fault_and_only_once() -> None:
    lines = [item(1, unit=5000), item(2, unit=3000)]
    placed = order(lines, shipping=600)
    today = date(2026, 11, 22)
    assert rp.quote_refund(placed, [(1, 1)], "wrong_size", today, POLICY).total_fen == 5000
    first = rp.quote_refund(placed, [(1, 1)], "quality_issue", today, POLICY)
    assert (first.shipping_fen, first.total_fen) == (600, 5600)
    earlier = [{"status": "approved", "reason": "damaged_on_arrival", "refund_fen": 5600}]
    again = rp.quote_refund(dict(placed, items=[dict(lines[0], returned_quantity=1), lines[1]]), [(2, 1)], "quality_issue",
                            today, POLICY, earlier)
    assert (again.shipping_fen, again.total_fen) == (0, 3000)
    cancelled = [{"status": "cancelled", "reason": "damaged_on_arrival", "refund_fen": 5600}]
    assert rp.quote_refund(placed, [(2, 1)], "quality_issue", today, POLICY, cancelled).shipping_fen == 600


def test_a_partial_quantity_quote_and_the_rest_sum_to_the_line() -> None:
    lines = [item(1, unit=3333, quantity=3), item(2, unit=1000)]
    placed = order(lines, coupon=1000)
    paid = rp.line_paid_amounts(placed)[1]
    first = rp.quote_refund(placed, [(1, 2)], "no_longer_wanted", SIGNED, POLICY)
    rest = rp.quote_refund(dict(placed, items=[dict(lines[0], returned_quantity=2), lines[1]]), [(1, 1)], "no_longer_wanted",
                           SIGNED, POLICY, [{"status": "requested", "reason": "no_longer_wanted", "refund_fen": first.total_fen}])
    assert first.total_fen + rest.total_fen == paid


def test_a_quote_never_exceeds_what_the_order_has_left() -> None:
    placed = order([item(1, unit=5000)], shipping=600)
    earlier = [{"status": "refunded", "reason": "other", "refund_fen": 5400}]
    quote = rp.quote_refund(placed, [(1, 1)], "quality_issue", SIGNED, POLICY, earlier)
    assert (quote.total_fen, quote.capped) == (200, True)


def test_quoting_a_line_that_is_not_in_the_order_fails() -> None:
    with pytest.raises(ValueError):
        rp.quote_refund(order([item(1)]), [(9, 1)], "wrong_size", SIGNED, POLICY)


# ------------------------------------------------------------------------ refund timing
@pytest.mark.parametrize(
    ("today", "method", "issued", "expected"),
    [
        (date(2026, 11, 22), "balance", date(2026, 11, 25), date(2026, 11, 25)),  # Sunday → Wednesday, immediately
        (date(2026, 11, 22), "points", date(2026, 11, 25), date(2026, 11, 25)),
        (date(2026, 11, 22), "wallet", date(2026, 11, 25), date(2026, 11, 30)),  # + 3 working days over a weekend
        (date(2026, 11, 22), "bank_card", date(2026, 11, 25), date(2026, 12, 4)),  # + 7 working days
        (date(2026, 11, 24), "wallet", date(2026, 11, 27), date(2026, 12, 2)),  # Friday + 3 → Wednesday
        (date(2026, 11, 25), "bank_card", date(2026, 11, 28), date(2026, 12, 8)),  # issued on a Saturday
        (date(2026, 11, 22), "cash_on_delivery", date(2026, 11, 25), date(2026, 12, 4)),  # unknown: the default span
    ],
)
def test_refund_dates_by_payment_method_count_working_days(today: date, method: str, issued: date, expected: date) -> None:
    assert rp.refund_dates(today, method, POLICY) == (issued, expected)


def test_holidays_and_working_weekends_from_the_policy_file() -> None:
    policy = replace(POLICY, calendar=ShopCalendar(holidays=frozenset({date(2026, 11, 26)}), working_weekend_days=frozenset({date(2026, 11, 28)})))
    assert not rp.is_working_day(date(2026, 11, 26), policy)
    assert rp.is_working_day(date(2026, 11, 28), policy)
    # Wednesday 25th + 3 working days: 27th (Fri), 28th (worked Saturday), 30th (Mon); the 26th is a holiday.
    assert rp.add_working_days(date(2026, 11, 25), 3, policy) == date(2026, 11, 30)
    assert rp.add_working_days(date(2026, 11, 25), 0, policy) == date(2026, 11, 25)


@pytest.mark.parametrize(
    ("method", "speed"),
    [("balance", "退款后立即到账"), ("points", "退款后立即到账"), ("wallet", "退款后 1–3 个工作日到账"), ("bank_card", "退款后 3–7 个工作日到账")],
)
def test_refund_speed_wording(method: str, speed: str) -> None:
    assert rp.refund_speed(method, POLICY) == speed
