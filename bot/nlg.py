"""The assistant's NLG: Rasa's templated responses, read from the responses files at startup.

Configured in ``endpoints.yml`` (``nlg: type: bot.nlg.ShopNaturalLanguageGenerator``); Rasa's
``NaturalLanguageGenerator.create`` loads it by module path. The responses are those of
``domain.yml`` and ``data/responses/*.yml`` as they are on disk when the server starts (the
model's copy is used for any response the files no longer hold), so a wording edit shows after a
restart, with no ``make train``. Every response is filled with the persona and the policy
figures (``bot/texts.py``) besides the slots and the values an action passes.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator

from bot.texts import fill_values, responses_on_disk


class ShopNaturalLanguageGenerator(TemplatedNaturalLanguageGenerator):
    """Templated NLG over the responses files, filled with persona and policy figures."""

    def __init__(self, endpoint_config: Any = None, domain: Any = None) -> None:
        self._on_disk = responses_on_disk()
        super().__init__(dict(domain.responses) if domain is not None else {})

    @property
    def responses(self) -> Dict[str, List[Dict[str, Any]]]:
        return self._responses

    @responses.setter
    def responses(self, model_responses: Dict[str, List[Dict[str, Any]]]) -> None:
        # Rasa's Agent sets the model's responses after loading a model: the files still win.
        self._responses = {**(model_responses or {}), **self._on_disk}

    def generate_from_slots(
        self,
        utter_action: str,
        filled_slots: Dict[str, Any],
        output_channel: str,
        **kwargs: Any,
    ) -> Optional[Dict[str, Any]]:
        return super().generate_from_slots(
            utter_action, filled_slots, output_channel, **{**fill_values(), **kwargs}
        )
