"""Scraping a service's Prometheus page in tests: the answer parsed by prometheus-client's own parser."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from prometheus_client.parser import text_string_to_metric_families


@dataclass


class Scrape:
    """One answer of ``GET /metrics``: its status, body, and every sample by name and labels."""

    status: int
    text: str
    content_type: str
    samples: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]
    types: Dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels`` (0 when the service has not counted it yet)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.samples.items() if sample == name and wanted <= set(have))

    def label_values(self, name: str, label: str) -> set:
        """Every value of ``label`` among the samples ``name``."""
        return {dict(have).get(label) for (sample, have) in self.samples if sample == name}


def scrape(base_url: str, headers: Optional[Dict[str, str]] = None, timeout: float = 15) -> Scrape:
    """``GET {base_url}/metrics``; a 200 must parse as the Prometheus text format."""
    request = urllib.request.Request(f"{base_url}/metrics", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, content_type = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        status, raw, content_type = error.code, error.read(), error.headers.get("Content-Type", "")
    return parsed(raw.decode("utf-8"), status, content_type)


def parsed(text: str, status: int = 200, content_type: str = "text/plain") -> Scrape:
    """A page's text (a 200's must parse as the Prometheus text format)."""
    samples: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
    types: Dict[str, str] = {}
    if status == 200:
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(status, text, content_type, samples, types)


def in_process() -> Scrape:
    """What this process counted (a channel or push delivery run by the test itself)."""
    from bot import metrics

    return parsed(metrics.exposition().decode("utf-8"))
