"""The human handoff, shared by the bot's actions, the input channels and the agent desk.

- :mod:`handoff.policy`: the service policy file and the pure functions that apply it.
- :mod:`handoff.queue`: requests, the desk's idempotent intake, atomic claims, transfer, resolve.
- :mod:`handoff.conversation`: shopper and agent messages, notices, notes, transcripts.
- :mod:`handoff.callbacks`: callback tickets with due times.
- :mod:`handoff.agents`: presence, capacity and load of agents.
- :mod:`handoff.stats`: counters and metrics.
- :mod:`handoff.texts`: what shoppers read, in Chinese with concrete times.

Every state change is one Lua script or MULTI transaction in Redis (:mod:`handoff.scripts`).
"""

from handoff.context import REDIS_FAILURES, HandoffContext, context_from_settings, redis_client

__all__ = ["REDIS_FAILURES", "HandoffContext", "context_from_settings", "redis_client"]
