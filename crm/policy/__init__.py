"""Configurable policy data of the reference CRM: membership tiers, the points coupon catalogue, and
the service policies the assistant answers from (invoices, price protection, warranty / repair /
installation, coupon rules).

The YAML files next to this module are the single source of these tables. Parsing is done by pure
functions (:func:`parse_tiers`, :func:`parse_coupons`, :func:`parse_service_policy`) so they can be
tested without files; the ``load_*`` helpers read the shipped files once and cache the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import yaml  # type: ignore[import-untyped]

POLICY_DIR = Path(__file__).resolve().parent
TIERS_FILE = POLICY_DIR / "tiers.yml"
COUPONS_FILE = POLICY_DIR / "coupons.yml"
SERVICE_POLICIES = ("invoices", "price_protection", "after_sales", "coupon_rules", "shipping", "points")
"""The service policies served at ``GET /api/policies/{name}``, each in ``<name>.yml``."""


class PolicyError(ValueError):
    """A policy file does not have the expected structure."""


@dataclass(frozen=True)
class Tier:
    """One membership tier.

    Attributes:
        code: tier code, ``L1`` .. ``L5``.
        name: Chinese display name, e.g. ``金牌会员``.
        min_growth_value: growth value from which the tier applies.
        free_shipping_threshold_fen: order amount from which shipping is free (0: always free).
        after_sales_response_minutes: promised first response time of after-sales requests.
        dedicated_agent: whether the member is routed to the dedicated agent queue.
        benefits: benefits in Chinese, for display.
    """

    code: str
    name: str
    min_growth_value: int
    free_shipping_threshold_fen: int
    after_sales_response_minutes: int
    dedicated_agent: bool
    benefits: Tuple[str, ...]

    def to_json(self) -> Dict[str, Any]:
        """Return the JSON form used by ``GET /api/tiers``."""
        return {
            "code": self.code,
            "name": self.name,
            "min_growth_value": self.min_growth_value,
            "free_shipping_threshold_fen": self.free_shipping_threshold_fen,
            "after_sales_response_minutes": self.after_sales_response_minutes,
            "dedicated_agent": self.dedicated_agent,
            "benefits": list(self.benefits),
        }


@dataclass(frozen=True)
class CouponSpec:
    """A coupon of the points catalogue.

    Attributes:
        coupon_id: catalogue id, e.g. ``CP0020``.
        title: Chinese title, e.g. ``满199减20``.
        points_cost: points needed to redeem one coupon.
        value_fen: discount in fen.
        threshold_fen: minimum order amount in fen (0: no threshold).
        valid_days: days an issued coupon stays usable.
    """

    coupon_id: str
    title: str
    points_cost: int
    value_fen: int
    threshold_fen: int
    valid_days: int


def _require(entry: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = entry.get(key)
    if kind is int and isinstance(value, bool):
        raise PolicyError(f"{where}: {key} must be an integer")
    if not isinstance(value, kind):
        raise PolicyError(f"{where}: {key} must be {kind.__name__}, got {value!r}")
    return value


def parse_tiers(document: Mapping[str, Any]) -> Tuple[Tier, ...]:
    """Build the tier table from the parsed YAML document.

    Args:
        document: mapping with a ``tiers`` list.

    Returns:
        The tiers sorted by ascending ``min_growth_value``.

    Raises:
        PolicyError: the document is malformed, codes repeat, or the lowest tier does not start at 0.
    """
    entries = document.get("tiers") if isinstance(document, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise PolicyError("tiers: expected a non-empty list")
    tiers = []
    for index, entry in enumerate(entries):
        where = f"tiers[{index}]"
        if not isinstance(entry, Mapping):
            raise PolicyError(f"{where}: expected a mapping")
        benefits = _require(entry, "benefits", list, where)
        if not all(isinstance(item, str) for item in benefits):
            raise PolicyError(f"{where}: benefits must be strings")
        tiers.append(
            Tier(
                code=_require(entry, "code", str, where),
                name=_require(entry, "name", str, where),
                min_growth_value=_require(entry, "min_growth_value", int, where),
                free_shipping_threshold_fen=_require(entry, "free_shipping_threshold_fen", int, where),
                after_sales_response_minutes=_require(entry, "after_sales_response_minutes", int, where),
                dedicated_agent=_require(entry, "dedicated_agent", bool, where),
                benefits=tuple(benefits),
            )
        )
    tiers.sort(key=lambda tier: tier.min_growth_value)
    if len({tier.code for tier in tiers}) != len(tiers):
        raise PolicyError("tiers: codes must be unique")
    if tiers[0].min_growth_value != 0:
        raise PolicyError("tiers: the lowest tier must start at growth value 0")
    return tuple(tiers)


def tier_for_growth(tiers: Sequence[Tier], growth_value: int) -> Tier:
    """Return the highest tier whose threshold ``growth_value`` reaches."""
    reached = tiers[0]
    for tier in tiers:
        if growth_value >= tier.min_growth_value:
            reached = tier
    return reached


def next_tier(tiers: Sequence[Tier], code: str) -> Optional[Tier]:
    """Return the tier above ``code``, or None for the top tier or an unknown code."""
    codes = [tier.code for tier in tiers]
    if code not in codes:
        return None
    position = codes.index(code)
    return tiers[position + 1] if position + 1 < len(tiers) else None


def tier_by_code(tiers: Sequence[Tier], code: str) -> Optional[Tier]:
    """Return the tier with ``code`` or None."""
    return next((tier for tier in tiers if tier.code == code), None)


def parse_coupons(document: Mapping[str, Any]) -> Tuple[CouponSpec, ...]:
    """Build the coupon catalogue from the parsed YAML document.

    Raises:
        PolicyError: the document is malformed or ids repeat.
    """
    entries = document.get("coupons") if isinstance(document, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise PolicyError("coupons: expected a non-empty list")
    coupons = []
    for index, entry in enumerate(entries):
        where = f"coupons[{index}]"
        if not isinstance(entry, Mapping):
            raise PolicyError(f"{where}: expected a mapping")
        coupon = CouponSpec(
            coupon_id=_require(entry, "coupon_id", str, where),
            title=_require(entry, "title", str, where),
            points_cost=_require(entry, "points_cost", int, where),
            value_fen=_require(entry, "value_fen", int, where),
            threshold_fen=_require(entry, "threshold_fen", int, where),
            valid_days=_require(entry, "valid_days", int, where),
        )
        if coupon.points_cost <= 0 or coupon.value_fen <= 0 or coupon.valid_days <= 0:
            raise PolicyError(f"{where}: points_cost, value_fen and valid_days must be positive")
        coupons.append(coupon)
    if len({coupon.coupon_id for coupon in coupons}) != len(coupons):
        raise PolicyError("coupons: ids must be unique")
    return tuple(coupons)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@cache
def load_tiers(path: Path = TIERS_FILE) -> Tuple[Tier, ...]:
    """Read and parse the tier table (cached per path)."""
    return parse_tiers(_read_yaml(path))


@cache
def load_coupons(path: Path = COUPONS_FILE) -> Tuple[CouponSpec, ...]:
    """Read and parse the coupon catalogue (cached per path)."""
    return parse_coupons(_read_yaml(path))


# --------------------------------------------------------------------------- service policies
# A schema is a type (str, int, bool), a one-element list (a non-empty list of that), RANGE (two
# non-negative integers, earliest first), a dict of key -> schema (exactly these keys), or
# {str: schema} (a non-empty mapping of free text keys to that schema). Integers are non-negative.
RANGE = "range"
_SERVICE_SCHEMAS: Dict[str, Dict[str, Any]] = {
    "invoices": {
        "default_kind": str,
        "issue_hours_after_signing": int,
        "download_path": str,
        "titles": [str],
        "special_vat": {"qualification_path": str, "review_working_days": int, "mail_working_days": RANGE},
        "reissue_days_after_order": int,
        "free_correction": bool,
        "partial_return_reissue": bool,
    },
    "price_protection": {
        "window_days": int,
        "apply_path": str,
        "excluded": [str],
        "other_shops": bool,
        "refund_working_days": {str: RANGE},
        "refund_timing_by_payment_method": {str: str},
    },
    "after_sales": {
        "warranty": {
            "quality_return_days": int,
            "months": {str: int},
            "nationwide": bool,
            "repair_path": str,
            "repair_modes": [str],
            "repair_working_days": int,
            "shop_pays_repair_shipping": bool,
            "proof": str,
            "not_covered": [str],
            "response_minutes": int,
        },
        "installation": {
            "free_basic": [str],
            "paid_assembly": [str],
            "assembly_fee_fen": int,
            "free_assembly_tiers": [str],
            "booking_path": str,
            "visit_within_hours": int,
            "remote_visit_within_hours": int,
            "materials": str,
            "self_install_keeps_warranty": bool,
        },
    },
    "shipping": {
        "shipping": {"standard_fee_fen": int, "remote_regions": [str], "remote_free_threshold_fen": int, "remote_fee_fen": int},
        "dispatch": {"same_day_cutoff": str, "promotion_delay_days": RANGE},
        "transit_days": {str: RANGE},
        "delivery_hours": [str],
        "orders": {"payment_timeout_minutes": int},
    },
    "points": {"earn_per_yuan": int, "points_per_yuan": int, "arrival_days_after_signing": int},
    "coupon_rules": {
        "threshold_basis": str,
        "excluded_prices": [str],
        "coupons_per_order": int,
        "combine_with_points": bool,
        "apply_after_payment": bool,
        "returned_while_valid": bool,
        "where_to_see": str,
    },
}


def _checked(value: Any, schema: Any, where: str) -> Any:
    """``value`` validated against ``schema`` (see above), as plain JSON values."""
    if schema is bool:
        if not isinstance(value, bool):
            raise PolicyError(f"{where}: expected true or false, got {value!r}")
        return value
    if schema is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PolicyError(f"{where}: expected a non-negative integer, got {value!r}")
        return value
    if schema is str:
        if not isinstance(value, str) or not value.strip():
            raise PolicyError(f"{where}: expected a non-empty text, got {value!r}")
        return value
    if schema == RANGE:
        if not isinstance(value, list) or len(value) != 2:
            raise PolicyError(f"{where}: expected [earliest, latest], got {value!r}")
        low, high = (_checked(item, int, where) for item in value)
        if low > high:
            raise PolicyError(f"{where}: earliest {low} is after latest {high}")
        return [low, high]
    if isinstance(schema, list):
        if not isinstance(value, list) or not value:
            raise PolicyError(f"{where}: expected a non-empty list, got {value!r}")
        return [_checked(item, schema[0], f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(schema, dict) and set(schema) == {str}:
        if not isinstance(value, Mapping) or not value:
            raise PolicyError(f"{where}: expected a non-empty mapping, got {value!r}")
        return {_checked(key, str, where): _checked(item, schema[str], f"{where}.{key}") for key, item in value.items()}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where}: expected a mapping, got {value!r}")
    unknown = sorted(set(value) - set(schema))
    missing = sorted(set(schema) - set(value))
    if unknown or missing:
        raise PolicyError(f"{where}: unknown keys {unknown}, missing keys {missing}")
    return {key: _checked(value[key], schema[key], f"{where}.{key}") for key in schema}


def parse_service_policy(name: str, document: Mapping[str, Any]) -> Dict[str, Any]:
    """Validate one service policy document (``invoices``, ``price_protection``, ``after_sales``,
    ``coupon_rules``, ``shipping``, ``points``) and return it as plain JSON values.

    Raises:
        PolicyError: unknown policy name, unknown or missing keys, or a value of the wrong type.
    """
    if name not in _SERVICE_SCHEMAS:
        raise PolicyError(f"no service policy named {name!r}")
    return _checked(document, _SERVICE_SCHEMAS[name], name)


@cache
def load_service_policy(name: str, directory: Path = POLICY_DIR) -> Dict[str, Any]:
    """Read and validate ``<name>.yml`` (cached per name and directory)."""
    return parse_service_policy(name, _read_yaml(directory / f"{name}.yml"))


def load_service_policies(directory: Path = POLICY_DIR) -> Dict[str, Dict[str, Any]]:
    """Every service policy of :data:`SERVICE_POLICIES`, read and validated."""
    return {name: load_service_policy(name, directory) for name in SERVICE_POLICIES}
