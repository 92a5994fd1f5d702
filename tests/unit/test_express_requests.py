"""Which messages the channel queues for a human before the bot's turn, and what it tells the bot."""

from __future__ import annotations

from typing import Optional

import pytest
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.components import ORIGINAL_TEXT
from bot.nlu.explicit_handoff import read_as_explicit_request
from handoff import keys
from handoff.express import is_explicit_request, metadata_for, opened_handoff, preliminary_summary
from handoff.models import HandoffRequest

EXPLICIT = [
    "转人工",
    "转人工！！！",
    "转人工!!!",
    "人工",
    "人工客服",
    "人工服务",
    "转人工客服",
    "找人工",
    "我要人工",
    "我要找真人",
    "真人客服",
    "亲 帮我转人工吧",
    "你好，请转人工，谢谢",
    "人工人工人工",
    "转接人工客服",
    "\u3000转人工\u3000",
    "轉人工",
    "转人工😡",
    "在吗 人工客服",
    "快转人工啊",
    "人工客服可以吗",
    "/human_agent",
]

NOT_EXPLICIT = [
    "",
    "人工客服电话多少",
    "转人工 我的快递三天没动了",
    "不要转人工",
    "不用人工了",
    "取消人工",
    "人工智能",
    "你是人工智能吗",
    "我要投诉，转人工",
    "退货",
    "880000010001 转人工",
    "客服",
    "人工" * 20,
    '/human_agent{"handoff_reason":"policy_undecided"}',
    "/greet",
]


@pytest.mark.parametrize("text", EXPLICIT)
def test_messages_that_only_ask_for_a_human_are_explicit(text: str):
    assert is_explicit_request(text)


@pytest.mark.parametrize("text", NOT_EXPLICIT)
def test_messages_that_say_more_go_to_the_bot_first(text: str):
    assert not is_explicit_request(text)


def _request() -> HandoffRequest:
    return HandoffRequest(keys.new_handoff_id(), "conv-1", None, None, "", "requested", ["human_agent"], {}, "", 1_790_000_000.5)


def test_the_bot_reads_the_opened_handoff_from_the_message_metadata():
    request = _request()
    metadata = {"channel": "app", **metadata_for(request)}
    assert opened_handoff(metadata) == (request.handoff_id, 1_790_000_000.5)


@pytest.mark.parametrize("metadata", [
    None,
    {},
    {"handoff": "h123"},
    {"handoff": {"id": "not-a-handoff", "enqueued_at": 1.0}},
    {"handoff": {"id": "h" + "0" * 24}},
    {"handoff": {"id": "h" + "0" * 24, "enqueued_at": "yesterday"}},
])
def test_metadata_without_a_valid_opened_handoff_is_ignored(metadata):
    assert opened_handoff(metadata) is None


def test_the_preliminary_summary_says_it_is_preliminary_and_keeps_the_shoppers_words():
    summary, text = preliminary_summary("C000009", "人工客服！", 1_790_000_000.0, "顾客要求人工")
    assert summary["preliminary"] is True and summary["who"]["customer_id"] == "C000009" and summary["who"]["verified"] is True
    assert summary["reason"] == {"code": "requested", "label": "顾客要求人工"}
    assert summary["last_turns"] == [{"from": "shopper", "text": "人工客服！", "at": 1_790_000_000.0}]
    assert text.splitlines() == ["【转人工摘要】（完整摘要正在生成，几秒内自动更新）", "顾客：客户号 C000009，已登录（签名验证）",
                                 "转人工原因：顾客要求人工", "顾客原话：人工客服！"]
    anonymous, anonymous_text = preliminary_summary(None, "转人工", 1.0, "顾客要求人工")
    assert anonymous["who"]["verified"] is False and "匿名顾客，未验证身份" in anonymous_text


def _parsed(text: str, original: Optional[str] = None) -> Message:
    message = Message(data={TEXT: text, INTENT: {"name": "nlu_fallback", "confidence": 0.45},
                            INTENT_RANKING_KEY: [{"name": "nlu_fallback", "confidence": 0.45}, {"name": "human_agent", "confidence": 0.44},
                                                 {"name": "greet", "confidence": 0.4}]})
    if original is not None:
        message.set(ORIGINAL_TEXT, original)
    return message


def test_the_nlu_reads_an_explicit_request_as_human_agent_whatever_the_classifier_said():
    message = _parsed("你好,请转人工,谢谢", original="你好，请转人工，谢谢")
    assert read_as_explicit_request(message)
    assert message.get(INTENT) == {"name": "human_agent", "confidence": 1.0}
    assert [r["name"] for r in message.get(INTENT_RANKING_KEY)] == ["human_agent", "nlu_fallback", "greet"]


def test_the_nlu_tests_what_the_shopper_typed_not_the_normalised_text():
    message = _parsed("转人工生气", original="转人工😡")  # the normaliser spells emoji out
    assert read_as_explicit_request(message) and message.get(INTENT)["name"] == "human_agent"


def test_the_nlu_keeps_the_classifiers_reading_of_anything_else():
    message = _parsed("人工客服电话多少")
    assert not read_as_explicit_request(message)
    assert message.get(INTENT) == {"name": "nlu_fallback", "confidence": 0.45}
