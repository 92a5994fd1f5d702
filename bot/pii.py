"""Personal data masked before it is stored or shown: one set of rules for the whole assistant.

The tracker store encrypts events (:mod:`bot.tracker_store`); everything else that keeps a
shopper's words or CRM data outside the CRM (handoff transcripts, summaries, records, callback
tickets, agents' notes) keeps them masked with these rules:

- mobile phones (``13812345678``, ``138 1234 5678``, ``138-1234-5678``, ``+86 13812345678``) →
  ``138****5678``; landlines (``021-12345678``) → ``021****5678``;
- phone tails where the shopper gives one (「尾号5678」, a message of just four digits: the NLU's
  rule, :mod:`bot.nlu.patterns`) → ``****``;
- Chinese ID numbers (18 characters with a birth date) keep their first 3 and last 4 characters;
- bank-card-like digit runs (16–19 digits, together or in groups of four) keep their last 4;
- emails keep their first character and the domain: ``z***@example.com``;
- street addresses keep the province, city and district and lose the rest:
  ``北京市朝阳区建国路88号3单元502`` → ``北京市朝阳区****``;
- names keep the surname (``张三丰`` → ``张**``) where a name is known as a name: a CRM field, a
  name passed in, or a labelled field (「收货人：王芳」); names are never guessed from free text.

Order numbers and tracking numbers (the shapes :func:`bot.nlu.patterns.extract_identifiers`
reads) are never masked: agents need them. Masking changes characters, never drops a message, and
is idempotent (masking masked text changes nothing). Every function here is pure.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, List, Optional, Tuple

from bot.nlu.patterns import extract_identifiers

MASK = "****"
"""What replaces a phone's middle digits, a phone tail and the street part of an address."""

_HAN = "\u4e00-\u9fff"
_HAN_CHAR = re.compile(f"[{_HAN}]")
_FULL_WIDTH = str.maketrans(
    {**{chr(0xFF10 + i): str(i) for i in range(10)},
     **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
     **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
     "\u3000": " ", "－": "-", "＋": "+", "＠": "@", "．": ".", "（": "(", "）": ")", "＃": "#"}
)
"""Full-width digits, letters and signs read as ASCII (one character for one, so spans keep their places)."""

_MAINLAND_MOBILE = re.compile(r"^(?P<prefix>(?:\+|00)?86)?(?P<number>1\d{10})$")
_MASKED_MOBILE = re.compile(r"^(?P<prefix>(?:\+|00)?86)?(?P<number>1\d{2}\*{4}\d{4})$")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")

_MOBILE_IN_TEXT = re.compile(r"(?<![0-9A-Za-z+])(?:(?:\+|00)?86[ \t-]?)?1[3-9]\d(?:[ \t-]?\d){8}(?![0-9])")
_LANDLINE_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(?:\(0\d{2,3}\)|0\d{2,3})[ \t-]?\d{3,4}[ \t-]?\d{4}(?![0-9])")
_ID_NUMBER = re.compile(
    r"(?<![0-9A-Za-z])\d{6}[ -]?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])[ -]?\d{3}[\dXx](?![0-9A-Za-z])"
)
_CARD = re.compile(r"(?<![0-9A-Za-z])(?:\d{16,19}|\d{4}(?:[ -]\d{4}){3}(?:[ -]?\d{1,3})?)(?![0-9A-Za-z])")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})")

_STREET = re.compile("街道|大街|大道|胡同|小区|花园|公寓|大厦|号院|新村|路|街|巷|弄|村|镇|乡|苑")
"""What ends the name of a street, a village or an estate: where the part of an address that is masked starts."""
_HOUSE_PART = r"[0-9A-Za-z一二三四五六七八九十百零〇]{1,8}[ \t]?(?:号楼|号院|号|弄|栋|幢|座|单元|室|层|楼|户|组)"
_HOUSE = re.compile(_HOUSE_PART)
_ADDRESS_REST = re.compile(
    rf"(?:[ \t]?(?:{_HOUSE_PART}|[0-9A-Za-z]+(?:[-#][0-9A-Za-z]+)*)|[{_HAN}]{{1,8}}?(?:{_STREET.pattern}))*"
)
_HOUSE_ONLY = re.compile(rf"(?:{_HOUSE_PART}){{2,}}[0-9A-Za-z]*")
"""A building, unit and room without a street (「5栋2单元301」): two numbered parts at least."""
_ADMIN_ENDS = "省市区县旗州盟"
_NOT_DISTRICT = "小社校园景商厂营军"
"""Before 区 these make an estate or a campus (小区, 校区), not a district."""
_ADDRESS_CUES = ("在", "到", "址", "是", "住", "于", "至", "的", "家", "往", "改成", "改为", "换成", "变成")
"""Words after which a street's name starts, when no city or district comes before it."""
_MAX_STREET_NAME = 10
_MAX_ADDRESS_REST = 40
"""Longest part of an address read after the street's name (numbers, building, unit, room)."""

