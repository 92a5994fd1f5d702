"""Flow mechanics: the last question asked, turn ids, idempotency keys, the human offer."""

from __future__ import annotations

from typing import Any, Dict, List

from rasa_sdk import Tracker

from actions import conversation


def tracker(events: List[Dict[str, Any]], latest: Dict[str, Any], slots: Dict[str, Any] = {}) -> Tracker:  # noqa: B006
    return Tracker("conv-1", dict(slots), latest, events, False, None, {}, "action_listen")


def user(text: str, message_id: str) -> Dict[str, Any]:
    return {"event": "user", "text": text, "message_id": message_id, "timestamp": 1.0}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "name": name}


def test_last_bot_action_is_the_one_before_the_latest_message() -> None:
    events = [user("积分兑换", "m1"), action("action_redeem_points"), action("action_listen"), user("确认", "m2")]
    assert conversation.last_bot_action(tracker(events, {"text": "确认"})) == "action_redeem_points"


def test_an_action_in_between_is_what_counts() -> None:
    events = [
        user("积分兑换", "m1"), action("action_redeem_points"), action("action_listen"),
        user("转人工", "m2"), action("utter_human_not_in_chat"), action("action_listen"),
        user("确认", "m3"),
    ]
    assert conversation.last_bot_action(tracker(events, {"text": "确认"})) == "utter_human_not_in_chat"
    assert conversation.last_bot_action(tracker([user("hi", "m1")], {})) is None


def test_turn_id_prefers_the_message_id() -> None:
    assert conversation.turn_id(tracker([user("a", "m1")], {"message_id": "abc"})) == "abc"
    assert conversation.turn_id(tracker([user("a", "m1"), user("b", "m2")], {})) == "m2"
    assert conversation.turn_id(tracker([], {})) == "0"


def test_idempotency_keys_are_stable_and_distinct() -> None:
    key = conversation.idempotency_key("conv-1", "m1", "CP0020")
    assert key == conversation.idempotency_key("conv-1", "m1", "CP0020")
    assert key.startswith("chat-") and len(key) == 45
    assert key != conversation.idempotency_key("conv-1", "m2", "CP0020")
    assert key != conversation.idempotency_key("conv-2", "m1", "CP0020")
    assert key != conversation.idempotency_key("conv-1", "m1", "CP0010")


def test_second_invalid_answer_offers_a_human() -> None:
    first = conversation.invalid_answer_reply("想兑换哪一张？", [{"title": "a", "payload": "/a"}], 1)
    second = conversation.invalid_answer_reply("想兑换哪一张？", [{"title": "a", "payload": "/a"}], 2)
    assert first == {"text": "想兑换哪一张？", "buttons": [{"title": "a", "payload": "/a"}]}
    assert second["buttons"][-1] == {"title": "转人工", "payload": "/human_agent"}
    assert "转人工" in second["text"]


def test_current_step_belongs_to_the_pending_flow() -> None:
    slots = {"pending_flow": "redeem_points", "flow_step": "confirm"}
    assert conversation.current_step(tracker([], {}, slots), "redeem_points") == "confirm"
    assert conversation.current_step(tracker([], {}, slots), "cancel_order") is None
