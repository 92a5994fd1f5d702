"""Shared fixtures: real servers started on free ports, so tests run beside a running stack."""

from __future__ import annotations

from tests.support.redis import redis_server, redis_url  # noqa: F401  (fixtures)


