"""Shopper identity: signed customer ids and masking of personal data.

The shop's site or app backend signs the id of a logged-in customer with a secret it shares with
the assistant (``SHOP_IDENTITY_SECRET``)::

    signature = hex(HMAC-SHA256(SHOP_IDENTITY_SECRET, customer_id))

A conversation whose customer id does not come with a valid signature is anonymous. Every function
here is pure: no I/O, no settings lookup, so channels, actions and tests share exactly one rule.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Optional

CUSTOMER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Syntax of a customer id as the shop's backend issues it."""

SIGNATURE_HEX_LENGTH = hashlib.sha256().digest_size * 2
"""Length of a hex HMAC-SHA256 signature (64)."""

_HEX_PATTERN = re.compile(r"^[0-9a-fA-F]+$")
_MAINLAND_MOBILE = re.compile(r"^(?P<prefix>(?:\+|00)?86)?(?P<number>1\d{10})$")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")


def is_valid_customer_id(customer_id: Any) -> bool:
    """Tell whether a value is a syntactically valid customer id.

    Args:
        customer_id: any value, typically taken from a request.

    Returns:
        True for a string of 1 to 64 ASCII letters, digits, ``_`` or ``-``.
    """
    return isinstance(customer_id, str) and CUSTOMER_ID_PATTERN.fullmatch(customer_id) is not None


def sign_customer_id(secret: str, customer_id: str) -> str:
    """Sign a customer id the way the shop's backend does.

    Args:
        secret: the shared identity secret (``SHOP_IDENTITY_SECRET``).
        customer_id: the customer id to sign.

    Returns:
        The lowercase hex HMAC-SHA256 of the customer id under the secret.

    Raises:
        ValueError: the secret is empty or the customer id is not a valid customer id.
    """
    if not isinstance(secret, str) or not secret:
        raise ValueError("the identity secret must be a non-empty string")
    if not is_valid_customer_id(customer_id):
        raise ValueError("the customer id must match ^[A-Za-z0-9_-]{1,64}$")
    return hmac.new(secret.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def verify_signature(secret: str, customer_id: Any, signature: Any) -> bool:
    """Check a customer id's signature in constant time.

    Never raises: any malformed input (``None``, empty strings, non-strings, a signature that is
    not 64 hex characters, an invalid customer id, an empty secret) simply fails verification.

    Args:
        secret: the shared identity secret.
        customer_id: the claimed customer id.
        signature: the claimed hex HMAC-SHA256 signature of the customer id.

    Returns:
        True only when the signature is the customer id's signature under the secret.
    """
    try:
        if not isinstance(secret, str) or not secret:
            return False
        if not is_valid_customer_id(customer_id):
            return False
        if not isinstance(signature, str) or len(signature) != SIGNATURE_HEX_LENGTH:
            return False
        if _HEX_PATTERN.fullmatch(signature) is None:
            return False
        expected = sign_customer_id(secret, customer_id)
        return hmac.compare_digest(expected, signature.lower())
    except Exception:  # verification fails closed, never raises
        return False


def mask_phone(phone: Optional[Any]) -> str:
    """Mask a phone number for display and logs.

    A mainland mobile number keeps its first three and last four digits (``138****5678``), with
    any ``+86`` prefix kept. Other values of 8 characters or more keep their first three and last
    four characters; values of 5 to 7 characters keep only their last two; shorter values are
    masked entirely.

    Args:
        phone: the phone number; ``None`` and non-strings are accepted.

    Returns:
        The masked number; an empty string for ``None`` or an empty value.
    """
    if phone is None:
        return ""
    raw = str(phone).strip()
    if not raw:
        return ""
    compact = _PHONE_SEPARATORS.sub("", raw)
    match = _MAINLAND_MOBILE.fullmatch(compact)
    if match:
        number = match.group("number")
        prefix = match.group("prefix") or ""
        masked = f"{number[:3]}****{number[-4:]}"
        return f"{prefix} {masked}" if prefix else masked
    length = len(compact)
    if length <= 4:
        return "*" * length
    if length < 8:
        return "*" * (length - 2) + compact[-2:]
    return compact[:3] + "*" * (length - 7) + compact[-4:]


def sign_callback(secret: str, timestamp: str, body: bytes) -> str:
    """Signature of a pushed-message callback, as the shop's backend checks it.

    Args:
        secret: the shared identity secret (``SHOP_IDENTITY_SECRET``).
        timestamp: the ``X-Shop-Timestamp`` header (Unix seconds).
        body: the exact request body.

    Returns:
        The lowercase hex HMAC-SHA256 of ``{timestamp}.{body}`` under the secret.
    """
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
