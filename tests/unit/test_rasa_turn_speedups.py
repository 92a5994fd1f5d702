"""The per-turn patches of bot.rasa_patches give exactly Rasa's own answers."""

from __future__ import annotations

import copy
import json
from typing import Any, Dict, List, Tuple

import pytest
from rasa.core.policies.rule_policy import RulePolicy
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.slots import AnySlot, BooleanSlot, CategoricalSlot, FloatSlot, ListSlot, Slot, TextSlot
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.utils.common import all_subclasses

from bot import rasa_patches
from bot.rasa_patches import graph_plans, rule_matches, slot_copy, tracker_merge


@pytest.fixture(autouse=True, scope="module")
def patched() -> Any:
    """Every patch installed for these tests, and the patches as they were after them."""
    before = [each.name for each in rasa_patches.patches() if each.applied]
    assert set(rasa_patches.install(enabled=True).values()) == {"installed"}
    yield
    rasa_patches.install(enabled=bool(before), only=before)


def stock_resolve(type_name: str) -> Any:
    """Rasa 3.6's loop in ``Event.resolve_by_type``."""
    for cls in all_subclasses(Event):
        if cls.type_name == type_name:
            return cls
    return None


# ------------------------------------------------------------------------------- event types
def test_every_event_type_name_resolves_to_rasas_class() -> None:
    names = {cls.type_name for cls in all_subclasses(Event)}
    assert {"user", "bot", "action", "slot", "session_started"} <= names
    for name in names:
        assert Event.resolve_by_type(name) is stock_resolve(name)


def test_unknown_names_answer_as_rasa_does() -> None:
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", default=SlotSet) is SlotSet
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")


def test_a_new_event_class_is_found_once_defined() -> None:
    assert Event.resolve_by_type("shop_test_event", default=SlotSet) is SlotSet

    class ShopTestEvent(SlotSet):
        type_name = "shop_test_event"

    assert Event.resolve_by_type("shop_test_event") is ShopTestEvent
    assert Event.resolve_by_type("slot") is stock_resolve("slot")


# ------------------------------------------------------------------------------ rule matches
def test_frozen_states_tell_apart_what_the_rule_policy_tells_apart() -> None:
    freeze = rule_matches.freeze_states
    assert freeze([{"a": {"x": 1, "y": (1.0,)}}]) == freeze([{"a": {"y": (1.0,), "x": 1}}])
    assert freeze({"v": (1.0,)}) != freeze({"v": [1.0]})
    assert freeze({"v": 1}) != freeze({"v": 1.0}) != freeze({"v": True})
    with pytest.raises(TypeError):
        freeze({"v": object()})


RULE_STATES: List[List[Dict[str, Any]]] = [
    [{}, {"prev_action": {"action_name": "action_listen"}, "user": {"intent": "greet"}}],
    [{}, {"prev_action": {"action_name": "action_listen"}, "user": {"intent": "thank"}}],
    [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "track_order"}}],
    [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "track_order"},
      "slots": {"order_id": (1.0,)}}],
]
RULES = {json.dumps(states): f"utter_{number}" for number, states in enumerate(RULE_STATES)}
CONVERSATIONS = [
    [{}, {"prev_action": {"action_name": "action_listen"}, "user": {"intent": "greet"}}],
    [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "track_order"}, "slots": {"order_id": (1.0,)}}],
    [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "track_order"}, "slots": {"order_id": [1.0]}}],
    [{"prev_action": {"action_name": "action_listen"}, "user": {"intent": "chitchat"}}],
]


def test_rule_matches_are_rasas_and_computed_once_per_states() -> None:
    policy = RulePolicy.__new__(RulePolicy)  # only the rule matching is used
    stock = [policy._get_possible_keys(RULES, states) for states in CONVERSATIONS]  # no cache: Rasa's way
    policy._shop_rule_matches = rule_matches.RuleMatchCache(size=3)  # type: ignore[attr-defined]
    first = [policy._get_possible_keys(RULES, states) for states in CONVERSATIONS]
    again = [policy._get_possible_keys(RULES, copy.deepcopy(states)) for states in CONVERSATIONS[1:]]
    assert first == stock
    assert len(stock[1]) == 2 and not stock[3]  # two rules apply to the order turn, none to chitchat
    assert all(a is b for a, b in zip(again, first[1:], strict=True))  # Rasa's very set, order kept


