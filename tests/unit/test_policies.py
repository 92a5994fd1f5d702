"""Where TED may abstain: derived from the training trackers, and applied at prediction time."""

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.policies import RuleAwareTEDPolicy, derive_gates


def user(intent):
    return UserUttered(text=None, intent={"name": intent})


def tracker(events, rule=False):
    return TrackerWithCachedStates.from_events("t", events, domain=Domain.empty(), is_rule_tracker=rule)


LISTEN = ActionExecuted("action_listen")


def test_derive_gates_from_rules_and_stories():
    trackers = [
        tracker([LISTEN, user("greet"), ActionExecuted("utter_greet"), LISTEN], rule=True),
        tracker([LISTEN, user("track_order"), ActionExecuted("action_track_order"), LISTEN], rule=True),
        tracker([LISTEN, user("greet"), ActionExecuted("utter_greet"), LISTEN, user("track_order"),
                 ActionExecuted("action_track_order"), LISTEN]),
        # inform leads to different actions: never fixed
        tracker([LISTEN, user("inform"), ActionExecuted("action_track_order"), LISTEN]),
        tracker([LISTEN, user("inform"), ActionExecuted("return_form"), ActiveLoop("return_form"), LISTEN]),
        # an action followed by another action is not "always listen"
        tracker([LISTEN, user("human_agent"), ActionExecuted("action_handoff"), ActionExecuted("utter_wait"), LISTEN]),
        # an intent seen only after a slot condition is not fixed
        tracker([SlotSet("pending_flow", "track_order"), LISTEN, user("affirm"), ActionExecuted("action_x"), LISTEN], rule=True),
    ]
    listen_after, fixed = derive_gates(trackers)
    assert listen_after == {"utter_greet", "action_track_order", "utter_wait", "action_x", "return_form"}
    assert fixed == {"greet", "track_order", "human_agent"}


def test_abstains_only_where_gated():
    policy = RuleAwareTEDPolicy.__new__(RuleAwareTEDPolicy)
    policy.listen_after = {"utter_greet"}
    policy.fixed_intents = {"greet"}
    domain = Domain.empty()
    after_greet_intent = DialogueStateTracker.from_events("a", [LISTEN, user("greet")], domain.slots)
    after_inform = DialogueStateTracker.from_events("b", [LISTEN, user("inform")], domain.slots)
    after_utter = DialogueStateTracker.from_events("c", [LISTEN, user("inform"), ActionExecuted("utter_greet")], domain.slots)
    in_form = DialogueStateTracker.from_events("d", [LISTEN, ActiveLoop("return_form"), user("greet")], domain.slots)
    assert policy.should_abstain(after_greet_intent)
    assert not policy.should_abstain(after_inform)
    assert policy.should_abstain(after_utter)
    assert not policy.should_abstain(in_form)
