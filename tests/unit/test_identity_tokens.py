"""Identity tokens, purpose keys, channel-signed identities and proven-order proofs (bot.identity)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bot.identity import (
    CHANNEL_IDENTITY_TTL_S,
    channel_identity,
    conversation_token,
    purpose_key,
    sign_callback,
    sign_identity_token,
    verified_order_from_slot,
    verified_order_slot_value,
    verify_channel_identity,
    verify_conversation_token,
    verify_identity_token,
)

SECRET = "a-shop-secret-of-enough-length-0123456789"
NOW = 1_800_000_000


def test_the_token_is_the_pinned_contract() -> None:
    mac = hmac.new(SECRET.encode(), f"identity|C000001|{NOW + 600}".encode(), hashlib.sha256).hexdigest()
    assert sign_identity_token(SECRET, "C000001", NOW + 600) == f"C000001.{NOW + 600}.{mac}"
    assert verify_identity_token(SECRET, f"C000001.{NOW + 600}.{mac}", now=NOW) == "C000001"
    assert verify_identity_token(SECRET, f"C000001.{NOW + 600}.{mac.upper()}", now=NOW) == "C000001"


@pytest.mark.parametrize(
    "token",
    [
        sign_identity_token(SECRET, "C000001", NOW - 1),  # expired
        sign_identity_token(SECRET, "C000001", NOW),  # expires now
        sign_identity_token(SECRET, "C000001", NOW + 24 * 3600 + 1),  # too far ahead
        sign_identity_token("another-shop", "C000001", NOW + 600),
        sign_identity_token(SECRET, "C000001", NOW + 600).replace("C000001", "C000002", 1),  # another customer
        sign_identity_token(SECRET, "C000001", NOW + 600)[:-1],
        f"C000001.{NOW + 600}",
        f"C000001.{NOW + 600}.{'0' * 64}.x",
        f"C000001.+{NOW}.{'0' * 64}",
        f"C000001.{'１' * 10}.{'0' * 64}",  # full-width digits are digits to Python, not to the contract
        "",
        None,
        12,
        "x" * 500,
        f"bad id.{NOW + 600}.{'0' * 64}",
    ],
)
def test_refused_tokens(token: object) -> None:
    assert verify_identity_token(SECRET, token, now=NOW) is None


def test_an_empty_secret_verifies_nothing() -> None:
    assert verify_identity_token("", sign_identity_token(SECRET, "C1", NOW + 60), now=NOW) is None


def test_each_purpose_has_its_own_key() -> None:
    keys = {purpose_key(SECRET, purpose) for purpose in ("callback", "wechat-bind", "conversation", "channel-identity", "tracker")}
    assert len(keys) == 5 and SECRET.encode() not in keys
    assert purpose_key(SECRET, "callback") == hmac.new(SECRET.encode(), b"key|callback", hashlib.sha256).digest()
    with pytest.raises(ValueError):
        purpose_key(SECRET, "anything")
    body = b'{"sender":"s"}'
    assert sign_callback(SECRET, "1700000000", body) == hmac.new(purpose_key(SECRET, "callback"), b"1700000000." + body,
                                                                 hashlib.sha256).hexdigest()


def test_conversation_tokens_belong_to_one_conversation() -> None:
    token = conversation_token(SECRET, "conv-1")
    assert verify_conversation_token(SECRET, "conv-1", token)
    assert not verify_conversation_token(SECRET, "conv-2", token)
    assert not verify_conversation_token("other", "conv-1", token)
    assert not verify_conversation_token(SECRET, "conv-1", None)
    assert not verify_conversation_token(SECRET, "conv-1", token[:-1])


def test_channel_identity_is_bound_to_sender_customer_and_time() -> None:
    identity = channel_identity(SECRET, "conv-1", "C000002", now=NOW)
    assert identity["expires"] == NOW + CHANNEL_IDENTITY_TTL_S
    assert verify_channel_identity(SECRET, "conv-1", identity, now=NOW) == "C000002"
    assert verify_channel_identity(SECRET, "conv-2", identity, now=NOW) is None
    assert verify_channel_identity(SECRET, "conv-1", identity, now=NOW + CHANNEL_IDENTITY_TTL_S) is None
    assert verify_channel_identity(SECRET, "conv-1", {**identity, "customer_id": "C000001"}, now=NOW) is None
    assert verify_channel_identity(SECRET, "conv-1", {**identity, "expires": NOW + 10**6}, now=NOW) is None
    assert verify_channel_identity(SECRET, "conv-1", {"customer_id": "C000002", "verified": True}, now=NOW) is None
    assert verify_channel_identity(SECRET, "conv-1", channel_identity(SECRET, "conv-1", None, now=NOW), now=NOW) is None
    assert verify_channel_identity(SECRET, "conv-1", "C000002", now=NOW) is None


def test_a_proven_order_needs_its_proof() -> None:
    value = verified_order_slot_value(SECRET, "conv-1", "880000010001")
    assert verified_order_from_slot(SECRET, "conv-1", value) == "880000010001"
    assert verified_order_from_slot(SECRET, "conv-2", value) is None
    assert verified_order_from_slot(SECRET, "conv-1", "880000010001") is None
    assert verified_order_from_slot(SECRET, "conv-1", value.replace("880000010001", "880000010002")) is None
    assert verified_order_from_slot(SECRET, "conv-1", None) is None
