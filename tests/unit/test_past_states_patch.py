"""The resumed replay of a tracker's states gives Rasa's states at every step of a conversation."""

from __future__ import annotations

import copy
import itertools
from typing import Any, Iterator, List

import pytest
from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.rasa_patches import past_states
from bot.settings import PROJECT_ROOT

RULE_ONLY = {"rule_only_slots": ["order_id"], "rule_only_loops": ["return_form"]}


@pytest.fixture(scope="module")
def domain() -> Domain:
    return Domain.load(str(PROJECT_ROOT / "domain.yml"))


@pytest.fixture()
def patched() -> Iterator[None]:
    was_applied = past_states.PATCH.applied
    assert past_states.PATCH.install() is None
    yield
    if not was_applied:
        past_states.PATCH.revert()
    past_states.forget()


def user(text: str, intent: str, *entities: str) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 0.9},
                       [{"entity": name, "value": "x", "start": 0, "end": 1} for name in entities])


def conversation() -> List[Event]:
    """A served conversation: session start, questions, a form, a rule-only turn, a revert, a restart."""
    return [
        SlotSet("session_started_metadata", {"channel": "app"}),
        ActionExecuted("action_session_start"),
        SessionStarted(),
        ActionExecuted("action_listen"),
        user("你好", "greet"),
        ActionExecuted("utter_greet", hide_rule_turn=True),
        BotUttered("您好"),
        ActionExecuted("action_listen"),
        user("我的快递到哪了 SO1", "track_order", "order_id"),
        SlotSet("order_id", "SO1"),
        ActionExecuted("action_track_order"),
        BotUttered("运输中"),
        ActionExecuted("action_listen"),
        user("我要退货", "return_or_refund"),
        ActionExecuted("return_form"),
        ActiveLoop("return_form"),
        SlotSet("requested_slot", "order_id"),
        ActionExecuted("action_listen"),
        user("SO1", "inform", "order_id"),
        ActionExecuted("return_form"),
        ActiveLoop(None),
        ActionExecuted("action_listen"),
        user("不对", "deny"),
        UserUtteranceReverted(),
        user("谢谢", "thank"),
        ActionExecuted("utter_thank", hide_rule_turn=True),
        ActionExecuted("action_listen"),
        Restarted(),
        ActionExecuted("action_listen"),
        user("在吗", "greet"),
    ]


QUESTIONS = list(itertools.product([False, True], [False, True], [None, RULE_ONLY]))


def rasas_states(domain: Domain, tracker: DialogueStateTracker, question: Any) -> Any:
    omit, ignore, rule_only = question
    return past_states.PATCH.stock(past_states.STATES_FOR_HISTORY)(domain, tracker, omit, ignore, rule_only)


def test_every_step_of_a_growing_tracker_gets_rasas_states(patched: None, domain: Domain) -> None:
    tracker = DialogueStateTracker("c1", domain.slots)
    for event in conversation():
        tracker.update(event)
        for question in QUESTIONS:
            omit, ignore, rule_only = question
            expected = rasas_states(domain, tracker, question)
            assert domain.states_for_tracker_history(tracker, omit, ignore, rule_only) == expected
            assert domain.states_for_tracker_history(tracker, omit, ignore, rule_only) == expected  # asked twice


def test_callers_changing_the_states_change_neither_the_next_answer_nor_rasas(patched: None, domain: Domain) -> None:
    featurizer = MaxHistoryTrackerFeaturizer(max_history=None)
    tracker = DialogueStateTracker("c2", domain.slots)
    for event in conversation()[:14]:
        tracker.update(event)
    for use_text in (True, False, True):  # the rule policy asks with and without the text, in place
        ours = featurizer.prediction_states([tracker], domain, use_text, rule_only_data=RULE_ONLY)
        with_stock = copy.deepcopy(ours)
        past_states.PATCH.revert()
        try:
            rasa = featurizer.prediction_states([tracker], domain, use_text, rule_only_data=RULE_ONLY)
        finally:
            assert past_states.PATCH.install() is None
        assert ours == rasa == with_stock


def test_shared_sub_states_stay_shared_in_the_copy() -> None:
    user_state = {"intent": "greet"}
    states = [{"user": user_state}, {"user": user_state, "prev_action": {"action_name": "action_listen"}}]
    copied = past_states.copy_states(states)
    assert copied == states and copied[0]["user"] is copied[1]["user"] and copied[0]["user"] is not user_state
    copied[1]["user"].pop("intent")
    assert user_state == {"intent": "greet"} and copied[0]["user"] == {}


def test_another_tracker_with_the_same_events_starts_its_own_replay(patched: None, domain: Domain) -> None:
    events = conversation()[:9]
    first = DialogueStateTracker.from_events("c3", events, domain.slots)
    second = DialogueStateTracker.from_events("c3", events[:5] + [ActionExecuted("utter_goodbye")] + events[5:], domain.slots)
    for tracker in (first, second, first):
        assert domain.states_for_tracker_history(tracker) == rasas_states(domain, tracker, (False, False, None))


def test_training_trackers_keep_rasas_own_way(patched: None, domain: Domain) -> None:
    tracker = TrackerWithCachedStates.from_events("t1", conversation()[:9], domain.slots, domain=domain)
    before = len(past_states._replays)
    assert domain.states_for_tracker_history(tracker) == rasas_states(domain, tracker, (False, False, None))
    assert len(past_states._replays) == before
