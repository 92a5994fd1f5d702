"""Fixtures of the handoff package's tests: a real redis-server on a free port."""

from tests.support.redis import redis_server, redis_url  # noqa: F401  (fixtures)
