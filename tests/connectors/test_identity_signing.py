"""Unit tests of bot.identity: signatures, customer id syntax; and the phone mask (bot.pii) identities are shown with."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bot.identity import is_valid_customer_id, sign_customer_id, verify_signature
from bot.pii import mask_phone

SECRET = "dev-shop-secret"


def test_signature_is_hex_hmac_sha256_of_the_customer_id() -> None:
    expected = hmac.new(b"dev-shop-secret", b"C10001", hashlib.sha256).hexdigest()
    assert sign_customer_id(SECRET, "C10001") == expected
    assert len(expected) == 64


def test_valid_signature_verifies_in_either_hex_case() -> None:
    signature = sign_customer_id(SECRET, "C10001")
    assert verify_signature(SECRET, "C10001", signature)
    assert verify_signature(SECRET, "C10001", signature.upper())


@pytest.mark.parametrize(
    "customer_id, signature",
    [
        ("C10002", sign_customer_id(SECRET, "C10001")),  # another customer's signature
        ("C10001", sign_customer_id("other-secret", "C10001")),  # another shop's secret
        ("C10001", None),
        ("C10001", ""),
        ("C10001", "zz" * 32),  # right length, not hex
        ("C10001", sign_customer_id(SECRET, "C10001")[:-1]),  # too short
        ("C10001", sign_customer_id(SECRET, "C10001") + "0"),  # too long
        ("C10001", "é" * 64),  # non-ASCII
        ("C10001", 12345),
        (None, sign_customer_id(SECRET, "C10001")),
        ("", "0" * 64),
        ("bad id", "0" * 64),
        (["C10001"], "0" * 64),
    ],
)
def test_invalid_signatures_fail_without_raising(customer_id: object, signature: object) -> None:
    assert verify_signature(SECRET, customer_id, signature) is False


def test_empty_secret_never_verifies_and_cannot_sign() -> None:
    signature = hmac.new(b"", b"C10001", hashlib.sha256).hexdigest()
    assert verify_signature("", "C10001", signature) is False
    with pytest.raises(ValueError):
        sign_customer_id("", "C10001")


@pytest.mark.parametrize("customer_id", ["C10001", "a", "user_42-x", "A" * 64])
def test_valid_customer_ids(customer_id: str) -> None:
    assert is_valid_customer_id(customer_id)


@pytest.mark.parametrize("customer_id", ["", "A" * 65, "has space", "中文", "a.b", "a/b", None, 7, "~anonymous"])
def test_invalid_customer_ids(customer_id: object) -> None:
    assert not is_valid_customer_id(customer_id)
    with pytest.raises(ValueError):
        sign_customer_id(SECRET, customer_id)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "phone, masked",
    [
        ("13812345678", "138****5678"),
        (" 138-1234-5678 ", "138****5678"),
        ("+8613812345678", "+86 138****5678"),
        (13812345678, "138****5678"),
        ("02112345678", "021****5678"),
        ("12345678", "123*5678"),
        ("1234567", "*****67"),
        ("12345", "***45"),
        ("1234", "****"),
        ("1", "*"),
        ("", ""),
        ("   ", ""),
        (None, ""),
    ],
)
def test_mask_phone(phone: object, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_masked_phone_never_contains_the_middle_digits() -> None:
    assert "1234" not in mask_phone("13812345678")


def test_a_channel_resolves_identity_tokens_and_static_signatures_only_when_allowed() -> None:
    from bot.identity import identity_token_for, sign_identity_token
    from bot.settings import load_settings
    from connectors.app import AppInput

    strict = AppInput(identity_secret=SECRET, settings=load_settings({}))
    legacy = AppInput(identity_secret=SECRET, settings=load_settings({"SHOP_IDENTITY_STATIC_SIGNATURES": "true"}))
    token, static = identity_token_for(SECRET, "C10001"), sign_customer_id(SECRET, "C10001")
    expired = sign_identity_token(SECRET, "C10001", 1_000_000_000)
    for channel in (strict, legacy):
        assert channel.resolve_identity(token) == "C10001"
        assert channel.resolve_identity(expired) is None
        assert channel.resolve_identity(expired, "C10001", static) is None  # a presented token decides alone
        assert channel.resolve_identity(None, "C10001", sign_customer_id(SECRET, "C10002")) is None
        assert channel.resolve_identity(None, "C10001") is None
    assert strict.resolve_identity(None, "C10001", static) is None
    assert legacy.resolve_identity(None, "C10001", static) == "C10001"