_NAME_LABEL = re.compile(rf"(?:收货人|收件人|联系人|姓名)[:：\s]\s*([{_HAN}·]{{2,4}})(?![{_HAN}])")

Span = Tuple[int, int, Optional[str]]
"""A found piece of text: start, end, and its replacement (None: kept as it is)."""


def mask_phone(phone: Optional[Any]) -> str:
    """Mask a phone number for display and storage.

    A mainland mobile number keeps its first three and last four digits (``138****5678``), with
    any ``+86`` prefix kept. Other values of 8 characters or more keep their first three and last
    four characters; values of 5 to 7 characters keep only their last two; shorter values are
    masked entirely. A masked number stays as it is.

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
    masked_already = _MASKED_MOBILE.fullmatch(compact)
    if match or masked_already:
        found = match or masked_already
        assert found is not None
        number = found.group("number")
        prefix = found.group("prefix") or ""
        masked = f"{number[:3]}****{number[-4:]}"
        return f"{prefix} {masked}" if prefix else masked
    length = len(compact)
    if length <= 4:
        return "*" * length
    if length < 8:
        return "*" * (length - 2) + compact[-2:]
    return compact[:3] + "*" * (length - 7) + compact[-4:]


def mask_name(name: Optional[Any]) -> str:
    """Mask a person's name, keeping the surname: 张伟 → 张*, 张三丰 → 张**, 欧阳娜娜 → 欧***.

    Args:
        name: a name known as a name (a CRM field, a labelled field); ``None`` is accepted.

    Returns:
        The masked name; ``*`` for a one-character name; empty for no name.
    """
    if name is None:
        return ""
    text = str(name).strip()
    if not text:
        return ""
    return text[0] + "*" * (len(text) - 1) if len(text) > 1 else "*"


def _keep_ends(value: str, head: int, tail: int) -> str:
    """Mask every letter and digit of ``value`` but the first ``head`` and last ``tail`` ones; separators stay."""
    positions = [i for i, char in enumerate(value) if char.isalnum()]
    hidden = set(positions[head:len(positions) - tail] if tail else positions[head:])
    return "".join("*" if i in hidden else char for i, char in enumerate(value))


def mask_id_number(value: str) -> str:
    """A Chinese ID number with its first 3 and last 4 characters: ``110***********1234``."""
    return _keep_ends(value, 3, 4)


def mask_card(value: str) -> str:
    """A bank card number with its last 4 digits: ``************7890`` (group separators stay)."""
    return _keep_ends(value, 0, 4)


def mask_email(value: str) -> str:
    """An email with its first character and domain: ``z***@example.com``; other text stays as it is."""
    match = _EMAIL.fullmatch(value.strip())
    if not match:
        return value
    return f"{match.group(1)[0]}***@{match.group(2)}"


def _overlaps(start: int, end: int, taken: Iterable[Span]) -> bool:
    return any(start < other_end and other_start < end for other_start, other_end, _ in taken)


def _take(taken: List[Span], start: int, end: int, replacement: Optional[str]) -> None:
    if start < end and not _overlaps(start, end, taken):
        taken.append((start, end, replacement))


def _address_start(text: str, street_start: int) -> Tuple[int, bool]:
    """Where the name of the street ending at ``street_start`` begins, and whether a city or district comes before it."""
    index = street_start
    while index > 0 and street_start - index < _MAX_STREET_NAME:
        before = text[index - 1]
        if before in _ADMIN_ENDS and not (before == "区" and index >= 2 and text[index - 2] in _NOT_DISTRICT):
            return index, True
        if not _HAN_CHAR.fullmatch(before) or text.endswith(_ADDRESS_CUES, 0, index):
            return index, False
        index -= 1
    return index, False


def _cut(text: str, start: int, end: int, taken: List[Span]) -> int:
    """The end of a piece starting at ``start``: before anything already found, without trailing blanks."""
    for other_start, _, _ in taken:
        if start < other_start < end:
            end = other_start
    while end > start and text[end - 1] in " \t":
        end -= 1
    return end


def _addresses(text: str, taken: List[Span]) -> None:
    """Take the street part of each address in ``text`` (the province, city and district stay)."""
    position = 0
    while True:
        street = _STREET.search(text, position)
        if street is None:
            break
        position = street.end()
        start, after_district = _address_start(text, street.start())
        if start == street.start() or _overlaps(start, street.end(), taken):
            continue
        rest = _ADDRESS_REST.match(text, street.end(), street.end() + _MAX_ADDRESS_REST)
        end = _cut(text, start, rest.end() if rest else street.end(), taken)
        if end <= street.start():
            continue
        if after_district or _HOUSE.search(text, street.end(), end):
            _take(taken, start, end, MASK)
            position = max(position, end)
    for house in _HOUSE_ONLY.finditer(text):
        if re.search("号楼|栋|幢|座|单元|室", house.group(0)):
            end = _cut(text, house.start(), house.end(), taken)
            _take(taken, house.start(), end, MASK)


def mask_text(text: Optional[str], names: Iterable[Optional[str]] = ()) -> str:
    """Mask the personal data in a free text (a shopper's message, a bot's answer, a note).

    Args:
        text: the text; ``None`` gives an empty string.
        names: names known to be the shopper's or a receiver's (CRM fields), masked wherever they
            occur; names of one character are ignored.

    Returns:
        The text with phones, phone tails, ID numbers, bank cards, emails, street addresses and
        known or labelled names masked; order and tracking numbers untouched.
    """
    if not text:
        return ""
    original = str(text)
    ascii_text = original.translate(_FULL_WIDTH)
    identifiers = extract_identifiers(ascii_text)
    taken: List[Span] = []
    for match in _EMAIL.finditer(ascii_text):
        _take(taken, match.start(), match.end(), mask_email(match.group(0)))
    for entity in identifiers:
        if entity.entity == "tracking_number":
            _take(taken, entity.start, entity.end, None)
    for match in _ID_NUMBER.finditer(ascii_text):
        _take(taken, match.start(), match.end(), mask_id_number(match.group(0)))
    for match in _CARD.finditer(ascii_text):
        _take(taken, match.start(), match.end(), mask_card(match.group(0)))
    for entity in identifiers:
        if entity.entity == "order_id":
            _take(taken, entity.start, entity.end, None)
    for pattern in (_MOBILE_IN_TEXT, _LANDLINE_IN_TEXT):
        for match in pattern.finditer(ascii_text):
            _take(taken, match.start(), match.end(), mask_phone(match.group(0)))
    for entity in identifiers:
        if entity.entity in ("phone", "phone_last4"):
            _take(taken, entity.start, entity.end, mask_phone(entity.value) if entity.entity == "phone" else MASK)
    _addresses(ascii_text, taken)
    for match in _NAME_LABEL.finditer(ascii_text):
        _take(taken, match.start(1), match.end(1), mask_name(match.group(1)))
    for name in {str(n).strip() for n in names if n and len(str(n).strip()) > 1}:
        for found in re.finditer(re.escape(name), original):
            _take(taken, found.start(), found.end(), mask_name(name))
    out: List[str] = []
    cursor = 0
    for start, end, replacement in sorted(taken):
        out.append(original[cursor:start])
        out.append(original[start:end] if replacement is None else replacement)
        cursor = end
    out.append(original[cursor:])
    return "".join(out)


def mask_value(value: Any, names: Iterable[Optional[str]] = ()) -> Any:
    """Mask every string inside a JSON-like value (dicts, lists, tuples); keys and numbers stay.

    Args:
        value: a summary, a record field, any decoded JSON.
        names: names known as names, masked wherever they occur (see :func:`mask_text`).

    Returns:
        A new value of the same shape with each string passed through :func:`mask_text`.
    """
    known = tuple(names)
    if isinstance(value, str):
        return mask_text(value, known)
    if isinstance(value, dict):
        return {key: mask_value(item, known) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(item, known) for item in value]
    return value
