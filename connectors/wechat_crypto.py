"""WeChat's message encryption (安全模式) for an official account's server.

Tencent's scheme, as documented for the 消息加解密 of official accounts:

- the key is ``base64decode(EncodingAESKey + "=")``, 32 bytes (AES-256); the IV is its first 16
  bytes; the mode is CBC with PKCS#7 padding to a multiple of 32 bytes;
- the plaintext is 16 random bytes, the length of the XML as 4 bytes in network order, the XML,
  then the app id; the ciphertext travels base64-encoded (``Encrypt``);
- ``msg_signature`` is the SHA-1 of the token, timestamp, nonce and ``Encrypt`` sorted and joined.

Incoming messages carry ``<Encrypt>`` and the query arguments ``encrypt_type=aes`` and
``msg_signature``; passive replies go back in the envelope ``<xml><Encrypt/><MsgSignature/>
<TimeStamp/><Nonce/></xml>``; in URL verification the ``echostr`` is encrypted the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
from dataclasses import dataclass, field
from typing import Optional, Union

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK_BYTES = 32
"""PKCS#7 block size of WeChat's padding (not AES's 16)."""

RANDOM_BYTES = 16
"""Random bytes in front of every plaintext."""

ENCODING_AES_KEY_PATTERN = re.compile(r"^[A-Za-z0-9+/]{43}$")
"""An EncodingAESKey as the account's settings show it: 43 characters of base64."""

_ENCRYPT_PATTERN = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class WeChatCryptoError(ValueError):
    """An encrypted message, reply or echostr that cannot be accepted."""


class InvalidSignature(WeChatCryptoError):
    """``msg_signature`` does not match the token, timestamp, nonce and ciphertext."""


class InvalidAppId(WeChatCryptoError):
    """The plaintext decrypted but names another app id: another account's message."""


class InvalidCiphertext(WeChatCryptoError):
    """Not base64, not whole AES blocks, bad padding or a length that does not fit."""


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """The AES-256 key of an EncodingAESKey.

    Args:
        encoding_aes_key: the 43 characters the account's settings show.

    Returns:
        The 32-byte key, ``base64decode(encoding_aes_key + "=")``.

    Raises:
        ValueError: not 43 base64 characters.
    """
    if not isinstance(encoding_aes_key, str) or ENCODING_AES_KEY_PATTERN.fullmatch(encoding_aes_key) is None:
        raise ValueError("the EncodingAESKey must be 43 characters of base64 (A-Z, a-z, 0-9, + and /)")
    return base64.b64decode(encoding_aes_key + "=")


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeChat's ``msg_signature``: SHA-1 of the token, timestamp, nonce and ciphertext, sorted and joined.

    Args:
        token: the account's server token.
        timestamp: the ``timestamp`` query argument (or ``TimeStamp`` of a reply).
        nonce: the ``nonce`` query argument (or ``Nonce`` of a reply).
        encrypt: the base64 ciphertext (``Encrypt``, or the encrypted ``echostr``).

    Returns:
        The lowercase hex digest.
    """
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, encrypt))).encode("utf-8")).hexdigest()


def pkcs7_pad(data: bytes, block: int = BLOCK_BYTES) -> bytes:
    """``data`` padded with PKCS#7 to a multiple of ``block`` bytes (always at least one byte of padding)."""
    count = block - len(data) % block
    return data + bytes([count]) * count


def pkcs7_unpad(data: bytes, block: int = BLOCK_BYTES) -> bytes:
    """``data`` without its PKCS#7 padding.

    Raises:
        InvalidCiphertext: the padding is not 1 to ``block`` bytes of its own length.
    """
    count = data[-1] if data else 0
    if not 1 <= count <= block or count > len(data) or data[-count:] != bytes([count]) * count:
        raise InvalidCiphertext("bad padding")
    return data[:-count]


