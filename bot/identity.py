"""Shopper identity: expiring identity tokens, purpose keys, channel-signed metadata.

The shop's site or app backend proves which customer is logged in with an **identity token** made
with a secret it shares with the assistant (``SHOP_IDENTITY_SECRET``)::

    identity_token = "<customer_id>.<expires_unix>.<hex HMAC-SHA256(SHOP_IDENTITY_SECRET,
                      "identity|<customer_id>|<expires_unix>")>"

A token is refused once expired and when it expires more than 24 hours ahead. The older static
``signature = hex(HMAC-SHA256(SHOP_IDENTITY_SECRET, customer_id))`` never expires; the channels
accept it only when ``SHOP_IDENTITY_STATIC_SIGNATURES=true``.

Every other signature uses a key of its own, derived from the configured secret
(:func:`purpose_key`): pushed-message callbacks, WeChat bindings, anonymous conversation tokens,
the identity a channel hands the action server with each message, and tracker encryption. A key
leaked from one purpose opens none of the others.

A conversation whose customer id does not come with a valid token is anonymous. Every function
here is pure: no I/O, no settings lookup, so channels, actions and tests share exactly one rule.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any, Mapping, Optional

CUSTOMER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Syntax of a customer id as the shop's backend issues it."""

SIGNATURE_HEX_LENGTH = hashlib.sha256().digest_size * 2
"""Length of a hex HMAC-SHA256 signature (64)."""

_HEX_PATTERN = re.compile(r"^[0-9a-fA-F]+$")


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


PURPOSES = ("callback", "wechat-bind", "conversation", "channel-identity", "tracker", "verification")
"""What a key derived from the configured secret may be used for (:func:`purpose_key`)."""


def purpose_key(secret: str, purpose: str) -> bytes:
    """The key of one purpose, derived from the configured secret.

    ``key = HMAC-SHA256(secret, "key|<purpose>")``: a shop backend that checks callbacks or signs
    WeChat bindings computes the same key once.

    Args:
        secret: the configured secret (``SHOP_IDENTITY_SECRET``).
        purpose: one of :data:`PURPOSES`.

    Returns:
        The 32-byte key.

    Raises:
        ValueError: the secret is empty or the purpose is unknown.
    """
    if not isinstance(secret, str) or not secret:
        raise ValueError("the identity secret must be a non-empty string")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    return hmac.new(secret.encode("utf-8"), f"key|{purpose}".encode("ascii"), hashlib.sha256).digest()


def purpose_key_hex(secret: str, purpose: str) -> str:
    """:func:`purpose_key` as lowercase hex, the form a shop's backend configures."""
    return purpose_key(secret, purpose).hex()


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def _same_hex(expected: str, given: Any) -> bool:
    return (isinstance(given, str) and len(given) == len(expected) and _HEX_PATTERN.fullmatch(given) is not None
            and hmac.compare_digest(expected, given.lower()))


