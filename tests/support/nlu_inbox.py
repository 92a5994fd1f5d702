"""Helpers of the NLU inbox tests: messages kept as the Rasa server keeps them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, List, Tuple

from bot import nlu_inbox
from bot.nlu_inbox import InboxConfig, Kept, Turn
from tests.support.handoff import run

Missed = Tuple[str, str, float, Tuple[str, ...]]
"""A message the bot missed: text, predicted intent, confidence, reasons."""


def seed_inbox(redis_url: str, policy_file: Path, missed: Iterable[Missed], sender: str = "conv-inbox") -> List[str]:
    """Keep messages in the inbox (oldest first, a second apart) as the tracker store does; returns their ids."""
    now = time.time()
    kept = [Kept(Turn(text, intent, confidence, ranking=(("faq", 0.2),), message_id=f"m{index}", at=now - 100 + index, channel="app"),
                 reasons)
            for index, (text, intent, confidence, reasons) in enumerate(missed)]

    async def store(ctx) -> int:
        return await nlu_inbox.keep(ctx.redis, sender, kept, InboxConfig(), now=now)

    run(redis_url, policy_file, store)
    return [nlu_inbox.item_id(sender, k.turn) for k in kept]
