"""Throttling of phone-tail verification, counted in Redis before the CRM is asked.

An anonymous shopper proves an order with its number and the last four digits of its phone: 10,000
possible tails, so guesses must be few. Every attempt reserves one failure on the order
(``verify:fail:order:<order id>``) and on each client making it (``verify:fail:client:<client>``:
the conversation, and the signed customer when there is one) in one atomic Lua step, before the CRM
is called; a tail that turns out right (or a CRM that did not answer) gives the reservation back.
Once an order has ``max_failures_per_order`` failures (in flight or done) every further attempt for
it is refused without a CRM call until its count expires ``window_minutes`` after its first failure,
and the same for a client at ``max_failures_per_client``. The numbers are in
``actions/policy/verification.yml``.

When Redis cannot answer, :meth:`VerificationThrottle.reserve` raises :class:`ThrottleUnavailable`:
verification fails closed, it never falls back to unlimited guessing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import yaml
from redis.asyncio import Redis

from bot.settings import get_settings
from handoff.context import REDIS_FAILURES, redis_client

logger = logging.getLogger(__name__)

POLICY_FILE = Path(__file__).with_name("policy") / "verification.yml"
REDIS_TIMEOUT_S = 0.5
"""Connect and per-command socket timeout of the throttle's Redis client."""
CALL_BUDGET_S = 1.5
"""Longest one reservation or release may take, connection wait included."""

ORDER = "order"
CLIENT = "client"


@dataclass(frozen=True)
class VerificationPolicy:
    """The verification policy, as read from the policy file.

    Attributes:
        failures_before_human: wrong pairs in a row in one conversation before a human is offered.
        window_s: how long a count of failures lives after its first failure, seconds.
        max_failures_per_order: failures of one order after which it is refused until the window ends.
        max_failures_per_client: failures of one client (across orders) after which it is refused.
    """

    failures_before_human: int
    window_s: int
    max_failures_per_order: int
    max_failures_per_client: int


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"verification policy: {where} must be an integer ≥ 1, got {value!r}")
    return value


def policy_from_dict(raw: Mapping[str, Any]) -> VerificationPolicy:
    """Build the policy from the parsed policy file.

    Raises:
        ValueError: a value is missing or not a positive integer.
    """
    try:
        conversation, throttle = raw["conversation"], raw["throttle"]
        return VerificationPolicy(
            failures_before_human=_positive_int(conversation["failures_before_human"], "failures_before_human"),
            window_s=_positive_int(throttle["window_minutes"], "window_minutes") * 60,
            max_failures_per_order=_positive_int(throttle["max_failures_per_order"], "max_failures_per_order"),
            max_failures_per_client=_positive_int(throttle["max_failures_per_client"], "max_failures_per_client"),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"verification policy: missing or malformed {error}") from error


def load_policy(path: Path = POLICY_FILE) -> VerificationPolicy:
    """Read the policy file."""
    return policy_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def default_policy() -> VerificationPolicy:
    """The shipped policy, read once."""
    return load_policy()


def order_key(order_id: str) -> str:
    """The Redis key counting failed tails of one order."""
    return f"verify:fail:order:{order_id}"


def client_key(client: str) -> str:
    """The Redis key counting failed tails of one client (``sender:<id>``, ``customer:<id>``)."""
    return f"verify:fail:client:{client}"


RESERVE = """
-- KEYS[1]: failures of the order; KEYS[2..n]: failures of the clients making the attempt.
-- ARGV: max per order, max per client, window ms.
-- Returns {1, 0, 0} when one failure is reserved on every key, or {0, i, ms} when KEYS[i] is at its
-- maximum (nothing is counted then) and expires in ms.
local window = tonumber(ARGV[3])
for i = 1, #KEYS do
  local maximum = tonumber(i == 1 and ARGV[1] or ARGV[2])
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= maximum then
    local ttl = redis.call('PTTL', KEYS[i])
    if ttl < 0 then
      redis.call('PEXPIRE', KEYS[i], window)
      ttl = window
    end
    return {0, i, ttl}
  end
end
for i = 1, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 or redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], window)
  end
end
return {1, 0, 0}
"""

RELEASE = """
-- KEYS: the keys of one reservation. Gives its failure back (never below zero).
for i = 1, #KEYS do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count > 1 then
    redis.call('DECR', KEYS[i])
  elseif count == 1 then
    redis.call('DEL', KEYS[i])
  end
end
return 1
"""


