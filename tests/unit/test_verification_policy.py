"""The verification policy file and the pure parts of the throttle: numbers, keys, retry times."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from actions.throttle import (
    CLIENT,
    ORDER,
    POLICY_FILE,
    Attempt,
    VerificationPolicy,
    client_key,
    load_policy,
    order_key,
    policy_from_dict,
)
from actions.verification import refusal_text

SHANGHAI = ZoneInfo("Asia/Shanghai")
VALID = {"conversation": {"failures_before_human": 2},
         "throttle": {"window_minutes": 15, "max_failures_per_order": 5, "max_failures_per_client": 10}}


def test_the_shipped_policy_says_5_failures_per_order_in_15_minutes():
    assert load_policy(POLICY_FILE) == VerificationPolicy(
        failures_before_human=2, window_s=15 * 60, max_failures_per_order=5, max_failures_per_client=10)


@pytest.mark.parametrize(("section", "field", "value"), [
    ("throttle", "window_minutes", 0), ("throttle", "max_failures_per_order", -1), ("throttle", "max_failures_per_client", "10"),
    ("throttle", "max_failures_per_order", True), ("conversation", "failures_before_human", 1.5),
])
def test_a_number_that_is_not_a_positive_integer_is_refused(section, field, value):
    raw = {name: dict(values) for name, values in VALID.items()}
    raw[section][field] = value
    with pytest.raises(ValueError, match=field):
        policy_from_dict(raw)


@pytest.mark.parametrize("missing", ["conversation", "throttle"])
def test_a_missing_section_is_refused(missing):
    with pytest.raises(ValueError, match="verification policy"):
        policy_from_dict({name: values for name, values in VALID.items() if name != missing})


def test_keys_name_the_order_and_the_client():
    assert order_key("880000010001") == "verify:fail:order:880000010001"
    assert client_key("sender:abc") == "verify:fail:client:sender:abc"


def test_the_retry_time_is_rounded_up_to_the_minute():
    at = datetime(2026, 11, 20, 14, 3, 0, 1000, tzinfo=SHANGHAI).timestamp()
    assert Attempt(refused_by=ORDER, retry_at=at).retry_time(SHANGHAI) == datetime(2026, 11, 20, 14, 4, tzinfo=SHANGHAI)
    exact = datetime(2026, 11, 20, 14, 3, tzinfo=SHANGHAI).timestamp()
    assert Attempt(refused_by=ORDER, retry_at=exact).retry_time(SHANGHAI) == datetime(2026, 11, 20, 14, 3, tzinfo=SHANGHAI)
    assert Attempt().allowed and Attempt().retry_time(SHANGHAI) is None


def test_the_refusal_names_the_order_the_minute_and_a_human():
    now = datetime(2026, 11, 20, 14, 0, tzinfo=SHANGHAI)
    attempt = Attempt(refused_by=ORDER, retry_at=now.timestamp() + 14 * 60 + 30)
    text = refusal_text(attempt, "880000010001", now)
    assert "订单 880000010001" in text and "请在 今天 14:15 之后再试" in text and "转人工" in text


def test_a_refusal_after_midnight_says_tomorrow():
    now = datetime(2026, 11, 20, 23, 55, tzinfo=SHANGHAI)
    text = refusal_text(Attempt(refused_by=CLIENT, retry_at=now.timestamp() + 15 * 60), "880000010001", now)
    assert "这次对话中核实失败的次数过多" in text and "请在 明天 00:10 之后再试" in text
    assert "880000010001" not in text
