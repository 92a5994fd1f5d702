"""The CRM's correlation ids on a real server: a valid X-Request-ID is kept, anything else replaced,
each request logged by its route template (never the path with its ids)."""

from __future__ import annotations

import pytest

from bot.logs import valid_correlation_id
from crm.seed import DEMO_CUSTOMERS
from crm.tests.support import API_KEY, CrmServer


@pytest.mark.parametrize("given", ["shop-req-20261204-0001", "bad id", "short", "x" * 65, "abc_defgh_123", None])
def test_the_answer_carries_the_request_id_when_valid_else_a_new_one(crm: CrmServer, given: str) -> None:
    customer = DEMO_CUSTOMERS[0].customer_id
    for key in (API_KEY, "wrong-key"):  # a request refused for its API key is answered and logged too
        status, _, headers = crm.call("GET", f"/api/customers/{customer}/orders", key=key,
                                      headers={"X-Request-ID": given} if given is not None else None)
        assert status == (200 if key == API_KEY else 401)
        answered = headers["x-request-id"]
        assert answered == given if given == "shop-req-20261204-0001" else answered != given and valid_correlation_id(answered)
    log = crm.log_path.read_text(encoding="utf-8", errors="replace")
    assert "crm.request method=GET route=/api/customers/<customer_id>/orders status=200" in log
    assert "crm.request method=GET route=/api/customers/<customer_id>/orders status=401" in log
    assert f"/api/customers/{customer}" not in log