@dataclass(frozen=True)
class MessageCrypto:
    """Encrypts and decrypts the messages of one official account.

    Attributes:
        token: the account's server token (``WECHAT_TOKEN``).
        key: the 32-byte AES key (:func:`decode_aes_key` of ``WECHAT_ENCODING_AES_KEY``).
        appid: the account's app id (``WECHAT_APPID``), the last part of every plaintext.
    """

    token: str
    key: bytes = field(repr=False)
    appid: str

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise ValueError("the AES key must be 32 bytes")

    @classmethod
    def from_settings(cls, token: str, encoding_aes_key: str, appid: str) -> MessageCrypto:
        """The crypto of an account as configured.

        Args:
            token: ``WECHAT_TOKEN``.
            encoding_aes_key: ``WECHAT_ENCODING_AES_KEY`` (43 characters).
            appid: ``WECHAT_APPID``.

        Raises:
            ValueError: the EncodingAESKey is malformed.
        """
        return cls(token, decode_aes_key(encoding_aes_key), appid)

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, plaintext: Union[str, bytes], random: Optional[bytes] = None) -> str:
        """The base64 ciphertext of one message.

        Args:
            plaintext: the XML (or echostr); text is encoded as UTF-8.
            random: the 16 leading random bytes (fresh ones when omitted).

        Returns:
            ``base64(AES-CBC(random + len(plaintext) + plaintext + appid))``.
        """
        body = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        prefix = os.urandom(RANDOM_BYTES) if random is None else random
        if len(prefix) != RANDOM_BYTES:
            raise ValueError("the random prefix must be 16 bytes")
        data = pkcs7_pad(prefix + struct.pack(">I", len(body)) + body + self.appid.encode("utf-8"))
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt: str) -> bytes:
        """The plaintext of one base64 ciphertext, checked to be this account's.

        Args:
            encrypt: ``Encrypt`` of a message (or an encrypted ``echostr``).

        Returns:
            The XML (or echostr) bytes.

        Raises:
            InvalidCiphertext: not base64, not whole blocks, bad padding or length.
            InvalidAppId: the plaintext ends with another app id.
        """
        text = encrypt.strip() if isinstance(encrypt, str) else ""
        if not text or _ENCRYPT_PATTERN.fullmatch(text) is None:
            raise InvalidCiphertext("not base64")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as error:
            raise InvalidCiphertext("not base64") from error
        if not raw or len(raw) % 16:
            raise InvalidCiphertext("not whole AES blocks")
        decryptor = self._cipher().decryptor()
        content = pkcs7_unpad(decryptor.update(raw) + decryptor.finalize())
        if len(content) < RANDOM_BYTES + 4:
            raise InvalidCiphertext("too short")
        (length,) = struct.unpack(">I", content[RANDOM_BYTES:RANDOM_BYTES + 4])
        start = RANDOM_BYTES + 4
        if length > len(content) - start:
            raise InvalidCiphertext("the length does not fit")
        if not hmac.compare_digest(content[start + length:], self.appid.encode("utf-8")):
            raise InvalidAppId("another app id")
        return content[start:start + length]

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """:func:`msg_signature` under this account's token."""
        return msg_signature(self.token, timestamp, nonce, encrypt)

    def verify(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> bool:
        """Whether ``signature`` is the ``msg_signature`` of the ciphertext (constant-time)."""
        if not isinstance(signature, str):
            return False
        return hmac.compare_digest(self.signature(timestamp, nonce, encrypt), signature.lower())

    def open(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> bytes:
        """Check the ``msg_signature`` of a ciphertext, then decrypt it.

        Raises:
            InvalidSignature: the signature does not match.
            InvalidCiphertext: see :meth:`decrypt`.
            InvalidAppId: see :meth:`decrypt`.
        """
        if not self.verify(signature, timestamp, nonce, encrypt):
            raise InvalidSignature("msg_signature does not match")
        return self.decrypt(encrypt)

    def seal(self, xml: str, timestamp: str, nonce: str) -> str:
        """A passive reply in WeChat's encrypted envelope.

        Args:
            xml: the plaintext reply.
            timestamp: ``TimeStamp`` of the envelope (Unix seconds).
            nonce: ``Nonce`` of the envelope (letters, digits, ``_`` or ``-``).

        Returns:
            ``<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>``.
        """
        encrypt = self.encrypt(xml)
        return (f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
                f"<MsgSignature><![CDATA[{self.signature(timestamp, nonce, encrypt)}]]></MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>")
