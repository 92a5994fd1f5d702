"""Static vocabulary of the demo data set (products, names, cities and carriers' sites), read once from
``crm/seed/data.yml`` into the shapes the generator draws from (tuples keep the file's order)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml  # type: ignore[import-untyped]

DATA_FILE = Path(__file__).resolve().parent / "seed" / "data.yml"

with DATA_FILE.open(encoding="utf-8") as _handle:
    DATA: Dict[str, Any] = yaml.safe_load(_handle)

# (sku, name, brand, category, price in yuan)
PRODUCTS: List[Tuple[str, str, str, str, int]] = [tuple(product) for product in DATA["products"]]  # type: ignore[misc]
NOT_RETURNABLE_REASONS: Dict[str, str] = dict(DATA["not_returnable_reasons"])
# How often each category appears in orders (relative weights).
CATEGORY_WEIGHTS: Dict[str, int] = dict(DATA["category_weights"])
SURNAMES: str = DATA["surnames"]
GIVEN_NAME_CHARS: str = DATA["given_name_chars"]
MOBILE_PREFIXES: Tuple[str, ...] = tuple(DATA["mobile_prefixes"])
# city: (province prefix, region, [(district, [streets], delivery site)], transit hub)
CITIES: Dict[str, Tuple[str, str, List[Tuple[str, List[str], str]], str]] = {
    city: (
        entry["province"],
        entry["region"],
        [(district["name"], list(district["streets"]), district["site"]) for district in entry["districts"]],
        entry["hub"],
    )
    for city, entry in DATA["cities"].items()
}
# Fulfilment warehouses: (city, warehouse name, region)
WAREHOUSES: List[Tuple[str, str, str]] = [tuple(warehouse) for warehouse in DATA["warehouses"]]  # type: ignore[misc]
COURIER_SURNAMES: str = DATA["courier_surnames"]
COMMUNITY_PREFIXES: Tuple[str, ...] = tuple(DATA["community_prefixes"])
RESIDENCES: Tuple[str, ...] = tuple(DATA["residences"])
SIGNERS: Tuple[str, ...] = tuple(DATA["signers"])
SCANS: Dict[str, str] = dict(DATA["scans"])
RETURN_NOTES: Dict[str, str] = dict(DATA["return_notes"])
