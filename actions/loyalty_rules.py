"""Points and membership as plain functions: the wording of balances, expiries, tiers and coupons,
the gap to the next tier, and whether a coupon can be redeemed.

Everything here works on the JSON the CRM returns (see ``crm/openapi.py``) and today's date in the
shop's timezone; nothing talks to the CRM or to Rasa.

Reference rules (the CRM holds the data): 1 point per yuan paid, 100 points = ¥1, points expire on
31 December of the year after they were earned (promotional points may expire earlier), coupons
from the catalogue cost points, and tiers follow the growth value of the last 12 months.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Dict, List, Optional, Sequence

from actions import formatting
from bot.texts import policy_values, render

POINTS_PER_YUAN = int(policy_values()["points_per_yuan"])  # crm/policy/points.yml
LEDGER_LINES_IN_SUMMARY = 3
EXPIRY_SOON_DAYS = 31
MAX_COUPON_BUTTONS = 6

# The wording lives in data/responses/loyalty.yml (tier thresholds filled from crm/policy/tiers.yml).
POINTS_RULE = render("utter_points_rule")
GROWTH_RULE = render("utter_growth_rule")
TIER_THRESHOLDS_TEXT = render("utter_tier_thresholds")

Json = Dict[str, Any]


def points(value: int) -> str:
    """Points with thousands separators: 39469 → 39,469."""
    return f"{int(value):,}"


def points_value(value: int) -> str:
    """What a number of points is worth in money: 39469 → ¥394.69 (100 points = ¥1)."""
    return formatting.money(int(value) * 100 // POINTS_PER_YUAN)


def _expiry_date(entry: Json) -> date:
    return formatting.parse_date(str(entry["expires_on"]))


def upcoming_expiries(expiring: Sequence[Json], today: date) -> List[Json]:
    """The expiring groups from today on, earliest first, without empty groups."""
    groups = [entry for entry in expiring if int(entry.get("points", 0)) > 0 and _expiry_date(entry) >= today]
    return sorted(groups, key=_expiry_date)


def expiry_phrase(entry: Json, today: date) -> str:
    """有 800 积分将于 11月30日（周一）过期（还剩 8 天）."""
    when = _expiry_date(entry)
    days = (when - today).days
    text = render("utter_points_expiry_phrase", points=points(entry["points"]), day=formatting.day(when, today))
    if 1 < days <= EXPIRY_SOON_DAYS:
        text += render("utter_points_days_left", days=days)
    return text


def expiring_this_month(expiring: Sequence[Json], today: date) -> int:
    """Points that expire before the end of the current month."""
    return sum(
        int(entry["points"])
        for entry in upcoming_expiries(expiring, today)
        if (_expiry_date(entry).year, _expiry_date(entry).month) == (today.year, today.month)
    )


def ledger_line(entry: Json) -> str:
    """· 11月19日 +968 购物获得积分（订单 880000010002）."""
    when = formatting.parse_datetime(str(entry["created_at"]))
    delta = int(entry.get("delta", 0))
    sign = "+" if delta > 0 else "-"
    return f"· {when.month}月{when.day}日 {sign}{points(abs(delta))} {entry.get('reason', '')}".rstrip()


def describe_balance(summary: Json, today: date, ledger: Optional[Sequence[Json]] = None) -> str:
    """The points balance with its value, the next expiry and the recent ledger lines.

    Args:
        summary: ``GET /api/customers/{id}/points``.
        today: today's date in the shop's timezone.
        ledger: ledger lines to list instead of the summary's three most recent ones.
    """
    balance = int(summary.get("balance", 0))
    lines = [render("utter_points_balance", balance=points(balance), value=points_value(balance))]
    upcoming = upcoming_expiries(summary.get("expiring") or [], today)
    if balance > 0 and upcoming:
        first = upcoming[0]
        soon = (_expiry_date(first) - today).days <= EXPIRY_SOON_DAYS
        advice = render("utter_points_expiry_advice") if soon else ""
        lines.append(render("utter_points_of_which", expiry=expiry_phrase(first, today), advice=advice))
    entries = list(ledger) if ledger is not None else list(summary.get("recent") or [])[:LEDGER_LINES_IN_SUMMARY]
    if entries:
        lines.append(render("utter_points_ledger_title", count=len(entries)) if ledger is not None
                     else render("utter_points_recent_title"))
        lines.extend(ledger_line(entry) for entry in entries)
    elif balance == 0:
        lines.append(render("utter_points_how_to_earn"))
    return "\n".join(lines)


def describe_expiry(summary: Json, today: date) -> str:
    """Every upcoming expiry with its concrete date, this month's first, and the rule behind it."""
    balance = int(summary.get("balance", 0))
    upcoming = upcoming_expiries(summary.get("expiring") or [], today)
    lines: List[str] = []
    if balance <= 0 or not upcoming:
        lines.append(render("utter_points_none_expiring", balance=points(balance)))
    else:
        this_month = expiring_this_month(upcoming, today)
        if this_month:
            lines.append(render("utter_points_expiring_this_month", balance=points(balance), points=points(this_month)))
        else:
            lines.append(render("utter_points_none_this_month", balance=points(balance)))
        lines.extend(f"· {expiry_phrase(entry, today)}" for entry in upcoming)
        if this_month:
            lines.append(render("utter_points_use_before_expiry"))
    lines.append(POINTS_RULE)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- tiers
