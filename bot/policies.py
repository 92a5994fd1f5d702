"""Neural components that run only where rules do not already decide.

TensorFlow inference is most of a Rasa turn's cost. Our flows are mostly deterministic rules, so:

- :class:`RuleAwareTEDPolicy` is TED, but it abstains (predicts nothing, costs nothing) where the
  training data shows the next action is already fixed: right after an action that is always
  followed by listening, and right after a user intent that is always followed by the same
  action (outside forms). The rule and memoization policies decide those turns exactly as they
  would with TED running; TED still predicts everywhere else.
- :class:`RetrievalOnlyResponseSelector` runs the response selector only for messages whose
  intent is a retrieval intent (FAQ, chitchat), the only ones whose answer it picks.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from rasa.core.policies.policy import PolicyPrediction
from rasa.core.policies.ted_policy import TEDPolicy
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.selectors.response_selector import ResponseSelector
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, ActiveLoop, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY
from rasa.shared.nlu.training_data.message import Message

GATE_FILE = "rule_gate.json"
RULE_SNIPPET_ACTION = "..."


def derive_gates(trackers: Iterable[TrackerWithCachedStates]) -> Tuple[Set[str], Set[str]]:
    """Where the training data fixes the next action.

    Returns:
        (actions always followed by ``action_listen``, intents always followed by one and the
        same action and never seen inside a form or after a conditioned rule).
    """
    after_action: Dict[str, Set[str]] = defaultdict(set)
    after_intent: Dict[str, Set[str]] = defaultdict(set)
    unsafe_intents: Set[str] = set()
    for tracker in trackers:
        previous_action: Optional[str] = None
        pending_intent: Optional[str] = None
        in_loop = False
        conditioned = False
        seen_user = False
        for event in tracker.events:
            if isinstance(event, ActiveLoop):
                in_loop = bool(event.name)
            elif isinstance(event, SlotSet) and tracker.is_rule_tracker and not seen_user:
                conditioned = True
            elif isinstance(event, UserUttered):
                seen_user = True
                pending_intent = event.intent_name
                if pending_intent and (in_loop or conditioned):
                    unsafe_intents.add(pending_intent)
            elif isinstance(event, ActionExecuted):
                name = event.action_name or event.action_text or ""
                if name == RULE_SNIPPET_ACTION:
                    previous_action = None
                    continue
                if pending_intent:
                    after_intent[pending_intent].add(name)
                    pending_intent = None
                elif previous_action and previous_action != ACTION_LISTEN_NAME:
                    after_action[previous_action].add(name)
                previous_action = name
    listen_after = {action for action, following in after_action.items() if following == {ACTION_LISTEN_NAME}}
    fixed_intents = {
        intent for intent, following in after_intent.items() if len(following) == 1 and intent not in unsafe_intents
    }
    return listen_after, fixed_intents


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITH_END_TO_END_SUPPORT, is_trainable=True)
class RuleAwareTEDPolicy(TEDPolicy):
    """TED that abstains on turns the training data already decides (see the module docstring)."""

    listen_after: Set[str]
    fixed_intents: Set[str]

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Trains TED and records where it may abstain."""
        self.listen_after, self.fixed_intents = derive_gates(training_trackers)
        return super().train(training_trackers, domain, **kwargs)

    def persist(self) -> None:
        """Persists TED and the abstention sets."""
        super().persist()
        with self._model_storage.write_to(self._resource) as path:
            (path / GATE_FILE).write_text(
                json.dumps({"listen_after": sorted(self._gate()[0]), "fixed_intents": sorted(self._gate()[1])}),
                encoding="utf-8",
            )

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> RuleAwareTEDPolicy:
        """Loads TED and the abstention sets."""
        policy = super().load(config, model_storage, resource, execution_context, **kwargs)
        try:
            with model_storage.read_from(resource) as path:
                gate = json.loads((path / GATE_FILE).read_text(encoding="utf-8"))
        except (ValueError, OSError):
            gate = {}
        policy.listen_after = set(gate.get("listen_after", []))
        policy.fixed_intents = set(gate.get("fixed_intents", []))
        return policy  # type: ignore[return-value]

    def _gate(self) -> Tuple[Set[str], Set[str]]:
        return getattr(self, "listen_after", set()), getattr(self, "fixed_intents", set())

    def should_abstain(self, tracker: DialogueStateTracker) -> bool:
        """True when the rule and memoization policies decide this prediction on their own."""
        if tracker.active_loop_name or tracker.followup_action:
            return False
        listen_after, fixed_intents = self._gate()
        latest = tracker.latest_action_name
        if latest == ACTION_LISTEN_NAME:
            intent = (tracker.latest_message.intent or {}).get(INTENT_NAME_KEY) if tracker.latest_message else None
            return intent in fixed_intents
        return latest in listen_after

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Optional[Dict[str, Any]] = None,
        precomputations: Optional[Any] = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        """TED's prediction, or an abstention where rules decide."""
        if self.should_abstain(tracker):
            return self._prediction(self._default_predictions(domain))
        return super().predict_action_probabilities(tracker, domain, rule_only_data, precomputations, **kwargs)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class RetrievalOnlyResponseSelector(ResponseSelector):
    """The response selector, run only on messages classified as a retrieval intent."""

    def process(self, messages: List[Message]) -> List[Message]:
        """Selects responses for FAQ/chitchat messages; other messages pass untouched."""
        retrieval = set(self.all_retrieval_intents)
        if self.retrieval_intent:
            retrieval.add(self.retrieval_intent)
        chosen = [m for m in messages if (m.get(INTENT) or {}).get(INTENT_NAME_KEY) in retrieval]
        if chosen:
            super().process(chosen)
        return messages
