"""WeChat's official-account protocol, without I/O: signatures, message XML in and out, conversation
ids, numbered options for buttons and the text size limit. :mod:`connectors.wechat` is the channel
that uses it, :mod:`connectors.wechat_api` the API client."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple
from xml.etree import ElementTree

import yaml

from bot.identity import purpose_key

logger = logging.getLogger(__name__)

TEXTS_FILE = Path(__file__).with_name("texts.yml")
TEXTS: Dict[str, str] = {str(key): str(text) for key, text in yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))["wechat"].items()}
"""What the shopper reads from the channel itself (``connectors/texts.yml``)."""

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted, in bytes."""

TIMESTAMP_WINDOW_S = 300
"""How far a request's timestamp may be from now (either way), seconds."""

MAX_TEXT_BYTES = 2000
"""Longest text in one WeChat message (passive reply or customer-service message), UTF-8 bytes."""

OPENID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_NONCE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SIGNATURE_PATTERN = re.compile(r"^[0-9a-fA-F]{40}$")
_OPTION_PATTERN = re.compile(r"^\d{1,2}$")
_LEADING_NUMBER = re.compile(r"^\s*(\d{1,2})(?!\d)")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DECLARATIONS = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _ascii_digits(text: str) -> bool:
    """Whether ``text`` is a number in ASCII digits (``str.isdigit`` alone also takes ``²`` or ``٣``, which
    ``int`` refuses or reads as another number)."""
    return text.isascii() and text.isdigit()


SILENT_EVENTS = frozenset({"unsubscribe", "location", "view", "view_miniprogram", "templatesendjobfinish", "masssendjobfinish"})
"""Events that are not the shopper talking to the account: acknowledged without a reply."""


class InvalidMessage(ValueError):
    """A POST body that is not a WeChat message."""


# ----------------------------------------------------------------------------- the protocol


def wechat_signature(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's request signature: SHA-1 of the token, timestamp and nonce sorted and joined.

    Args:
        token: the account's server token.
        timestamp: the ``timestamp`` query argument.
        nonce: the ``nonce`` query argument.

    Returns:
        The lowercase hex digest.
    """
    return hashlib.sha1("".join(sorted((token, timestamp, nonce))).encode("utf-8")).hexdigest()


def conversation_id(appid: str, openid: str) -> str:
    """The conversation id of an OpenID: ``wx-`` and 32 hex digits of SHA-256(appid:openid)."""
    return "wx-" + hashlib.sha256(f"{appid}:{openid}".encode()).hexdigest()[:32]


def binding_signature(secret: str, action: str, openid: str, customer_id: str, timestamp: str) -> str:
    """Signature of a binding request from the shop: ``hex(HMAC-SHA256(key, message))``.

    The key is the ``wechat-bind`` key derived from the secret (:func:`bot.identity.purpose_key`),
    for binding and unbinding alike: the shop's backend configures that key, not the secret itself.

    Args:
        secret: ``SHOP_IDENTITY_SECRET``.
        action: ``bind`` or ``unbind``.
        openid: the shopper's OpenID.
        customer_id: the customer id (empty to unbind).
        timestamp: Unix time in seconds, as sent.

    Returns:
        The lowercase hex signature of ``wechat-{action}\\n{openid}\\n{customer_id}\\n{timestamp}``.

    Raises:
        ValueError: the secret is empty.
    """
    message = f"wechat-{action}\n{openid}\n{customer_id}\n{timestamp}"
    return hmac.new(purpose_key(secret, "wechat-bind"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_message(body: bytes) -> Dict[str, str]:
    """The fields of a WeChat XML message (direct children of ``<xml>``).

    Args:
        body: the POST body.

    Returns:
        Field name → text.

    Raises:
        InvalidMessage: not well-formed XML, a DTD or entity declaration, or a root other than ``xml``.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidMessage("not UTF-8") from error
    if not text.strip():
        raise InvalidMessage("empty body")
    if _DECLARATIONS.search(text):
        raise InvalidMessage("declarations are not allowed")
    try:
        root = ElementTree.fromstring(text)
    except (ElementTree.ParseError, ValueError) as error:
        raise InvalidMessage("not well-formed XML") from error
    if root.tag != "xml":
        raise InvalidMessage("the root element must be <xml>")
    return {child.tag: child.text or "" for child in root if isinstance(child.tag, str)}


@dataclass(frozen=True)
class InboundMessage:
    """One message or event WeChat posted.

    Attributes:
        account: ``ToUserName``, the account's original id (``gh_...``).
        openid: ``FromUserName``, the shopper's OpenID.
        create_time: ``CreateTime``.
        msg_type: ``MsgType`` in lower case (``text``, ``event``, ``image`` ...).
        content: ``Content`` of a text message.
        msg_id: ``MsgId`` (empty for events).
        event: ``Event`` in lower case (events only).
    """

    account: str
    openid: str
    create_time: str
    msg_type: str
    content: str = ""
    msg_id: str = ""
    event: str = ""

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> InboundMessage:
        """Validate the parsed fields.

        Raises:
            InvalidMessage: a required field is missing or malformed.
        """
        account = fields.get("ToUserName", "").strip()
        openid = fields.get("FromUserName", "").strip()
        create_time = fields.get("CreateTime", "").strip()
        msg_type = fields.get("MsgType", "").strip().lower()
        if not account or len(account) > 64 or OPENID_PATTERN.fullmatch(openid) is None:
            raise InvalidMessage("ToUserName or FromUserName")
        if not _ascii_digits(create_time) or len(create_time) > 12 or not msg_type or len(msg_type) > 32:
            raise InvalidMessage("CreateTime or MsgType")
        if msg_type == "event":
            event = fields.get("Event", "").strip().lower()
            if not event or len(event) > 64:
                raise InvalidMessage("Event")
            return cls(account, openid, create_time, msg_type, event=event)
        msg_id = fields.get("MsgId", "").strip()
        if not _ascii_digits(msg_id) or len(msg_id) > 32:
            raise InvalidMessage("MsgId")
        if msg_type == "text" and "Content" not in fields:
            raise InvalidMessage("Content")
        return cls(account, openid, create_time, msg_type, content=fields.get("Content", ""), msg_id=msg_id)

    def dedup_id(self) -> str:
        """What identifies this message across WeChat's retries: ``MsgId``, or a hash of sender, time and event."""
        if self.msg_id:
            return self.msg_id
        return "e" + hashlib.sha256(f"{self.openid}|{self.create_time}|{self.event}".encode()).hexdigest()[:32]


def _xml_text(value: str) -> str:
    return _XML_ILLEGAL.sub("", value)


def cdata(value: str) -> str:
    """A CDATA section holding ``value`` (``]]>`` split across two sections, illegal characters dropped)."""
    return "<![CDATA[" + _xml_text(value).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str, now: Optional[int] = None) -> str:
    """A passive text reply (被动回复文本消息).

    Args:
        to_user: the shopper's OpenID.
        from_user: the account's original id (the message's ``ToUserName``).
        content: the text.
        now: ``CreateTime``; the current time when omitted.
    """
    created = int(time.time()) if now is None else now
    return (
        f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{cdata(content)}</Content></xml>"
    )