@dataclass(frozen=True)
class TierGap:
    """Where a member stands in the tier table.

    Attributes:
        current: the member's tier (``GET /api/tiers`` item).
        next_tier: the next tier up, or None at the top.
        growth_value: the member's growth value.
        missing: growth value still missing for the next tier (0 at the top).
    """

    current: Json
    next_tier: Optional[Json]
    growth_value: int
    missing: int


def sorted_tiers(tiers: Sequence[Json]) -> List[Json]:
    """The tier table by ascending threshold."""
    return sorted(tiers, key=lambda tier: int(tier.get("min_growth_value", 0)))


def tier_gap(customer: Json, tiers: Sequence[Json]) -> TierGap:
    """The member's tier and what is missing for the next one.

    The tier code the CRM stores is authoritative; the next tier is the first one above it, and
    the CRM's own ``next_tier.growth_missing`` wins over the arithmetic when it names that tier.

    Args:
        customer: ``GET /api/customers/{id}``.
        tiers: ``GET /api/tiers`` items.
    """
    table = sorted_tiers(tiers)
    growth = int(customer.get("growth_value", 0))
    code = customer.get("tier")
    index = next((i for i, tier in enumerate(table) if tier.get("code") == code), None)
    if index is None:
        eligible = [i for i, tier in enumerate(table) if growth >= int(tier.get("min_growth_value", 0))]
        index = eligible[-1] if eligible else 0
    current = table[index]
    upper = table[index + 1] if index + 1 < len(table) else None
    missing = max(0, int(upper["min_growth_value"]) - growth) if upper else 0
    reported = customer.get("next_tier")
    if upper is not None and isinstance(reported, dict) and reported.get("code") == upper.get("code"):
        missing = int(reported.get("growth_missing", missing))
    return TierGap(current=current, next_tier=upper, growth_value=growth, missing=missing)


def tier_label(tier: Json) -> str:
    """金牌会员（L4）."""
    return f"{tier.get('name', '')}（{tier.get('code', '')}）"


def new_benefits(current: Json, upper: Json) -> List[str]:
    """The benefits of ``upper`` that ``current`` does not have."""
    have = set(current.get("benefits") or [])
    return [benefit for benefit in upper.get("benefits") or [] if benefit not in have]


def describe_tier(customer: Json, tiers: Sequence[Json]) -> str:
    """Tier, growth value, exactly what is missing for the next tier, and the benefits."""
    gap = tier_gap(customer, tiers)
    lines = [render("utter_tier_current", tier=tier_label(gap.current), growth=points(gap.growth_value))]
    if gap.next_tier is not None:
        upper = gap.next_tier
        lines.append(render("utter_tier_gap", missing=points(gap.missing), name=upper.get("name", ""),
                            code=upper.get("code", ""), threshold=points(upper["min_growth_value"])))
    else:
        lines.append(render("utter_tier_top", threshold=points(gap.current.get("min_growth_value", 0)),
                            name=gap.current.get("name", "")))
    benefits = gap.current.get("benefits") or []
    if benefits:
        lines.append(render("utter_tier_benefits", name=gap.current.get("name", "")))
        lines.extend(f"· {benefit}" for benefit in benefits)
    if gap.next_tier is not None:
        extra = new_benefits(gap.current, gap.next_tier)
        if extra:
            lines.append(render("utter_tier_next_benefits", name=gap.next_tier.get("name", "")))
            lines.extend(f"· {benefit}" for benefit in extra)
    lines.append(render("utter_tier_rules", growth_rule=GROWTH_RULE, thresholds=TIER_THRESHOLDS_TEXT))
    return "\n".join(lines)


