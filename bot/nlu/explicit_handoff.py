"""An explicit request for a human is always read as ``human_agent``.

The channels queue a message that says nothing but 「转人工」 before the bot's turn
(:mod:`handoff.express`); the bot's turn must then run the handoff, whatever the statistical
classifier thinks of a wording it has not seen (「你好，请转人工，谢谢」 can fall below the fallback
threshold). This component, placed after ``FallbackClassifier``, applies the channel's own test
(:func:`handoff.express.is_explicit_request`) to what the shopper typed and, when it holds, makes
``human_agent`` the intent with confidence 1. Every other message keeps the classifier's reading.
"""

from __future__ import annotations

from typing import Any, Dict, List

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

from bot.nlu.components import ORIGINAL_TEXT
from handoff.express import EXPRESS_INTENT, is_explicit_request


def read_as_explicit_request(message: Message) -> bool:
    """Make ``human_agent`` the message's intent if it only asks for a human.

    Args:
        message: a parsed message (intent and ranking already set by the classifiers).

    Returns:
        True when the intent was set.
    """
    typed = message.get(ORIGINAL_TEXT) or message.get(TEXT)
    if not is_explicit_request(typed):
        return False
    intent = {INTENT_NAME_KEY: EXPRESS_INTENT, PREDICTED_CONFIDENCE_KEY: 1.0}
    ranking = [dict(r) for r in message.get(INTENT_RANKING_KEY) or [] if r.get(INTENT_NAME_KEY) != EXPRESS_INTENT]
    message.set(INTENT, intent, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [intent, *ranking], add_to_output=True)
    return True


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class ExplicitHandoffClassifier(GraphComponent):
    """Reads a message that only asks for a human (转人工、人工客服、真人 …) as ``human_agent``."""

    @classmethod
    def create(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ExplicitHandoffClassifier:
        """Creates the component (it has no state)."""
        return cls()

    def process(self, messages: List[Message]) -> List[Message]:
        """Sets ``human_agent`` on the messages that only ask for a human."""
        for message in messages:
            read_as_explicit_request(message)
        return messages
