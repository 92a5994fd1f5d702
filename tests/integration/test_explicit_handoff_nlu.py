"""Every message the channels queue for a human before the bot's turn is read by the bot as ``human_agent``.

The channel's test (:func:`handoff.express.is_explicit_request`) and the trained model must
agree, or a shopper already in the human queue would get a bot answer to 「转人工」.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.unit.test_express_requests import EXPLICIT

pytestmark = pytest.mark.integration


def test_the_trained_model_reads_every_explicit_request_as_human_agent(trained_model: Path, rasa_patched: dict) -> None:
    from rasa.core.agent import Agent

    agent = Agent.load(str(trained_model))

    async def intents() -> dict:
        return {text: (await agent.parse_message(text))["intent"]["name"] for text in EXPLICIT}

    read = asyncio.run(intents())
    assert {text: intent for text, intent in read.items() if intent != "human_agent"} == {}
