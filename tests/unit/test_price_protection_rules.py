"""The price-protection rule (bot/price_protection.py), table-driven over orders as the CRM serves them."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Sequence

import pytest

from bot.price_protection import assess, refund_timing
from bot.shop_calendar import ShopCalendar
from crm.policy import load_service_policy

POLICY = load_service_policy("price_protection")
SHOP = dt.timezone(dt.timedelta(hours=8))
PAID = dt.datetime(2026, 11, 20, 10, 15, tzinfo=SHOP)


def item(line_id: int, paid_fen: int, current_fen: Optional[int], quantity: int = 1, kind: Optional[str] = None,
         returned: int = 0) -> Dict[str, Any]:
    return {"line_id": line_id, "sku": f"SKU{line_id}", "product_name": f"商品{line_id}", "quantity": quantity,
            "paid_fen": paid_fen, "returned_quantity": returned, "current_price_fen": current_fen, "current_price_kind": kind}


def order(*items: Dict[str, Any], status: str = "delivered", paid_at: Optional[dt.datetime] = PAID) -> Dict[str, Any]:
    return {"order_id": "880000010001", "status": status, "payment_method": "wallet",
            "paid_at": paid_at.isoformat() if paid_at is not None else None, "items": list(items)}


CASES = [
    # (case, order, now after payment, claimed lines, asked lines, reason, refund, each line's reason)
    ("dropped", order(item(1, 149900, 129900)), dt.timedelta(days=5), (), None, None, 20000, [None]),
    ("per unit, coupon share included", order(item(1, 17800, 8000, quantity=2)), dt.timedelta(days=1), (), None, None, 1800, [None]),
    ("two units, one returned", order(item(1, 20000, 9000, quantity=2, returned=1)), dt.timedelta(days=1), (), None, None, 1000, [None]),
    ("the last moment of the window", order(item(1, 10000, 9000)), dt.timedelta(days=7), (), None, None, 1000, [None]),
    ("window passed", order(item(1, 10000, 9000)), dt.timedelta(days=7, seconds=1), (), None, "window_passed", 0, [None]),
    ("unpaid", order(item(1, 10000, 9000), status="pending_payment", paid_at=None), dt.timedelta(0), (), None, "not_paid", 0, [None]),
    ("cancelled after payment", order(item(1, 10000, 9000), status="cancelled"), dt.timedelta(days=1), (), None, "not_paid", 0, [None]),
    ("same price", order(item(1, 10000, 10000)), dt.timedelta(days=1), (), None, "no_price_drop", 0, ["no_price_drop"]),
    ("price rose", order(item(1, 10000, 11000)), dt.timedelta(days=1), (), None, "no_price_drop", 0, ["no_price_drop"]),
    ("no current price: the price paid", order(item(1, 10000, None)), dt.timedelta(days=1), (), None, "no_price_drop", 0, ["no_price_drop"]),
    ("flash sale", order(item(1, 88080, 79900, kind="秒杀价")), dt.timedelta(days=1), (), None, "excluded_price_kind", 0,
     ["excluded_price_kind"]),
    ("group buy beside a drop", order(item(1, 10000, 9000, kind="拼团价"), item(2, 5000, 4000)), dt.timedelta(days=1), (), None,
     None, 1000, ["excluded_price_kind", None]),
    ("a named kind the policy protects", order(item(1, 10000, 9000, kind="会员价")), dt.timedelta(days=1), (), None, None, 1000, [None]),
    ("all returned", order(item(1, 10000, 9000, returned=1)), dt.timedelta(days=1), (), None, "returned", 0, ["returned"]),
    ("claimed before", order(item(1, 10000, 9000), item(2, 5000, 5000)), dt.timedelta(days=1), (1,), None, "already_claimed", 0,
     ["already_claimed", "no_price_drop"]),
    ("claimed line beside a new drop", order(item(1, 10000, 9000), item(2, 5000, 4500)), dt.timedelta(days=1), (1,), None, None,
     500, ["already_claimed", None]),
    ("only the lines asked", order(item(1, 10000, 9000), item(2, 5000, 4500)), dt.timedelta(days=1), (), [2], None, 500, [None]),
    ("excluded before no drop", order(item(1, 10000, 9000, kind="秒杀价"), item(2, 5000, 5000)), dt.timedelta(days=1), (), None,
     "excluded_price_kind", 0, ["excluded_price_kind", "no_price_drop"]),
]


@pytest.mark.parametrize(("order_json", "after", "claimed", "asked", "reason", "refund", "line_reasons"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_rule(order_json: Dict[str, Any], after: dt.timedelta, claimed: Sequence[int], asked: Optional[List[int]],
              reason: Optional[str], refund: int, line_reasons: List[Optional[str]]) -> None:
    result = assess(order_json, POLICY, PAID + after, claimed, asked)
    assert result.reason == reason
    assert result.refund_fen == refund
    assert [line.reason for line in result.lines] == line_reasons
    assert bool(result.protected) == (reason is None)
    if reason != "not_paid":
        assert result.window_ends_at == PAID + dt.timedelta(days=POLICY["window_days"])


def test_the_window_follows_the_policy() -> None:
    longer = {**POLICY, "window_days": 15}
    assert assess(order(item(1, 10000, 9000)), longer, PAID + dt.timedelta(days=10)).reason is None
    assert assess(order(item(1, 10000, 9000)), POLICY, PAID + dt.timedelta(days=10)).reason == "window_passed"


CALENDAR = ShopCalendar(holidays=frozenset({dt.date(2026, 12, 8)}))


@pytest.mark.parametrize(
    ("method", "timing", "earliest", "latest"),
    [
        ("balance", "账户余额和积分", dt.date(2026, 12, 4), dt.date(2026, 12, 4)),
        ("points", "账户余额和积分", dt.date(2026, 12, 4), dt.date(2026, 12, 4)),
        ("wallet", "微信、支付宝等在线钱包", dt.date(2026, 12, 7), dt.date(2026, 12, 10)),
        ("bank_card", "银行卡", dt.date(2026, 12, 10), dt.date(2026, 12, 16)),
        ("unknown", "银行卡", dt.date(2026, 12, 10), dt.date(2026, 12, 16)),
    ],
)
def test_refund_timing_counts_working_days_of_the_shop(method: str, timing: str, earliest: dt.date, latest: dt.date) -> None:
    # Friday 4 December 2026; the 8th is a holiday of this calendar.
    result = refund_timing(POLICY, method, dt.date(2026, 12, 4), CALENDAR)
    assert (result.timing, result.earliest, result.latest) == (timing, earliest, latest)
    assert result.immediate == (timing == "账户余额和积分")
