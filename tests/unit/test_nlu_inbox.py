"""The NLU inbox's decisions (which messages the bot did not understand), its masking and label choices."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from bot.nlu_inbox import (
    InboxConfig,
    Turn,
    decide,
    intent_label,
    is_correction,
    item_fields,
    item_id,
    keep_decisions,
    label_choices,
    latest_turns,
    miss_reasons,
)
from bot.settings import load_settings

THRESHOLD = 0.6


def user(text: str, intent: str, confidence: float, at: float, ranking: Optional[List[Dict[str, Any]]] = None,
         entities: Optional[List[Dict[str, Any]]] = None, message_id: str = "") -> Dict[str, Any]:
    """A ``user`` event as Rasa serialises it."""
    return {"event": "user", "text": text, "timestamp": at, "input_channel": "app", "message_id": message_id or f"m{at}",
            "parse_data": {"intent": {"name": intent, "confidence": confidence},
                           "intent_ranking": ranking or [{"name": intent, "confidence": confidence}], "entities": entities or []}}


def action(name: str, at: float) -> Dict[str, Any]:
    return {"event": "action", "name": name, "timestamp": at}


def bot(text: str, at: float) -> Dict[str, Any]:
    return {"event": "bot", "text": text, "timestamp": at}


def turn(text: str = "自提点在哪里", intent: str = "out_of_scope", confidence: float = 0.9, **kwargs: Any) -> Turn:
    return Turn(text, intent, confidence, **kwargs)


# One message on its own ---------------------------------------------------------------------------


@pytest.mark.parametrize("case, expected", [
    (turn(intent="nlu_fallback", confidence=0.45), ["fallback"]),
    (turn(confidence=0.49), ["low_confidence"]),
    (turn(confidence=0.6), []),
    (turn(confidence=0.99), []),
    (turn(confidence=0.99, answered_with_fallback=True), ["fallback"]),
    (turn(confidence=0.3, answered_with_fallback=True), ["fallback", "low_confidence"]),
])
def test_a_message_is_missed_when_the_nlu_gave_up_or_was_unsure(case: Turn, expected: List[str]) -> None:
    assert miss_reasons(case, THRESHOLD) == expected


@pytest.mark.parametrize("text", ["不是这个意思", "不是 这个意思！", "你理解错了", "答非所问啊", "我问的不是这个", "我不是问物流", "牛头不对马嘴"])
def test_corrections_are_recognised(text: str) -> None:
    assert is_correction(text)


@pytest.mark.parametrize("text", ["不是这个订单，是另一个", "不是", "我的快递到哪了", "这个意思是说可以退吗"])
def test_other_messages_are_no_corrections(text: str) -> None:
    assert not is_correction(text)


# The latest turn and the one before ------------------------------------------------------------------


def test_a_fallback_is_kept_with_its_reason() -> None:
    kept = keep_decisions(turn("优惠券用不了", "nlu_fallback", 0.45), turn("你好", "greet", 0.9), THRESHOLD)
    assert [(k.turn.text, k.reasons) for k in kept] == [("优惠券用不了", ("fallback",))]


def test_an_understood_message_is_not_kept() -> None:
    assert keep_decisions(turn("我的快递到哪了", "track_order", 1.0), None, THRESHOLD) == []


def test_a_correction_keeps_the_message_before_it_even_when_the_nlu_was_sure() -> None:
    previous = turn("京享值怎么查看", "out_of_scope", 0.998)
    kept = keep_decisions(turn("不是这个意思", "deny", 1.0), previous, THRESHOLD)
    assert [(k.turn.text, k.reasons) for k in kept] == [("京享值怎么查看", ("correction",))]


def test_a_handoff_right_after_a_misunderstanding_keeps_that_message() -> None:
    previous = turn("白条分期能退吗", "faq", 0.5)
    kept = keep_decisions(turn("转人工", "human_agent", 1.0), previous, THRESHOLD)
    assert [(k.turn.text, k.reasons) for k in kept] == [("白条分期能退吗", ("low_confidence", "handoff_after_miss"))]
    handed_off = keep_decisions(turn("算了", "stop", 0.9, handed_off=True), turn("怎么弄", "nlu_fallback", 0.3), THRESHOLD)
    assert [k.reasons for k in handed_off] == [("fallback", "handoff_after_miss")]


def test_a_handoff_after_an_understood_message_keeps_nothing() -> None:
    assert keep_decisions(turn("转人工", "human_agent", 1.0), turn("我的快递到哪了", "track_order", 0.99), THRESHOLD) == []


def test_button_payloads_are_never_kept() -> None:
    payload = turn('/human_agent{"handoff_reason": "requested"}', "human_agent", 0.2)
    assert keep_decisions(payload, None, THRESHOLD) == []
    assert keep_decisions(turn("不是这个意思", "deny", 1.0), turn("/track_order", "track_order", 0.3), THRESHOLD) == []


def test_latest_turns_stop_at_the_session_start_and_see_the_bots_fallback() -> None:
    events = [
        user("很久以前的消息", "greet", 0.9, 1.0),
        {"event": "session_started", "timestamp": 2.0},
        action("action_listen", 2.1),
        user("这个咋整", "out_of_scope", 0.95, 3.0),
        action("action_default_fallback", 3.1),
        bot("抱歉，我没太明白", 3.2),
        action("action_listen", 3.3),
        user("转人工", "human_agent", 1.0, 4.0),
        action("action_handoff", 4.1),
    ]
    current, previous = latest_turns(events)
    assert current is not None and previous is not None
    assert (current.text, current.handed_off, current.answered_with_fallback) == ("转人工", True, False)
    assert (previous.text, previous.answered_with_fallback) == ("这个咋整", True)
    assert [(k.turn.text, k.reasons) for k in decide(events, THRESHOLD)] == [("这个咋整", ("fallback", "handoff_after_miss"))]
    assert latest_turns(events[1:3]) == (None, None)
    only, none = latest_turns(events[:1])
    assert only is not None and only.text == "很久以前的消息" and none is None


def test_the_parse_is_read_from_the_event() -> None:
    event = user("京豆能抵多少钱 13812345678", "points_balance", 0.41, 5.0, message_id="abc",
                 ranking=[{"name": "points_balance", "confidence": 0.41}, {"name": "faq", "confidence": 0.3},
                          {"name": "points_redeem", "confidence": 0.2}, {"name": "greet", "confidence": 0.05},
                          {"name": "thank", "confidence": 0.04}],
                 entities=[{"entity": "phone", "value": "13812345678"}, {"entity": "phone", "value": "13812345678"}])
    current, _ = latest_turns([event])
    assert current is not None
    assert (current.intent, current.confidence, current.message_id, current.at, current.channel) == ("points_balance", 0.41, "abc", 5.0, "app")
    assert current.ranking == (("faq", 0.3), ("points_redeem", 0.2), ("greet", 0.05))
    assert current.entities == ("phone",)


# What is stored ------------------------------------------------------------------------------------


def test_stored_fields_are_masked_and_carry_no_conversation_id() -> None:
    message = turn("我是张三，收货人：王芳，手机13812345678，地址改成上海市浦东新区世纪大道100号8栋1201室", "nlu_fallback", 0.4,
                   ranking=(("change_address", 0.3),), entities=("phone",), message_id="m1", at=10.0, channel="web")
    fields = item_fields(message, now=11.0)
    assert "13812345678" not in fields["text"] and "138****5678" in fields["text"]
    assert "王芳" not in fields["text"] and "世纪大道" not in fields["text"] and "上海市浦东新区" in fields["text"]
    assert "conv" not in " ".join(fields.values())
    assert (fields["intent"], fields["at"], fields["channel"], fields["kept_at"]) == ("nlu_fallback", "10.000", "web", "11.000")


def test_the_id_is_stable_per_turn_and_does_not_reveal_the_conversation() -> None:
    message = turn(message_id="m1")
    assert item_id("conv-1", message) == item_id("conv-1", message)
    assert item_id("conv-1", message) != item_id("conv-2", message)
    assert item_id("conv-1", message) != item_id("conv-1", turn(message_id="m2"))
    assert "conv" not in item_id("conv-1", message) and len(item_id("conv-1", message)) == 20


# Settings and label choices ------------------------------------------------------------------------


def test_config_from_settings() -> None:
    default = InboxConfig.from_settings(load_settings({}))
    assert (default.retention_s, default.confidence, default.max_items, default.enabled) == (30 * 86400, 0.6, 5000, True)
    off = InboxConfig.from_settings(load_settings({"NLU_INBOX_RETENTION_DAYS": "0", "NLU_INBOX_CONFIDENCE": "0.5"}))
    assert (off.enabled, off.confidence) == (False, 0.5)


def test_label_choices_are_the_domains_intents_with_retrieval_sub_intents() -> None:
    choices = label_choices()
    assert {"track_order", "points_balance", "human_agent", "out_of_scope", "faq/invoice", "chitchat/ask_name"} <= set(choices)
    assert "faq" not in choices and "chitchat" not in choices and "nlu_fallback" not in choices
    assert choices["track_order"] == "查询物流" and choices["faq/invoice"] == "常见问题：发票"
    assert intent_label("faq/something_new") == "常见问题：something_new" and intent_label("new_intent") == "new_intent"