# -------------------------------------------------------------------------------- coupons
@dataclass(frozen=True)
class Eligibility:
    """Whether a coupon can be redeemed with a balance.

    Attributes:
        allowed: True when the balance covers the cost.
        missing: points still missing (0 when allowed).
        balance_after: the balance after redeeming (when allowed).
    """

    allowed: bool
    missing: int
    balance_after: int


def redemption_eligibility(balance: int, coupon: Json) -> Eligibility:
    """Whether ``balance`` points are enough for ``coupon``."""
    cost = int(coupon.get("points_cost", 0))
    if balance >= cost:
        return Eligibility(True, 0, balance - cost)
    return Eligibility(False, cost - balance, balance)


def coupon_terms(coupon: Json) -> str:
    """订单满 ¥199.00 可减 ¥20.00，兑换后 30 天内有效."""
    value = formatting.money(int(coupon.get("value_fen", 0)))
    threshold = int(coupon.get("threshold_fen", 0))
    condition = (render("utter_coupon_condition", threshold=formatting.money(threshold), value=value) if threshold
                 else render("utter_coupon_no_threshold", value=value))
    return render("utter_coupon_terms", condition=condition, days=coupon.get("valid_days", 30))


def coupon_button(coupon: Json) -> Dict[str, str]:
    """A button that chooses one coupon to redeem."""
    payload = "/points_redeem" + json.dumps({"coupon_id": coupon["coupon_id"]}, separators=(",", ":"))
    return {"title": render("utter_coupon_button", title=coupon["title"], points=points(coupon["points_cost"])), "payload": payload}


@dataclass(frozen=True)
class Catalogue:
    """The coupon catalogue as seen with a given balance.

    Attributes:
        affordable: coupons the balance covers, cheapest first.
        out_of_reach: the others, cheapest first.
    """

    affordable: List[Json] = field(default_factory=list)
    out_of_reach: List[Json] = field(default_factory=list)


def split_catalogue(coupons: Sequence[Json], balance: int) -> Catalogue:
    """Which coupons the balance covers."""
    ordered = sorted(coupons, key=lambda coupon: (int(coupon.get("points_cost", 0)), str(coupon.get("coupon_id"))))
    return Catalogue(
        affordable=[coupon for coupon in ordered if redemption_eligibility(balance, coupon).allowed],
        out_of_reach=[coupon for coupon in ordered if not redemption_eligibility(balance, coupon).allowed],
    )


def describe_catalogue(coupons: Sequence[Json], balance: int) -> str:
    """The catalogue with the cost of each coupon, and how far the balance is from the rest."""
    catalogue = split_catalogue(coupons, balance)
    if not catalogue.affordable:
        lines = [render("utter_coupons_out_of_reach", balance=points(balance))]
        if catalogue.out_of_reach:
            cheapest = catalogue.out_of_reach[0]
            missing = redemption_eligibility(balance, cheapest).missing
            lines.append(render("utter_coupons_cheapest_missing", title=cheapest["title"],
                                cost=points(cheapest["points_cost"]), missing=points(missing)))
        return "\n".join(lines)
    lines = [render("utter_coupons_affordable", balance=points(balance))]
    lines.extend(render("utter_coupons_line", title=coupon["title"], cost=points(coupon["points_cost"]), terms=coupon_terms(coupon))
                 for coupon in catalogue.affordable)
    if catalogue.out_of_reach:
        nearest = catalogue.out_of_reach[0]
        missing = redemption_eligibility(balance, nearest).missing
        lines.append(render("utter_coupons_nearest_missing", title=nearest["title"], cost=points(nearest["points_cost"]),
                            missing=points(missing)))
    lines.append(render("utter_coupons_pick"))
    return "\n".join(lines)


