"""The login gate in process, over a real Redis: how many password checks guessing gets, how many
run at once, the cost of unknown usernames, client addresses behind proxies, roles in the agents file."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, Coroutine, Dict, List

import pytest
from redis.asyncio import Redis

from bot.settings import PROJECT_ROOT
from desk.auth import (
    Agent,
    AgentsFileError,
    Limit,
    LoginGate,
    LoginLimits,
    address_bucket,
    client_address,
    dummy_hash,
    hash_password,
    load_agents,
    parse_agents,
    parse_networks,
    verify_password,
)
from handoff import keys
from tests.support.desk import POLICY_FILE
from tests.support.handoff import run

AGENTS = {"agent1": Agent("agent1", "小王", hash_password("agent1-pass", "pbkdf2_sha256", cost=1000))}


class CountingVerify:
    """verify_password that counts its calls and how many run at the same time."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls: List[str] = []
        self.running = 0
        self.most_at_once = 0
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, password: str, stored: str) -> bool:
        with self.lock:
            self.calls.append(stored)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay_s)
        try:
            return verify_password(password, stored)
        finally:
            with self.lock:
                self.running -= 1


def with_redis(redis_url: str, work: Callable[[Redis], Coroutine[Any, Any, Any]]) -> Any:
    return run(redis_url, POLICY_FILE, lambda ctx: work(ctx.redis))


def test_forty_parallel_guesses_get_five_checks_at_most_two_at_once(redis_url: str):
    verify = CountingVerify(delay_s=0.02)
    gate = LoginGate(AGENTS, verify=verify)

    async def guess(redis: Redis) -> List[str]:
        results = await asyncio.gather(*(gate.login(redis, "agent1", f"guess-{n}", "192.0.2.1") for n in range(40)))
        return [r.status for r in results]

    statuses = with_redis(redis_url, guess)
    assert statuses.count("invalid") == 5 and statuses.count("throttled") == 35
    assert len(verify.calls) == 5 and verify.most_at_once <= 2

    result = with_redis(redis_url, lambda redis: gate.login(redis, "agent1", "agent1-pass", "192.0.2.99"))
    assert result.status == "ok" and result.agent == AGENTS["agent1"]


def test_limits_per_client_and_per_username(redis_url: str):
    limits = LoginLimits(per_user_client=Limit(3, 60), per_client=Limit(5, 60), per_user=Limit(8, 60))
    gate = LoginGate(AGENTS, limits, verify=CountingVerify())

    async def scenario(redis: Redis) -> Dict[str, Any]:
        per_client = [(await gate.login(redis, f"user{n}", "x", "192.0.2.1")).status for n in range(6)]
        spread = [(await gate.login(redis, "agent1", "x", f"198.51.100.{n}")).status for n in range(9)]
        refused = await gate.login(redis, "agent1", "agent1-pass", "198.51.100.200")
        return {"per_client": per_client, "spread": spread, "refused": refused}

    out = with_redis(redis_url, scenario)
    assert out["per_client"] == ["invalid"] * 5 + ["throttled"]
    assert out["spread"] == ["invalid"] * 8 + ["throttled"]
    assert out["refused"].status == "throttled" and out["refused"].scope == "user" and out["refused"].retry_after_s > 0


def test_a_success_clears_its_counter_and_gives_back_the_attempt(redis_url: str):
    gate = LoginGate(AGENTS, LoginLimits(per_user_client=Limit(3, 60), per_client=Limit(10, 60), per_user=Limit(50, 60)),
                     verify=CountingVerify())

    async def scenario(redis: Redis) -> List[Any]:
        out: List[Any] = []
        for password in ("x", "x", "agent1-pass", "x", "x", "agent1-pass", "agent1-pass"):
            out.append((await gate.login(redis, "agent1", password, "192.0.2.5")).status)
        counts = [await redis.get(k) for k in (keys.login_attempts("agent1", "192.0.2.5"), keys.login_attempts_client("192.0.2.5"),
                                              keys.login_attempts_user("agent1"))]
        return out + counts

    # the (username, address) counter starts again after each success; the others count only the failures
    assert with_redis(redis_url, scenario) == ["invalid", "invalid", "ok", "invalid", "invalid", "ok", "ok", None, "4", "4"]


def test_unknown_usernames_are_checked_against_a_hash_of_the_same_cost(redis_url: str):
    verify = CountingVerify()
    gate = LoginGate(AGENTS, verify=verify)
    result = with_redis(redis_url, lambda redis: gate.login(redis, "nobody", "agent1-pass", "192.0.2.7"))
    assert result.status == "invalid" and verify.calls == [gate.dummy]
    known = AGENTS["agent1"].password_hash.split("$")
    dummy = gate.dummy.split("$")
    assert dummy[:-2] == known[:-2] and [len(p) for p in dummy] == [len(p) for p in known] and dummy[-1] != known[-1]
    assert dummy_hash([]).startswith("scrypt$16384$8$1$")


@pytest.mark.parametrize(
    "peer, forwarded, trusted, client",
    [
        ("10.0.0.5", None, "", "10.0.0.5"),
        ("10.0.0.5", "203.0.113.9", "", "10.0.0.5"),  # not a trusted proxy: the header is the client's own words
        ("10.0.0.5", "203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.7", "10.0.0.0/8", "203.0.113.9"),  # the client cannot choose by prepending
        ("10.0.0.5", "garbage", "10.0.0.5", "10.0.0.5"),
        ("::1", "2001:db8::1", "::1", "2001:db8::1"),
    ],
)
def test_client_address(peer: str, forwarded, trusted: str, client: str):
    assert client_address(peer, forwarded, parse_networks(trusted)) == client


@pytest.mark.parametrize(
    "client, bucket",
    [("192.0.2.1", "192.0.2.1"), ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("::ffff:192.0.2.1", "192.0.2.1"), ("unknown", "unknown")],
)
def test_attempts_from_ipv6_are_counted_per_network(client: str, bucket: str):
    assert address_bucket(client) == bucket


def test_roles_in_the_agents_file():
    agents = load_agents(PROJECT_ROOT / "desk" / "agents.yml")
    assert agents["supervisor"].supervisor and agents["supervisor"].role == "supervisor"
    assert not agents["agent1"].supervisor and agents["agent2"].role == "agent"
    assert verify_password("supervisor-pass", agents["supervisor"].password_hash)
    assert parse_agents({"agents": {"a": {"password": "x"}}})["a"].role == "agent"
    with pytest.raises(AgentsFileError):
        parse_agents({"agents": {"a": {"password": "x", "role": "admin"}}})
