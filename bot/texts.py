"""Texts as data: the persona and the policy figures every reply quotes.

The shopper-facing sentences live in Rasa responses files (``data/responses/<topic>.yml`` and
``domain.yml``); the figures they quote are named placeholders (``{free_shipping_silver}``,
``{no_reason_days}``, ``{persona}``) filled here from the policy files, so a policy edit changes
every answer that quotes it and no answer can state a figure the policy does not.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHOP_TEXTS = ROOT / "bot" / "texts.yml"
TIERS = ROOT / "crm" / "policy" / "tiers.yml"
RETURNS = ROOT / "actions" / "policy" / "returns.yml"
AFTER_SALES = ROOT / "crm" / "policy" / "after_sales.yml"
PRICE_PROTECTION = ROOT / "crm" / "policy" / "price_protection.yml"
SERVICE = ROOT / "handoff" / "service.yml"
SHIPPING = ROOT / "crm" / "policy" / "shipping.yml"
INVOICES = ROOT / "crm" / "policy" / "invoices.yml"
POINTS = ROOT / "crm" / "policy" / "points.yml"
COUPONS = ROOT / "crm" / "policy" / "coupons.yml"
COUPON_RULES = ROOT / "crm" / "policy" / "coupon_rules.yml"
RESPONSE_FILES = [ROOT / "domain.yml", *sorted((ROOT / "data" / "responses").glob("*.yml"))]

# Placeholder names of the CRM's tier codes.
TIER_NAMES = {"L1": "registered", "L2": "bronze", "L3": "silver", "L4": "gold", "L5": "diamond"}


def _read(path: Path) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _yuan(fen: int) -> str:
    return f"{fen // 100}" if fen % 100 == 0 else f"{fen / 100:.2f}"


def persona() -> str:
    """The assistant's one name, set in ``bot/texts.yml``."""
    return str(_read(SHOP_TEXTS)["persona"])


def policy_values() -> Dict[str, str]:
    """Every policy figure a response may quote, by placeholder name (as text)."""
    values: Dict[str, str] = {}
    for tier in _read(TIERS)["tiers"]:
        name = TIER_NAMES[tier["code"]]
        values[f"free_shipping_{name}"] = _yuan(int(tier["free_shipping_threshold_fen"]))
        values[f"tier_name_{name}"] = str(tier["name"])
        values[f"growth_{name}"] = f"{int(tier['min_growth_value']):,}"
    windows = _read(RETURNS)["windows"]
    values["no_reason_days"] = str(windows["no_reason_days"])
    values["quality_days"] = str(windows["quality_days"])
    values["price_protection_days"] = str(_read(PRICE_PROTECTION)["window_days"])
    installation = _read(AFTER_SALES)["installation"]
    values["install_visit_hours"] = str(installation["visit_within_hours"])
    values["install_remote_visit_hours"] = str(installation["remote_visit_within_hours"])
    values["assembly_fee"] = _yuan(int(installation["assembly_fee_fen"]))
    values["assembly_fee_price"] = f"¥{int(installation['assembly_fee_fen']) / 100:.2f}"  # as prices are written
    warranty = _read(AFTER_SALES)["warranty"]
    values["after_sales_response_minutes"] = str(warranty["response_minutes"])
    values["repair_working_days"] = str(warranty["repair_working_days"])
    hours = _read(SERVICE)["opening_hours"]["default"]
    values["opening_time"] = str(hours["open"])
    values["closing_time"] = str(hours["close"])
    values.update(_shipping_values(_read(SHIPPING)))
    invoices = _read(INVOICES)
    values["invoice_issue_hours"] = str(invoices["issue_hours_after_signing"])
    values["invoice_reissue_days"] = str(invoices["reissue_days_after_order"])
    values["invoice_vat_review_days"] = str(invoices["special_vat"]["review_working_days"])
    values["invoice_vat_mail_days"] = _range(invoices["special_vat"]["mail_working_days"])
    points = _read(POINTS)
    values["earn_points_per_yuan"] = str(points["earn_per_yuan"])
    values["points_per_yuan"] = str(points["points_per_yuan"])
    values["points_arrival_days"] = str(points["arrival_days_after_signing"])
    coupons = _read(COUPONS)["coupons"]
    days = [int(coupon["valid_days"]) for coupon in coupons]
    values["coupon_valid_days"] = str(max(set(days), key=days.count))  # what most coupons give
    values.update({f"coupon_valid_days_{coupon['coupon_id']}": str(coupon["valid_days"]) for coupon in coupons})
    values["coupons_per_order"] = str(_read(COUPON_RULES)["coupons_per_order"])
    return values