def test_rule_match_cache_forgets_the_least_recently_used() -> None:
    cache = rule_matches.RuleMatchCache(size=2)
    calls: List[int] = []

    def compute(value: int) -> Any:
        calls.append(value)
        return {value}

    for value in (1, 2, 1, 3, 2, 1):
        cache.get_or_compute(RULES, [{"n": value}], lambda value=value: compute(value))
    assert calls == [1, 2, 3, 2, 1]  # 1 was used again before 3 came, so 2 left first


# ---------------------------------------------------------------------------- tracker merge
def stored_tracker(sender: str) -> DialogueStateTracker:
    """A tracker as our app channel leaves it: the metadata slot before the session start."""
    return DialogueStateTracker.from_events(sender, [
        SlotSet("session_started_metadata", {"channel": "app", "customer_id": "C000001"}, timestamp=1.0),
        ActionExecuted("action_session_start", timestamp=1.1),
        SessionStarted(timestamp=1.2),
        ActionExecuted("action_listen", timestamp=1.3),
        UserUttered("你好", {"name": "greet", "confidence": 0.9}, timestamp=1.4),
        ActionExecuted("utter_greet", policy="RulePolicy", confidence=1.0, timestamp=1.5),
        BotUttered("您好", {"elements": None}, timestamp=1.6),
        ActionExecuted("action_listen", policy="RulePolicy", confidence=1.0, timestamp=1.7),
    ])


def merge_cases() -> List[Tuple[DialogueStateTracker, DialogueStateTracker]]:
    from rasa.core.tracker_store import InMemoryTrackerStore
    from rasa.shared.core.domain import Domain

    store = InMemoryTrackerStore(Domain.empty())  # the same (de)serialisation as Redis's
    cases = []
    prior = stored_tracker("merge")
    serialised = store.serialise_tracker(prior)
    last_session = DialogueStateTracker.from_events("merge", list(prior.events)[1:])  # what Rasa fetched
    last_session.update(UserUttered("我的快递到哪了", {"name": "track_order", "confidence": 0.8}, timestamp=2.0))
    last_session.update(ActionExecuted("action_track_order", policy="RulePolicy", confidence=1.0, timestamp=2.1))
    last_session.update(BotUttered("您的订单运输中", timestamp=2.2))
    cases.append((prior, last_session))
    duplicated = DialogueStateTracker.from_events("merge", list(last_session.events))
    duplicated.update(BotUttered("您的订单运输中", timestamp=2.2))  # equal dicts: Rasa keeps one
    cases.append((prior, duplicated))
    extended = DialogueStateTracker.from_events("merge", list(prior.events))
    extended.update(UserUttered("谢谢", {"name": "thank", "confidence": 0.9}, timestamp=3.0))
    cases.append((prior, extended))
    fresh = json.loads(serialised)
    cases.append((store.deserialise_tracker("merge", json.dumps(fresh)) or prior, last_session))
    cases.append((DialogueStateTracker("merge", []), last_session))
    return cases


@pytest.mark.parametrize("case", range(5))
def test_merged_trackers_serialise_exactly_as_rasas(case: int) -> None:
    prior, tracker = merge_cases()[case]
    ours = tracker_merge.merge_trackers(prior, tracker)
    theirs = tracker_merge.stock_merge_trackers(prior, tracker)
    assert tracker_merge.PATCH.stock(tracker_merge.TARGET) is not tracker_merge.merge_trackers  # Rasa's own
    serialise = RedisTrackerStore.serialise_tracker
    assert serialise(ours) == serialise(theirs)
    assert (ours is tracker) == (theirs is tracker)


def test_the_event_index_confirms_candidates_with_equality() -> None:
    index = tracker_merge.EventDictIndex()
    index.add([ActionExecuted("action_listen", timestamp=5.0)])
    assert ActionExecuted("action_listen", timestamp=5.0).as_dict() in index
    assert ActionExecuted("utter_greet", timestamp=5.0).as_dict() not in index
    with pytest.raises(TypeError):
        tracker_merge.event_dict_key({"event": "action", "timestamp": [5.0]})