def sign_callback(secret: str, timestamp: str, body: bytes) -> str:
    """Signature of a pushed-message callback, as the shop's backend checks it.

    Args:
        secret: the configured secret (``SHOP_IDENTITY_SECRET``).
        timestamp: the ``X-Shop-Timestamp`` header (Unix seconds).
        body: the exact request body.

    Returns:
        The lowercase hex HMAC-SHA256 of ``{timestamp}.{body}`` under the ``callback`` key.
    """
    return hmac.new(purpose_key(secret, "callback"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


IDENTITY_TOKEN_MAX_AHEAD_S = 24 * 3600
"""A token expiring further ahead than this is refused: a shop backend issues short-lived tokens."""

MAX_IDENTITY_TOKEN_CHARS = 160


def sign_identity_token(secret: str, customer_id: str, expires_unix: int) -> str:
    """An identity token, as the shop's backend makes it for a logged-in customer.

    Args:
        secret: the shared identity secret (``SHOP_IDENTITY_SECRET``).
        customer_id: the logged-in customer.
        expires_unix: when the token stops being accepted, Unix seconds.

    Returns:
        ``<customer_id>.<expires_unix>.<hex HMAC-SHA256(secret, "identity|<customer_id>|<expires_unix>")>``.

    Raises:
        ValueError: the secret is empty or the customer id is not a valid customer id.
    """
    if not isinstance(secret, str) or not secret:
        raise ValueError("the identity secret must be a non-empty string")
    if not is_valid_customer_id(customer_id) or "." in customer_id:
        raise ValueError("the customer id must match ^[A-Za-z0-9_-]{1,64}$")
    expires = int(expires_unix)
    return f"{customer_id}.{expires}.{_mac(secret.encode('utf-8'), f'identity|{customer_id}|{expires}')}"


def identity_token_for(secret: str, customer_id: str, ttl_s: int = 3600, now: Optional[float] = None) -> str:
    """A token for ``customer_id`` valid ``ttl_s`` seconds from ``now`` (the shop backend's usual call)."""
    return sign_identity_token(secret, customer_id, int(now if now is not None else time.time()) + ttl_s)


def verify_identity_token(secret: str, token: Any, now: Optional[float] = None) -> Optional[str]:
    """The customer id an identity token proves, or None.

    Never raises: a malformed, forged, expired or too far-ahead token is simply refused.

    Args:
        secret: the shared identity secret.
        token: the token the client sent.
        now: the current Unix time (the clock when omitted).

    Returns:
        The customer id, or None.
    """
    try:
        if not isinstance(secret, str) or not secret or not isinstance(token, str):
            return None
        if len(token) > MAX_IDENTITY_TOKEN_CHARS or token.count(".") != 2:
            return None
        customer_id, expires_raw, mac = token.split(".")
        if not is_valid_customer_id(customer_id) or not expires_raw.isascii() or not expires_raw.isdigit():
            return None
        expires = int(expires_raw)
        current = time.time() if now is None else now
        if expires <= current or expires > current + IDENTITY_TOKEN_MAX_AHEAD_S:
            return None
        expected = _mac(secret.encode("utf-8"), f"identity|{customer_id}|{expires}")
        return customer_id if _same_hex(expected, mac) else None
    except Exception:  # verification fails closed, never raises
        return None


def conversation_token(secret: str, sender_id: str) -> str:
    """The token that proves an anonymous shopper started the conversation ``sender_id``.

    Returned to the client with the conversation's first answer; every later request for the
    conversation must carry it. It is derived from the conversation id under the ``conversation``
    key, so no state is kept and no other conversation's token can be made from it.
    """
    return _mac(purpose_key(secret, "conversation"), f"conversation|{sender_id}")


def verify_conversation_token(secret: str, sender_id: str, token: Any) -> bool:
    """Whether ``token`` is the conversation token of ``sender_id`` (constant time, never raises)."""
    try:
        return _same_hex(conversation_token(secret, sender_id), token)
    except Exception:
        return False


CHANNEL_IDENTITY_TTL_S = 15 * 60
"""How long the identity a channel signs into a message's metadata is accepted by the actions."""


def sign_channel_identity(secret: str, sender_id: str, customer_id: Optional[str], expires_unix: int) -> str:
    """The channel's signature of who sent a message, checked by every action that reveals or changes data.

    Args:
        secret: the configured secret.
        sender_id: the conversation id.
        customer_id: the verified customer id, None for an anonymous shopper.
        expires_unix: until when the actions accept it.

    Returns:
        Hex HMAC-SHA256 of ``channel-identity|<sender>|<customer or ''>|<expires>`` under the
        ``channel-identity`` key.
    """
    return _mac(purpose_key(secret, "channel-identity"), f"channel-identity|{sender_id}|{customer_id or ''}|{int(expires_unix)}")


def channel_identity(secret: str, sender_id: str, customer_id: Optional[str], now: Optional[float] = None) -> dict:
    """The ``identity`` entry a channel puts in a message's metadata.

    Returns:
        ``{"customer_id", "expires", "signature"}`` (customer None for an anonymous shopper).
    """
    expires = int(now if now is not None else time.time()) + CHANNEL_IDENTITY_TTL_S
    return {"customer_id": customer_id, "expires": expires,
            "signature": sign_channel_identity(secret, sender_id, customer_id, expires)}


def verify_channel_identity(secret: str, sender_id: Any, identity: Any, now: Optional[float] = None) -> Optional[str]:
    """The verified customer id of a message's channel-signed identity, or None.

    Args:
        secret: the configured secret.
        sender_id: the conversation the tracker is for.
        identity: ``metadata["identity"]`` of the latest message.
        now: the current Unix time.

    Returns:
        The customer id when the channel signed it for this conversation and it has not expired;
        None for an anonymous shopper and for anything forged, expired or malformed.
    """
    try:
        if not isinstance(identity, Mapping) or not isinstance(sender_id, str) or not secret:
            return None
        customer_id, expires = identity.get("customer_id"), identity.get("expires")
        if not is_valid_customer_id(customer_id) or not isinstance(expires, int) or isinstance(expires, bool):
            return None
        current = time.time() if now is None else now
        if expires <= current or expires > current + CHANNEL_IDENTITY_TTL_S + 60:
            return None
        expected = sign_channel_identity(secret, sender_id, customer_id, expires)
        return customer_id if _same_hex(expected, identity.get("signature")) else None
    except Exception:
        return None


def sign_verified_order(secret: str, sender_id: str, order_id: str) -> str:
    """Proof, kept with the conversation, that its anonymous shopper proved ``order_id``.

    Stored beside the order id in the ``verified_order_id`` slot (``<order_id>~<proof>``) so that
    a tracker assembled by anyone but the action server opens no order.
    """
    return _mac(purpose_key(secret, "verification"), f"verified-order|{sender_id}|{order_id}")[:32]


def verified_order_slot_value(secret: str, sender_id: str, order_id: str) -> str:
    """The ``verified_order_id`` slot value for a proven order: ``<order_id>~<proof>``."""
    return f"{order_id}~{sign_verified_order(secret, sender_id, order_id)}"


def verified_order_from_slot(secret: str, sender_id: Any, value: Any) -> Optional[str]:
    """The order id of a ``verified_order_id`` slot value whose proof is right, else None."""
    try:
        if not isinstance(value, str) or not isinstance(sender_id, str) or value.count("~") != 1:
            return None
        order_id, proof = value.split("~")
        return order_id if order_id and _same_hex(sign_verified_order(secret, sender_id, order_id), proof) else None
    except Exception:
        return None