def _range(bounds: List[Any]) -> str:
    low, high = (int(bound) for bound in bounds)
    return f"{low}–{high}" if high != low else str(low)


def _shipping_values(policy: Dict[str, Any]) -> Dict[str, str]:
    shipping = policy["shipping"]
    values = {
        "standard_shipping_fee": _yuan(int(shipping["standard_fee_fen"])),
        "remote_regions": "、".join(str(region) for region in shipping["remote_regions"]),
        "remote_free_shipping": _yuan(int(shipping["remote_free_threshold_fen"])),
        "remote_shipping_fee": _yuan(int(shipping["remote_fee_fen"])),
        "same_day_cutoff": str(policy["dispatch"]["same_day_cutoff"]),
        "promotion_delay_days": _range(policy["dispatch"]["promotion_delay_days"]),
        "delivery_hours": "–".join(str(hour) for hour in policy["delivery_hours"]),
        "payment_timeout_minutes": str(policy["orders"]["payment_timeout_minutes"]),
    }
    for area, bounds in policy["transit_days"].items():
        values[f"transit_days_{area}"] = _range(bounds)
    return values


@lru_cache(maxsize=1)
def fill_values() -> Dict[str, str]:
    """Persona and policy figures, read once per process (a restart shows an edit)."""
    return {"persona": persona(), **policy_values()}


def training_bytes(path: Path) -> bytes:
    """What of a model input file a model depends on: for a file with Rasa responses, their names
    but not their wording (bot/nlg.py reads the wording at server start), else the whole file."""
    raw = path.read_bytes()
    if path.suffix != ".yml" or b"\nresponses:" not in b"\n" + raw:
        return raw
    content = yaml.safe_load(raw) or {}
    content["responses"] = sorted(content.get("responses") or {})
    return json.dumps(content, sort_keys=True, ensure_ascii=False, default=str).encode()


def responses_on_disk(paths: Optional[List[Path]] = None) -> Dict[str, List[Dict[str, Any]]]:
    """Every response of the responses files, by name."""
    responses: Dict[str, List[Dict[str, Any]]] = {}
    for path in paths or RESPONSE_FILES:
        responses.update(_read(path).get("responses") or {})
    return responses


@lru_cache(maxsize=1)
def _responses() -> Dict[str, List[Dict[str, Any]]]:
    return responses_on_disk()


def render(response: str, /, **values: Any) -> str:
    """The text of ``response`` (its first variation) filled with persona, policy figures and
    ``values``: for replies composed of several responses in Python, read once per process."""
    return str(_responses()[response][0]["text"]).format_map({**fill_values(), **values})


INTENT_LABELS_FILE = ROOT / "bot" / "intent_labels.yml"


@lru_cache(maxsize=1)
def intent_labels() -> Dict[str, Dict[str, Dict[str, str]]]:
    """The Chinese names of intents (``bot/intent_labels.yml``): ``summary`` for agents, ``inbox`` for supervisors."""
    return {
        part: {table: {str(key): str(value) for key, value in (names or {}).items()} for table, names in tables.items()}
        for part, tables in _read(INTENT_LABELS_FILE).items()
    }