_NUMBER = re.compile(r"\d+")
_POINTS_NUMBER = re.compile(r"(\d+)\s*(?:积分|分|京豆|个积分)")
_MONEY_NUMBER = re.compile(r"(?:[减¥￥]\s*(\d+)|(\d+)\s*(?:元|块))")


def match_coupon(text: str, coupons: Sequence[Json]) -> List[Json]:
    """The catalogue coupons a shopper's words point to.

    Matches, in order of strength: the coupon id, the exact title (「满199减20」), the points cost
    (「2000积分的」), the value (「20元的券」「减20」). Returns every coupon matched by the strongest
    kind of match that matched anything, so the caller can tell a clear choice from an ambiguous one.

    Args:
        text: what the shopper typed.
        coupons: the catalogue.
    """
    folded = unicodedata.normalize("NFKC", text or "").replace(",", "").replace(" ", "").upper()
    if not folded:
        return []
    by_id = [coupon for coupon in coupons if str(coupon["coupon_id"]).upper() in folded]
    if by_id:
        return by_id
    by_title = [coupon for coupon in coupons if unicodedata.normalize("NFKC", str(coupon["title"])) in folded]
    if by_title:
        return [max(by_title, key=lambda coupon: len(str(coupon["title"])))]
    costs = {int(match.group(1)) for match in _POINTS_NUMBER.finditer(folded)}
    by_cost = [coupon for coupon in coupons if int(coupon["points_cost"]) in costs]
    if by_cost:
        return by_cost
    values = {int(match.group(1) or match.group(2)) for match in _MONEY_NUMBER.finditer(folded)}
    by_value = [coupon for coupon in coupons if int(coupon["value_fen"]) // 100 in values]
    return by_value


def confirm_redemption_text(coupon: Json, balance: int, summary: Optional[Json] = None, today: Optional[date] = None) -> str:
    """The confirmation question: exact cost, what the coupon does, and the balance afterwards."""
    eligibility = redemption_eligibility(balance, coupon)
    lines = [
        render("utter_redeem_confirm", cost=points(coupon["points_cost"]), title=coupon["title"], terms=coupon_terms(coupon)),
        render("utter_redeem_balance_after", balance=points(balance), after=points(eligibility.balance_after)),
    ]
    if summary is not None and today is not None:
        upcoming = upcoming_expiries(summary.get("expiring") or [], today)
        if upcoming and (_expiry_date(upcoming[0]) - today).days <= EXPIRY_SOON_DAYS:
            first = upcoming[0]
            lines.append(render("utter_redeem_earliest_first", day=formatting.day(_expiry_date(first), today), points=points(first["points"])))
    lines.append(render("utter_redeem_ask"))
    return "\n".join(lines)


def redemption_done_text(redemption: Json, today: date) -> str:
    """What the shopper got: coupon, redemption number, validity, points spent and left."""
    coupon = redemption.get("coupon") or {}
    valid_until = formatting.parse_date(str(redemption["valid_until"])) if redemption.get("valid_until") else None
    title = coupon["title"] if "title" in coupon else render("utter_redeem_coupon_default_title")
    lines = [render("utter_redeem_done", title=title, redemption_id=redemption.get("redemption_id", ""))]
    terms = (render("utter_redeem_threshold", threshold=formatting.money(int(coupon.get("threshold_fen", 0))))
             if coupon.get("threshold_fen") else render("utter_redeem_no_threshold"))
    if valid_until is not None:
        lines.append(render("utter_redeem_valid_until", day=formatting.day(valid_until, today), terms=terms))
    lines.append(render("utter_redeem_points_spent", spent=points(redemption.get("points_spent", 0)), balance=points(redemption.get("balance", 0))))
    return "\n".join(lines)


def not_enough_points_text(coupon: Json, balance: int) -> str:
    """Why a coupon cannot be redeemed, with the exact number of points missing."""
    missing = redemption_eligibility(balance, coupon).missing
    return render("utter_not_enough_points", title=coupon["title"], cost=points(coupon["points_cost"]),
                  balance=points(balance), missing=points(missing))
