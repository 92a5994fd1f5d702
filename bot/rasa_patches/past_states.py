"""Replay a served conversation into states once per turn, not once per policy and prediction.

Every prediction asks each policy for the states of the conversation so far (the rule policy
twice, with and without the message's text; the memoization policy once), and Rasa's
``Domain.states_for_tracker_history`` builds them each time from scratch: a fresh copy of the
tracker replays every applied event and computes the state before each action. Two or three
predictions a turn make that six to nine full replays of the same, slowly growing history: about
a tenth of the Rasa server's CPU.

This patch keeps, per served tracker and per way of asking (``omit_unset_slots``,
``ignore_rule_only_turns``, the rule-only data, the domain), the replay where it stopped: the
replaying tracker, the states of every turn so far and the loop's two flags. The next call on the
same tracker object whose applied events still begin with the very events replayed (compared by
identity: any revert, restart, undone loop or other tracker starts over) replays only the events
added since, then computes the final state as Rasa does. It hands out a copy of the states, two
levels deep and keeping which states share a sub-state as Rasa's own result does, since callers
change the last state in place.

Only trackers of the class ``DialogueStateTracker`` itself are remembered (the ones a served
conversation has; training's trackers cache their states in their own way), at most
:data:`REMEMBERED_TRACKERS` at a time, each by a weak reference.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

from bot.rasa_patches import RASA_VERSION, Patch

STATES_FOR_HISTORY = "rasa.shared.core.domain:Domain.states_for_tracker_history"
PRIOR_TRACKERS = "rasa.shared.core.trackers:DialogueStateTracker.generate_all_prior_trackers"

REMEMBERED_TRACKERS = 512
"""Replays kept at a time (trackers being served; each tracker lives for one turn)."""

_replays: OrderedDict[Tuple[int, bool, bool, int, int], _Replay] = OrderedDict()


class _Replay:
    """Where one replay of a tracker's history stopped."""

    __slots__ = ("domain", "events", "last_ml_action", "replaying", "rule_only_data", "states", "tracker", "turn_was_hidden")

    def __init__(self, tracker: Any, domain: Any, rule_only_data: Optional[Dict[str, Any]]) -> None:
        self.tracker = weakref.ref(tracker)
        self.domain = domain
        self.rule_only_data = rule_only_data
        self.events: List[Any] = []
        self.replaying = tracker.init_copy()
        self.states: List[Dict[str, Any]] = []
        self.last_ml_action: Optional[Dict[str, Any]] = None
        self.turn_was_hidden = False

    def continues(self, tracker: Any, domain: Any, rule_only_data: Optional[Dict[str, Any]], applied: List[Any]) -> bool:
        """Whether ``applied`` begins with the events replayed, for the same tracker and question."""
        if self.tracker() is not tracker or self.domain is not domain or self.rule_only_data is not rule_only_data:
            return False
        if len(applied) < len(self.events):
            return False
        return all(mine is theirs for mine, theirs in zip(self.events, applied))  # noqa: B905  (applied may be longer)


def _turn(domain: Any, tracker: Any, hide_rule_turn: bool, states: List[Dict[str, Any]], last_ml_action: Any,
          turn_was_hidden: bool, omit_unset_slots: bool, ignore_rule_only_turns: bool,
          rule_only_data: Optional[Dict[str, Any]]) -> Tuple[Any, bool]:
    """One pass of the loop of Rasa's ``states_for_tracker_history``; returns its two flags after it."""
    from rasa.shared.core.constants import PREVIOUS_ACTION

    if ignore_rule_only_turns:
        if not turn_was_hidden:
            last_ml_action = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and not tracker.latest_action_name == tracker.active_loop_name:
            turn_was_hidden = hide_rule_turn
        if turn_was_hidden:
            return last_ml_action, turn_was_hidden
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if states:
            domain._substitute_rule_only_user_input(state, states[-1])
        if last_ml_action:
            state[PREVIOUS_ACTION] = last_ml_action
    states.append(domain._clean_state(state))
    return last_ml_action, turn_was_hidden


def copy_states(states: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The states with every state and sub-state copied, sub-states shared where they were shared."""
    copies: Dict[int, Any] = {}
    result = []
    for state in states:
        copied = {}
        for kind, sub_state in state.items():
            twin = copies.get(id(sub_state))
            if twin is None:
                twin = copies[id(sub_state)] = dict(sub_state) if isinstance(sub_state, dict) else sub_state
            copied[kind] = twin
        result.append(copied)
    return result


def states_for_tracker_history(self: Any, tracker: Any, omit_unset_slots: bool = False,
                               ignore_rule_only_turns: bool = False,
                               rule_only_data: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Rasa's ``Domain.states_for_tracker_history``, resuming the replay of the same tracker."""
    from rasa.shared.core.events import ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker

    if type(tracker) is not DialogueStateTracker:
        return PATCH.stock(STATES_FOR_HISTORY)(self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    key = (id(tracker), bool(omit_unset_slots), bool(ignore_rule_only_turns), id(rule_only_data), id(self))
    applied = tracker.applied_events()
    replay = _replays.get(key)
    if replay is None or not replay.continues(tracker, self, rule_only_data, applied):
        replay = _Replay(tracker, self, rule_only_data)
        _replays[key] = replay
        while len(_replays) > REMEMBERED_TRACKERS:
            _replays.popitem(last=False)
    _replays.move_to_end(key)
    for event in applied[len(replay.events):]:
        if isinstance(event, ActionExecuted):
            replay.last_ml_action, replay.turn_was_hidden = _turn(
                self, replay.replaying, event.hide_rule_turn, replay.states, replay.last_ml_action,
                replay.turn_was_hidden, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        replay.replaying.update(event)
        replay.events.append(event)
    states = list(replay.states)
    _turn(self, replay.replaying, False, states, replay.last_ml_action, replay.turn_was_hidden,
          omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    return copy_states(states)


def forget() -> None:
    """Drop every remembered replay (tests)."""
    _replays.clear()


def apply(patch: Patch) -> None:
    from rasa.shared.core.domain import Domain

    forget()
    patch.replace(Domain, "states_for_tracker_history", states_for_tracker_history)


PATCH = Patch(
    name="past_states",
    rasa_version=RASA_VERSION,
    targets={
        STATES_FOR_HISTORY: "035111ce73ac90ba50e143abf556f924af07d9f452893f5a96a62895d44df8b7",
        PRIOR_TRACKERS: "a1f6954347b52649a7b1054741338997d2369197d91acb2eab7f6b11d3855ed1",
    },
    apply=apply,
    saves="about a tenth of the Rasa server's CPU (six to nine replays of the conversation a turn)",
)
