"""The human handoff, shared by the bot's actions, the input channels and the agent desk.

- :mod:`bot.handoff.policy`: the service policy file and the pure functions that apply it.
- :mod:`bot.handoff.queue`: requests, the desk's idempotent intake, atomic claims, transfer, resolve.
- :mod:`bot.handoff.conversation`: shopper and agent messages, notices, notes, transcripts.
- :mod:`bot.handoff.callbacks`: callback tickets with due times.
- :mod:`bot.handoff.agents`: presence, capacity and load of agents.
- :mod:`bot.handoff.stats`: counters and metrics.
- :mod:`bot.handoff.texts`: what shoppers read, in Chinese with concrete times.

Every state change is one Lua script or MULTI transaction in Redis (:mod:`bot.handoff.scripts`).
"""

from bot.handoff.context import REDIS_FAILURES, HandoffContext, context_from_settings, redis_client

__all__ = ["REDIS_FAILURES", "HandoffContext", "context_from_settings", "redis_client"]
