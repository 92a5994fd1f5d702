"""The shop's product vocabulary and how a mention like 「那双耐克跑鞋」 maps to an order line.

The vocabulary (``catalogue.yml`` beside this file) lists brands, product types and the ways
shoppers write them. :func:`parse_mention` reads a brand and a product type out of a mention;
:func:`match_items` picks the order lines a mention can mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yml")


@dataclass(frozen=True)
class ProductType:
    """A kind of product: its canonical word, CRM category and the words in product names."""

    name: str
    category: str
    aliases: Tuple[str, ...]
    name_words: Tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    """Brands (canonical → aliases) and product types."""

    brands: Mapping[str, Tuple[str, ...]]
    product_types: Tuple[ProductType, ...]

    def alias_table(self) -> List[Tuple[str, str, str]]:
        """(alias in lower case, label BRAND|TYPE, canonical name), longest aliases first."""
        rows = [(alias.lower(), "BRAND", brand) for brand, aliases in self.brands.items() for alias in aliases]
        rows += [(alias.lower(), "TYPE", kind.name) for kind in self.product_types for alias in kind.aliases]
        return sorted(rows, key=lambda row: -len(row[0]))

    def product_type(self, name: str) -> Optional[ProductType]:
        """The product type with this canonical name."""
        return next((kind for kind in self.product_types if kind.name == name), None)


@dataclass(frozen=True)
class Mention:
    """What a product mention says: a brand, a product type, or both."""

    brand: Optional[str] = None
    product_type: Optional[str] = None

    @property
    def is_empty(self) -> bool:
        """True when nothing in the mention was recognised."""
        return self.brand is None and self.product_type is None


def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    """Read the vocabulary file."""
    raw: Dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    brands = {str(name): tuple(str(alias) for alias in aliases) for name, aliases in raw.get("brands", {}).items()}
    kinds = tuple(
        ProductType(
            name=str(name),
            category=str(spec["category"]),
            aliases=tuple(str(alias) for alias in spec.get("aliases", [name])),
            name_words=tuple(str(word) for word in spec.get("name_words", [])),
        )
        for name, spec in raw.get("product_types", {}).items()
    )
    return Catalogue(brands, kinds)


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The shipped vocabulary, read once."""
    return load_catalogue()


def parse_mention(text: str, catalogue: Optional[Catalogue] = None) -> Mention:
    """The brand and product type named in ``text`` (longest alias wins, each found once)."""
    catalogue = catalogue or default_catalogue()
    lowered = text.lower()
    brand: Optional[str] = None
    product_type: Optional[str] = None
    for alias, label, canonical in catalogue.alias_table():
        if alias and alias in lowered:
            if label == "BRAND" and brand is None:
                brand = canonical
            elif label == "TYPE" and product_type is None:
                product_type = canonical
            lowered = lowered.replace(alias, " ")
    return Mention(brand, product_type)


def _item_matches(item: Mapping[str, Any], mention: Mention, catalogue: Catalogue) -> bool:
    name = str(item.get("product_name", ""))
    if mention.brand and item.get("brand") != mention.brand and mention.brand not in name:
        return False
    if mention.product_type:
        kind = catalogue.product_type(mention.product_type)
        if kind is None or item.get("category") != kind.category:
            return False
        if kind.name_words and not any(word.lower() in name.lower() for word in kind.name_words):
            return False
    return True


def match_items(items: Sequence[Mapping[str, Any]], mention_text: str, catalogue: Optional[Catalogue] = None) -> List[Mapping[str, Any]]:
    """The order lines a shopper's product mention can mean.

    Args:
        items: order lines as the CRM returns them (``product_name``, ``brand``, ``category``).
        mention_text: e.g. 「耐克跑鞋」, 「那双鞋」, 「耳机」.

    Returns:
        The matching lines, in order; empty when the mention names nothing recognisable or
        nothing in ``items`` fits.
    """
    catalogue = catalogue or default_catalogue()
    mention = parse_mention(mention_text, catalogue)
    if mention.is_empty:
        exact = [item for item in items if mention_text and mention_text in str(item.get("product_name", ""))]
        return exact
    return [item for item in items if _item_matches(item, mention, catalogue)]
