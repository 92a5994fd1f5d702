"""Fuzz: the app channel answers any body, header and query without a 5xx or an exception, refuses
with a JSON error code, and passes every accepted message on exactly once (to the bot, or to the
agent's transcript while a handoff has the conversation)."""

from __future__ import annotations

from typing import List, Tuple

import pytest
from hypothesis import given

from tests.fuzz.channels import AppChannelUnderFuzz, Step, conversations, fetches, other_requests
from tests.fuzz.profiles import fuzz_settings

# JSON nested deeper than Python's recursion limit (once an HTTP 500) is test_deeply_nested_json_is_refused.


@fuzz_settings(2)
@given(conversations(deep=False))
def test_webhook_conversations(app_channel: AppChannelUnderFuzz, steps: List[Step]) -> None:
    assert app_channel.conversation(steps) == []


@fuzz_settings(2)
@given(fetches())
def test_reading_pushed_messages(app_channel: AppChannelUnderFuzz, fetch: Tuple[bytes, bytes, list, bool]) -> None:
    assert app_channel.fetch(*fetch) == []


@fuzz_settings(1)
@given(other_requests(deep=False))
def test_any_method_and_path(app_channel: AppChannelUnderFuzz, request: Tuple[bytes, bytes, list, bytes]) -> None:
    assert app_channel.other_request(*request) == []


@pytest.mark.parametrize("body", [b"[" * 5000, b'{"message":' * 2000], ids=["arrays-5000-deep", "objects-2000-deep"])
def test_deeply_nested_json_is_refused(app_channel: AppChannelUnderFuzz, body: bytes) -> None:
    assert app_channel.conversation([Step(body)]) == []