# ----------------------------------------------------------------------------- rendering


def combine_replies(messages: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The bot's messages of one turn as one WeChat message: texts joined, buttons kept in order.

    Args:
        messages: Rasa's REST output (``text``, ``buttons``, ``image`` ...).

    Returns:
        ``{"text", "buttons"}``, or None when the turn said nothing a text message can carry.
    """
    parts: List[str] = []
    buttons: List[Dict[str, Any]] = []
    for message in messages:
        if message.get("text"):
            parts.append(str(message["text"]))
        if message.get("image"):
            parts.append(f"图片：{message['image']}")
        buttons.extend(b for b in message.get("buttons") or [] if isinstance(b, dict) and b.get("title"))
    if not parts and not buttons:
        return None
    combined: Dict[str, Any] = {"text": "\n\n".join(parts)}
    if buttons:
        combined["buttons"] = buttons
    return combined


def option_keys(buttons: List[Dict[str, Any]]) -> List[str]:
    """The number the shopper replies for each button.

    Buttons whose titles all start with distinct numbers (「5分 非常满意」…「1分 非常不满意」) keep
    those numbers, so replying 1 means one point; other buttons are numbered 1, 2, 3 in order.
    """
    leading = [_LEADING_NUMBER.match(str(b.get("title", ""))) for b in buttons]
    numbers = [match.group(1).lstrip("0") or "0" for match in leading if match]
    if len(numbers) == len(buttons) and len(set(numbers)) == len(numbers):
        return numbers
    return [str(index) for index in range(1, len(buttons) + 1)]


def render(message: Mapping[str, Any], agent_prefix: bool = False) -> Tuple[str, Dict[str, str]]:
    """The text the shopper reads for one message, and the numbered options it offers.

    Args:
        message: ``text`` and optional ``buttons`` (and, for pushed messages, ``from``/``agent``).
        agent_prefix: prefix agents' messages with 「【人工客服 name】」.

    Returns:
        The text and the options (number → payload, or the title when a button has no payload).
    """
    text = str(message.get("text") or "")
    if agent_prefix and message.get("from") == "agent":
        name = str(message.get("agent") or "").strip()
        text = f"【人工客服 {name}】{text}" if name else f"【人工客服】{text}"
    buttons = [b for b in message.get("buttons") or [] if isinstance(b, Mapping) and b.get("title")]
    options: Dict[str, str] = {}
    if buttons:
        lines = [TEXTS["choose"]]
        for key, button in zip(option_keys([dict(b) for b in buttons]), buttons, strict=True):
            lines.append(f"{key}. {button['title']}")
            options[key] = str(button.get("payload") or button["title"])
        text = f"{text}\n\n" + "\n".join(lines) if text else "\n".join(lines)
    return text, options


def split_text(text: str, max_bytes: int = MAX_TEXT_BYTES) -> List[str]:
    """Cut a text into pieces of at most ``max_bytes`` UTF-8 bytes, at line ends where possible."""
    pieces: List[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode("utf-8")) > max_bytes:
            cut = max_bytes // 4 or 1
            while len(line[: cut + 1].encode("utf-8")) <= max_bytes:
                cut += 1
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:cut])
            line = line[cut:]
        if len((current + line).encode("utf-8")) > max_bytes:
            pieces.append(current)
            current = ""
        current += line
    if current:
        pieces.append(current)
    return [piece.strip("\n") for piece in pieces if piece.strip()]