class ThrottleUnavailable(Exception):
    """Redis could not count the attempt: verification must not go ahead."""


@dataclass(frozen=True)
class Attempt:
    """The outcome of reserving one verification attempt.

    Attributes:
        keys: the keys the attempt was counted on (empty when refused).
        refused_by: None when the attempt may go ahead; :data:`ORDER` or :data:`CLIENT` otherwise.
        retry_at: when a refused attempt may be made again, epoch seconds.
    """

    keys: Tuple[str, ...] = ()
    refused_by: Optional[str] = None
    retry_at: Optional[float] = None

    @property
    def allowed(self) -> bool:
        """Whether the CRM may be asked."""
        return self.refused_by is None

    def retry_time(self, tz: Any) -> Optional[datetime]:
        """When a refused attempt may be made again, in ``tz``, rounded up to the minute."""
        if self.retry_at is None:
            return None
        return datetime.fromtimestamp(math.ceil(self.retry_at / 60) * 60, tz)


class VerificationThrottle:
    """Counts phone-tail verification attempts in the Redis at ``url``.

    Args:
        url: the Redis URL (``REDIS_URL``, or the embedded Redis the launcher starts).
        policy: the verification policy.
        clock: epoch seconds (tests).
        redis: a client to use instead of the pooled one of the running event loop.
    """

    def __init__(self, url: str, policy: Optional[VerificationPolicy] = None, clock: Callable[[], float] = time.time,
                 redis: Optional[Redis] = None) -> None:
        self.url = url
        self.policy = policy or default_policy()
        self.clock = clock
        self._redis = redis

    def _client(self) -> Redis:
        return self._redis or redis_client(self.url, REDIS_TIMEOUT_S)

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await asyncio.wait_for(self._client().eval(script, len(keys), *keys, *args), CALL_BUDGET_S)
        except REDIS_FAILURES as error:
            raise ThrottleUnavailable(type(error).__name__) from error

    async def reserve(self, order_id: str, clients: Sequence[str]) -> Attempt:
        """Count one attempt on ``order_id`` by ``clients`` before the CRM is asked.

        Returns:
            The reservation, or the refusal with its retry time (nothing counted then).

        Raises:
            ThrottleUnavailable: Redis did not answer; the attempt must be refused.
        """
        keys = (order_key(order_id), *(client_key(client) for client in dict.fromkeys(clients)))
        policy = self.policy
        reply = await self._run(RESERVE, keys, (policy.max_failures_per_order, policy.max_failures_per_client,
                                                policy.window_s * 1000))
        granted, index, ttl_ms = (int(value) for value in reply)
        if granted:
            return Attempt(keys=keys)
        return Attempt(refused_by=ORDER if index == 1 else CLIENT, retry_at=self.clock() + ttl_ms / 1000)

    async def release(self, attempt: Attempt) -> None:
        """Give back a reserved attempt that was not a failure (a right tail, a CRM that did not answer).

        A release Redis cannot make is logged and skipped: it only leaves one failure too many.
        """
        if not attempt.keys:
            return
        try:
            await self._run(RELEASE, attempt.keys, ())
        except ThrottleUnavailable as error:
            logger.warning("verification.throttle.release_failed keys=%s error=%s", attempt.keys[0], error)

    async def forget(self, order_id: str, clients: Sequence[str] = ()) -> None:
        """Drop the counts of an order and of clients (an agent who verified the shopper, tests)."""
        keys = [order_key(order_id), *(client_key(client) for client in clients)]
        try:
            await asyncio.wait_for(self._client().delete(*keys), CALL_BUDGET_S)
        except REDIS_FAILURES as error:
            raise ThrottleUnavailable(type(error).__name__) from error


_throttle: Optional[VerificationThrottle] = None


def get_throttle() -> VerificationThrottle:
    """The action server's throttle, on the Redis of the settings (``REDIS_URL``)."""
    global _throttle
    if _throttle is None:
        _throttle = VerificationThrottle(get_settings().effective_redis_url)
    return _throttle


def set_throttle(throttle: Optional[VerificationThrottle]) -> None:
    """Use ``throttle`` from now on (tests); None goes back to the settings' Redis."""
    global _throttle
    _throttle = throttle
