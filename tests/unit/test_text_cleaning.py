"""What a shopper's text becomes before anything reads or stores it (connectors.common.clean_text / check_text)."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from connectors.common import MAX_MESSAGE_CHARS, MESSAGES, check_text, clean_text

CLEANED = [
    # (id, what the client sent, what the bot and the transcript get)
    ("plain-chinese", "我的快递到哪了", "我的快递到哪了"),
    ("lone-high-surrogate", "\ud800 你好", "\ufffd 你好"),
    ("lone-low-surrogate", "你好\udc80", "你好\ufffd"),
    ("unpaired-surrogates-in-a-row", "\udc80\ud800", "\ufffd\ufffd"),
    ("nul", "\x00你好", "你好"),
    ("nul-inside", "订单\x00号", "订单号"),
    ("bell-escape-delete", "\x07\x1b[31m红色\x7f", "[31m红色"),
    ("other-c0-controls", "".join(chr(code) for code in range(0x20) if chr(code) not in "\t\n\r") + "好", "好"),
    ("c1-controls", "\x80好\x9f", "好"),
    ("tab-and-newline-kept", "第一行\t备注\n第二行", "第一行\t备注\n第二行"),
    ("crlf-becomes-newline", "第一行\r\n第二行", "第一行\n第二行"),
    ("zero-width-space", "转\u200b人\u200b工", "转人工"),
    ("zero-width-joiners-and-bom", "\ufeff你\u200c好\u200d", "你好"),
    ("word-joiner-and-soft-hyphen", "退\u2060货\u00ad", "退货"),
    ("bidi-override", "\u202e你好\u202c", "你好"),
    ("bidi-marks", "\u200e订单\u200f", "订单"),
    ("bidi-isolates", "\u2066订单\u2069\u2067\u2068", "订单"),
    ("arabic-letter-mark", "\u061c好", "好"),
    ("line-and-paragraph-separators", "一\u2028二\u2029三", "一二三"),
    ("emoji-kept", "好评😀👍", "好评😀👍"),
    ("ideographic-space-kept", "\u3000你好\u3000", "\u3000你好\u3000"),
    ("full-width-and-accents-kept", "ＡＢＣ１２３ café", "ＡＢＣ１２３ café"),
    ("payload-kept", '/human_agent{"handoff_reason":"policy_undecided"}', '/human_agent{"handoff_reason":"policy_undecided"}'),
    ("empty", "", ""),
]


@pytest.mark.parametrize("text, expected", [pytest.param(text, expected, id=name) for name, text, expected in CLEANED])
def test_clean_text(text: str, expected: str) -> None:
    cleaned = clean_text(text)
    assert cleaned == expected
    cleaned.encode("utf-8")  # storable and sendable as it is
    assert clean_text(cleaned) == cleaned  # cleaning twice changes nothing


CHECKED = [
    # (id, what the client sent, the text kept, the refusal code)
    ("stripped", "  我的快递到哪了  ", "我的快递到哪了", None),
    ("lone-surrogate", "\ud800 你好", "\ufffd 你好", None),
    ("only-a-lone-surrogate", "\ud800", "\ufffd", None),
    ("nul-around", "\x00 你好 \x00", "你好", None),
    ("bidi-wrapped", "\u202e退货\u202c", "退货", None),
    ("blank", "   ", "", "empty_message"),
    ("nul-only", "\x00", "", "empty_message"),
    ("controls-only", "\x01\x02\x1b\x7f", "", "empty_message"),
    ("zero-width-only", "\u200b\u200c\u200d\ufeff\u2060", "", "empty_message"),
    ("zero-width-and-spaces", "\u200b  \u200b\n", "", "empty_message"),
    ("bidi-only", "\u202e\u202d\u2066\u2069\u200e", "", "empty_message"),
    ("exactly-the-limit", "好" * MAX_MESSAGE_CHARS, "好" * MAX_MESSAGE_CHARS, None),
    ("the-limit-once-invisible-marks-are-gone", "好" * MAX_MESSAGE_CHARS + "\u200b" * 100, "好" * MAX_MESSAGE_CHARS, None),
    ("over-the-limit", "好" * (MAX_MESSAGE_CHARS + 1), "", "message_too_long"),
    ("far-over-the-limit-before-cleaning", "\u200b" * (4 * MAX_MESSAGE_CHARS + 1), "", "message_too_long"),
    ("not-text", 42, "", "invalid_message"),
    ("none", None, "", "invalid_message"),
    ("a-list", ["你好"], "", "invalid_message"),
]


@pytest.mark.parametrize("text, kept, code", [pytest.param(*case[1:], id=case[0]) for case in CHECKED])
def test_check_text(text: Any, kept: str, code: Optional[str]) -> None:
    assert check_text(text) == (kept, code)
    assert code is None or code in MESSAGES
