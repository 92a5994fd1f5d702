"""The OpenAPI document admits only what the API accepts: every request schemathesis builds from the
document (positive data) reaches the CRM's logic instead of being refused as malformed (400).

Found by the fuzz campaign (``python -m bench.fuzz``): the document let through blank idempotency
keys, coupon ids and receiver names, addresses blank once trimmed, offsets beyond nine digits,
``status`` filters of any text and ``answer_due_at`` timestamps the API cannot read (``Z``, an
impossible date), all refused with 400 by the API; and a request over the server's size limits
answers 413, which no operation listed.
"""

from __future__ import annotations

from typing import Any, List

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings

from crm.openapi import build_openapi
from crm.tests.support import API_KEY, CrmServer

OPERATIONS = [
    ("GET", "/api/customers"),
    ("GET", "/api/customers/{customer_id}/orders"),
    ("GET", "/api/customers/{customer_id}/points/ledger"),
    ("POST", "/api/customers/{customer_id}/points/redeem"),
    ("POST", "/api/orders/{order_id}/address"),
    ("POST", "/api/orders/{order_id}/urge"),
    ("POST", "/api/orders/{order_id}/late-compensation"),
    ("POST", "/api/orders/{order_id}/price-protection"),
    ("POST", "/api/returns"),
]
"""The operations whose document disagreed with the API."""


def line_ids(body: Any) -> List[Any]:
    """The ``line_id`` of each item of a return request (each may be given once: no schema says so)."""
    items = body.get("items") if isinstance(body, dict) else None
    return [item.get("line_id") for item in items if isinstance(item, dict)] if isinstance(items, list) else []


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_a_request_the_document_admits_is_not_refused_as_malformed(crm: CrmServer, method: str, path: str) -> None:
    operation = schemathesis.openapi.from_dict(build_openapi())[path][method]
    refused: List[str] = []

    @settings(max_examples=25, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy())
    def call(case: Any) -> None:
        ids = line_ids(case.body)
        assume(len(ids) == len(set(ids)))
        response = case.call(base_url=crm.base_url, headers={"X-API-Key": API_KEY})
        if response.status_code == 400:
            refused.append(f"{case.as_curl_command()} -> {response.text[:200]}")

    call()
    assert refused == []


def test_a_request_over_the_size_limits_is_a_documented_413(crm: CrmServer) -> None:
    status, body, _ = crm.call("GET", "/api/orders/607514849841/returns?offset=" + "9" * 10_000)
    assert status == 413 and body["error"]["code"] == "invalid_argument"
    for path, operations in build_openapi()["paths"].items():
        for method, operation in operations.items():
            assert "413" in operation["responses"], (method, path)
