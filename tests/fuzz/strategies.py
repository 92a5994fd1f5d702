"""Hypothesis strategies of hostile input: shopper text, JSON bodies, raw bytes, headers, query strings
and socket.io event payloads, weighted towards what the product's code treats specially."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

from hypothesis import strategies as st

SECRET = "fuzz-shop-secret"
"""Identity secret of the channels under fuzz (valid tokens are made with it)."""

CUSTOMERS = ("C000001", "C000002", "C10001")
"""Customer ids the valid identity tokens and signatures are made for."""

FULL_WIDTH_DIGITS = "０１２３４５６７８９"
CHINESE_NUMERALS = "零〇一幺二两三四五六七八九十百千万亿点"
UNITS = ("块钱", "块", "元", "件", "个", "积分", "双", "单", "分", "分钟", "分之")
EMOJI = "😡🤬😠💢👿😤🖕😀🎉❤️👍🏻👨‍👩‍👧#️⃣\u200d\ufe0f\u20e3🀄☃"
CONTROL = "".join(chr(code) for code in (*range(0x00, 0x20), *range(0x7F, 0xA0)))
FORMAT_MARKS = "\u200b\u200c\u200d\u200e\u200f\u2028\u2029\u202a\u202e\u2060\u2066\u2069\ufeff\u00ad\u061c"
SPACES = " \t\n\r\u3000\u00a0\u2003\x0b\x0c"
PUNCTUATION = "!?,.~…。！？，～、：:;；¥￥-—"
OTHER_DIGITS = "٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹०१२३४५६७८९𝟎𝟏𝟐𝟑"
"""Digits of other scripts (``str.isdigit`` and ``\\d`` accept them)."""

FRAGMENTS = (
    "订单", "单号", "订单号", "尾号", "后四位", "手机号后", "电话后", "快递", "到哪了", "退货", "退款", "转人工", "人工", "取消人工",
    "不排了", "SF", "sf ", "JD-", "YT", "RMB", "¥", "￥", "元", "块钱", "五分", "十分感谢", "一分钟", "两件", "訂單", "單號", "退貨",
    "/order_status", "/handoff{\"handoff_reason\": \"policy_undecided\"}", "/", "\\", "%s", "{}", "<script>", "'; DROP TABLE",
    "。。。", "...", "！！！", "？？", "~~", "\r\n", "\x00", "\ud800", "\udfff", "\ud83d", "\U0010ffff",
)

surrogates = st.integers(0xD800, 0xDFFF).map(chr)
special_characters = st.sampled_from(
    FULL_WIDTH_DIGITS + CHINESE_NUMERALS + EMOJI + CONTROL + FORMAT_MARKS + SPACES + PUNCTUATION + OTHER_DIGITS + "0123456789 -"
)
any_character = st.one_of(st.characters(), special_characters, surrogates)


def digit_groups() -> st.SearchStrategy[str]:
    """Digits in groups split by single spaces or dashes, as order numbers and phones are pasted."""
    group = st.text(st.sampled_from("0123456789"), min_size=1, max_size=14)
    return st.lists(group, min_size=1, max_size=8).flatmap(
        lambda groups: st.lists(st.sampled_from([" ", "-", "", "  ", "－", "　"]), min_size=len(groups), max_size=len(groups)).map(
            lambda separators: "".join(part + separator for part, separator in zip(groups, separators, strict=True))))


huge_numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.integers(1, 5000).map(lambda length: "9" * length),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
fragments = st.one_of(
    st.text(any_character, max_size=12),
    st.sampled_from(FRAGMENTS),
    digit_groups(),
    huge_numbers,
    st.text(st.sampled_from(CHINESE_NUMERALS), min_size=1, max_size=40).flatmap(lambda numeral: st.sampled_from(UNITS).map(numeral.__add__)),
    st.text(st.sampled_from(FULL_WIDTH_DIGITS + OTHER_DIGITS), min_size=1, max_size=16),
)


def repeated(strategy: st.SearchStrategy[str], limit: int) -> st.SearchStrategy[str]:
    """One draw of ``strategy`` repeated up to a length of about ``limit`` characters."""
    return st.tuples(strategy.filter(bool), st.integers(2, limit)).map(lambda pair: (pair[0] * (pair[1] // len(pair[0]) + 1))[:pair[1]])


def shopper_texts(max_chars: int = 2200) -> st.SearchStrategy[str]:
    """Any text a shopper (or an attacker) could send: short mixes, long repetitions near the channel's limit."""
    mixed = st.lists(fragments, max_size=12).map("".join)
    return st.one_of(mixed, mixed, st.text(any_character, max_size=80), repeated(fragments, max_chars))


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (huge integers, NaN, lone surrogates in strings included)."""
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**60), max_value=10**60),
        st.floats(allow_nan=True, allow_infinity=True), st.text(any_character, max_size=20), st.sampled_from(FRAGMENTS),
    )
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(any_character, max_size=8), children,
                                                                                                  max_size=4), max_leaves=max_leaves)


def sender_ids() -> st.SearchStrategy[Any]:
    """Conversation ids: valid ones (fresh each time), edge-length ones and junk of any JSON type."""
    valid = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"), min_size=1, max_size=64)
    return st.one_of(
        valid.map(lambda text: ("fz-" + text)[:64]),
        valid,
        st.sampled_from(["", " ", "a" * 65, "a" * 64, "..", ".", "-", "a/b", "a b", "会话", "a\nb", "a\x00", "\ud800", "0", "app-0"]),
        json_values(4),
    )


def callback_urls() -> st.SearchStrategy[Any]:
    """Callback URLs: allowed, forbidden, malformed (bad ports, credentials, huge), and junk."""
    return st.one_of(
        st.sampled_from([
            "http://127.0.0.1:9/cb", "https://localhost/cb", "http://127.0.0.1:0/", "http://127.0.0.1:99999/", "http://127.0.0.1:-1/",
            "http://u:p@127.0.0.1/", "ftp://127.0.0.1/", "http://[::1/", "http://[::1]:80/", "http://evil.example/", "javascript:alert(1)",
            "http://127.0.0.1:8080/" + "a" * 600, "", "http://\ud800/", "http://127.0.0.1:1e3/", "HTTP://LOCALHOST./x",
        ]),
        st.text(any_character, max_size=40),
        json_values(4),
    )


def identity_tokens() -> st.SearchStrategy[Any]:
    """Identity tokens: valid, expired, for another secret, truncated, junk."""
    from bot.identity import identity_token_for

    def token(customer_id: str, secret: str, ttl_s: int, cut: int) -> str:
        made = identity_token_for(secret, customer_id, ttl_s=ttl_s)
        return made[:cut] if cut else made

    made = st.builds(token, st.sampled_from(CUSTOMERS), st.sampled_from([SECRET, SECRET, "other-secret"]),
                     st.sampled_from([3600, 3600, -10, 10**12]), st.sampled_from([0, 0, 0, 5, -1, -3]))
    return st.one_of(made, st.text(any_character, max_size=60), st.sampled_from(["", "a.b.c", "..", "v1.C000001.1.x" + "0" * 64]),
                     json_values(4))


def metadata() -> st.SearchStrategy[Any]:
    """The ``metadata`` of a webhook body: identity fields of any type, extra fields, or junk."""
    from bot.identity import sign_customer_id

    fields = st.fixed_dictionaries({}, optional={
        "identity_token": identity_tokens(),
        "customer_id": st.one_of(st.sampled_from(CUSTOMERS), st.text(any_character, max_size=12), json_values(3)),
        "signature": st.one_of(st.sampled_from(CUSTOMERS).map(lambda customer: sign_customer_id(SECRET, customer)),
                               st.text(any_character, max_size=70), json_values(3)),
        "verified": json_values(2),
        "channel": json_values(2),
        "identity": json_values(3),
    })
    return st.one_of(fields, fields, st.none(), json_values(6))


def webhook_bodies() -> st.SearchStrategy[Dict[str, Any]]:
    """Bodies of ``POST /webhooks/app/webhook``: every field optional, of the right type or not."""
    return st.fixed_dictionaries({}, optional={
        "sender": sender_ids(),
        "message": st.one_of(shopper_texts(), shopper_texts(), json_values(4)),
        "metadata": metadata(),
        "callback_url": callback_urls(),
        "extra": json_values(4),
    }).flatmap(lambda body: st.dictionaries(st.text(any_character, max_size=10), json_values(3), max_size=2).map(lambda more: {**more, **body}))


def encode_json(value: Any, ascii_only: bool) -> bytes:
    """JSON as a client would send it: ``\\u`` escapes (lone surrogates stay escapes) or raw UTF-8
    (lone surrogates as the invalid bytes a careless client sends)."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def deep_nesting() -> st.SearchStrategy[bytes]:
    """JSON nested far deeper than any parser's recursion (within the body limit), or just under it."""
    return st.tuples(st.sampled_from(["[", '{"a":', '{"message":[', '{"sender":"x","message":"hi","metadata":{"a":[']),
                     st.sampled_from([10, 900, 1100, 5000, 20000])).map(lambda pair: (pair[0] * pair[1]).encode())


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` truncated, with bytes replaced or inserted (invalid UTF-8 included)."""
    if not data:
        return st.binary(max_size=64)

    def mutate(cuts: List[Tuple[int, bytes]], truncate: Optional[int]) -> bytes:
        out = bytearray(data)
        for position, insert in cuts:
            index = position % (len(out) + 1)
            out[index:index + 1] = insert
        return bytes(out[:truncate] if truncate is not None else out)

    noise = st.one_of(st.binary(min_size=1, max_size=3),
                      st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"\\", b"\\u", b"\\ud800"]))
    return st.builds(mutate, st.lists(st.tuples(st.integers(0, len(data)), noise), max_size=4), st.one_of(st.none(), st.integers(0, len(data))))


def raw_bodies(deep: bool = True) -> st.SearchStrategy[bytes]:
    """Raw request bodies: encoded webhook bodies (both encodings), mutations of them, deep nesting (unless
    ``deep`` is false), huge numbers, random bytes, non-object JSON."""
    encoded = st.tuples(webhook_bodies(), st.booleans()).map(lambda pair: encode_json(*pair))
    return st.one_of(
        encoded,
        encoded.flatmap(mutated),
        deep_nesting() if deep else st.sampled_from([b"[" * 10, b'{"a":' * 10]),
        st.integers(1, 70000).map(lambda digits: b'{"sender":"fz-big","message":' + b"9" * digits + b"}"),
        st.integers(1, 70000).map(lambda digits: b'{"message":"hi","sender":1' + b"0" * digits + b"}"),
        st.binary(max_size=200),
        st.sampled_from([b"", b"null", b"[]", b'"x"', b"1e999999", b"-0", b"NaN", b"{}", b'{"message":"\\ud800"}',
                         b'{"message":"\\udfff\\ud800 a"}', b'{"message":"hi","message":"again"}', b"\xef\xbb\xbf{}", b'{"a":1}' * 3]),
        json_values(10).map(lambda value: encode_json(value, True)),
    )


def header_values() -> st.SearchStrategy[bytes]:
    """Header values as bytes on the wire: printable junk, UTF-8, Latin-1, over-long, NULs."""
    return st.one_of(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80).map(str.encode),
        st.text(any_character, max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.binary(max_size=40).map(lambda data: data.replace(b"\r", b"").replace(b"\n", b"")),
        st.sampled_from([b"", b" ", b"a" * 9000, b"\x00", b"\xff\xfe", b"v1.x", b"app-0.0"]),
    )


def headers() -> st.SearchStrategy[List[Tuple[bytes, bytes]]]:
    """The channel's own headers with junk (or valid-looking) values, repeated, and some random ones."""
    names = st.sampled_from([b"X-Conversation-Token", b"X-Identity-Token", b"X-Conversation-Id", b"Content-Type", b"X-Forwarded-For",
                             b"Accept-Encoding", b"X-Junk"])
    return st.lists(st.tuples(names, header_values()), max_size=4)


def path_segments() -> st.SearchStrategy[bytes]:
    """A conversation id as a path segment: valid, percent-encoded junk, raw bytes."""
    return st.one_of(
        sender_ids().filter(lambda value: isinstance(value, str)).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")
                                                                      .encode()),
        st.text(any_character, max_size=30).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="/").encode()),
        st.sampled_from([b"", b"%", b"%zz", b"%ff%fe", b"%00", b"..", b"%2e%2e", b"a%2Fb", b"a" * 70, b"fz-known"]),
        st.binary(min_size=1, max_size=20).map(lambda data: bytes(byte for byte in data if byte > 0x20 and byte not in b"?#/")).filter(bool),
    )


def query_strings() -> st.SearchStrategy[bytes]:
    """Query strings of ``GET /messages``: after, limit, customer_id, signature with junk, repeated keys, bad escapes."""
    keys = st.sampled_from(["after", "limit", "customer_id", "signature", "junk", ""])
    values = st.one_of(
        st.sampled_from(["0", "0-0", "1-1", "-1", "100", "101", "0100", "1e2", "٣", "²", "99999999999999999999", "1-", "a-b",
                         "18446744073709551616-0", "0-18446744073709551616"]),
        huge_numbers, st.text(any_character, max_size=20),
    )
    pair = st.tuples(keys, values).map(lambda kv: quote(kv[0]) + "=" + quote(kv[1].encode("utf-8", "surrogatepass"), safe=""))
    return st.one_of(st.lists(pair, max_size=5).map("&".join).map(str.encode),
                     st.sampled_from([b"after=%", b"limit=%zz", b"limit=%ff", b"&&&", b"after", b"=", b"limit=1&limit=2"]))


def socket_payloads() -> st.SearchStrategy[Any]:
    """Payloads of the web channel's events: the fields it reads, of any type, or any JSON, or bytes."""
    custom = st.one_of(st.fixed_dictionaries({}, optional={
        "customer_id": st.one_of(st.sampled_from(CUSTOMERS), json_values(2)),
        "signature": st.one_of(st.text(max_size=70), json_values(2)),
        "identity_token": identity_tokens(),
        "conversation_token": st.one_of(st.text(any_character, max_size=70), json_values(2)),
        "last_message_id": st.one_of(st.sampled_from(["0-0", "1-1", "x", "99999999999999999999-0"]), json_values(2)),
    }), json_values(3))
    event = st.fixed_dictionaries({}, optional={
        "message": st.one_of(shopper_texts(), json_values(3)),
        "session_id": sender_ids(),
        "customData": custom,
        "last_message_id": json_values(2),
    })
    return st.one_of(event, event, json_values(6), st.binary(max_size=40))