# ------------------------------------------------------------------------------- slot copies
SLOTS: List[Slot] = [
    TextSlot("order_id", mappings=[{}], initial_value="880000010001"),
    FloatSlot("amount", mappings=[{}], max_value=10.0),
    BooleanSlot("verified", mappings=[{}], influence_conversation=True),
    ListSlot("products", mappings=[{}]),
    CategoricalSlot("tier", mappings=[{}], values=["L1", "L2"]),
    AnySlot("session_started_metadata", mappings=[{}]),
]


def generic_copy(value: Any) -> Any:
    """``copy.copy`` without any ``__copy__``: Python's reduction."""
    return copy._reconstruct(value, None, *value.__reduce_ex__(4))  # type: ignore[attr-defined]


@pytest.mark.parametrize("slot", SLOTS, ids=lambda slot: type(slot).__name__)
def test_slot_copies_are_pythons_copies(slot: Slot) -> None:
    slot.value = {"nested": ["kept by reference"]} if isinstance(slot, AnySlot) else slot.value
    ours, theirs = copy.copy(slot), generic_copy(slot)
    assert type(ours) is type(slot) and ours is not slot
    assert ours.__dict__ == theirs.__dict__
    assert all(ours.__dict__[key] is slot.__dict__[key] for key in slot.__dict__)  # shallow, as copy.copy
    ours.value = "changed"
    assert slot.value != "changed"


def test_slot_classes_with_their_own_copying_keep_it() -> None:
    class ReducedSlot(TextSlot):
        def __reduce_ex__(self, protocol: Any) -> Any:
            return (TextSlot, ("reduced", [{}]))

    class SlottedSlot(TextSlot):
        __slots__ = ("extra",)

    assert slot_copy.copies_as_plain_object(TextSlot)
    assert not slot_copy.copies_as_plain_object(ReducedSlot)
    assert not slot_copy.copies_as_plain_object(SlottedSlot)
    reduced = copy.copy(ReducedSlot("order_id", mappings=[{}]))
    assert type(reduced) is TextSlot and reduced.name == "reduced"
    slotted = SlottedSlot("order_id", mappings=[{}])
    slotted.extra = 7
    copied = copy.copy(slotted)
    assert copied.extra == 7 and copied.name == "order_id"


# ------------------------------------------------------------------------------- graph plans
class Node:
    """A graph node as Rasa's: takes (name, output) pairs, returns its own."""

    def __init__(self, name: str, log: List[str]) -> None:
        self.name = name
        self.log = log

    def __call__(self, *inputs: Tuple[str, Any]) -> Tuple[str, Any]:
        self.log.append(self.name)
        return self.name, [self.name, *(value for _, value in inputs)]


def graph(log: List[str], value: Any) -> Dict[str, Any]:
    return {
        "__message__": ("__message__", value),
        "tokens": (Node("tokens", log), "__message__"),
        "features": (Node("features", log), "tokens"),
        "intent": (Node("intent", log), "features", "tokens"),
        "domain": (Node("domain", log),),
        "select": (Node("select", log), "intent", "domain"),
    }


def test_plans_call_the_nodes_as_dask_does() -> None:
    import dask

    dask_log: List[str] = []
    expected = dask.get(graph(dask_log, 1), ["select"])
    first_log: List[str] = []
    recorded, plan = graph_plans.record_plan(graph(first_log, 1), ["select"], ["__message__"])
    assert plan is not None and recorded == expected and first_log == dask_log
    later_log: List[str] = []
    planned = graph_plans.run_plan(plan, graph(later_log, 2), ["select"])
    assert plan == later_log == dask_log
    assert planned == dask.get(graph([], 2), ["select"])


def test_graphs_with_other_data_are_left_to_dask() -> None:
    log: List[str] = []
    run_graph = graph(log, 1)
    run_graph["constant"] = 42
    _, plan = graph_plans.record_plan(run_graph, ["select"], ["__message__"])
    assert plan is None
