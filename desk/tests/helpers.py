"""Helpers for the desk's tests and the handoff integration tests: a desk process on a free port,
an always-open policy, agents files, HTTP calls and handoff requests made as the bot makes them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Iterable, Optional, Tuple, TypeVar
from zoneinfo import ZoneInfo

import redis as redis_sync
import yaml
from redis.asyncio import Redis

from bot.handoff import keys
from bot.handoff.context import HandoffContext
from bot.handoff.models import HandoffRequest
from bot.handoff.policy import load_policy
from bot.launcher import wait_healthy
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT
from desk.auth import hash_password

POLICY_FILE = PROJECT_ROOT / "desk" / "policy" / "service.yml"
T = TypeVar("T")


def write_policy(path: Path, **changes: Any) -> Path:
    """A copy of the shipped policy, open around the clock, with top-level sections replaced."""
    policy = yaml.safe_load(POLICY_FILE.read_text(encoding="utf-8"))
    policy["opening_hours"] = {"default": {"open": "00:00", "close": "24:00"}, "closed_dates": []}
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(policy.get(section), dict):
            policy[section] = {**policy[section], **value}
        else:
            policy[section] = value
    path.write_text(yaml.safe_dump(policy, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def write_agents(path: Path, usernames: Iterable[str]) -> Path:
    """An agents file where each agent's password is ``<username>-pass`` (cheap hashes for speed);
    usernames starting with ``supervisor`` have the supervisor role."""
    agents = {
        name: {"display_name": f"客服{index}号" if not name.startswith("agent") else {"agent1": "小王", "agent2": "小李"}.get(name, name),
               "password": hash_password(f"{name}-pass", "pbkdf2_sha256", cost=1000),
               "role": "supervisor" if name.startswith("supervisor") else "agent"}
        for index, name in enumerate(usernames, start=1)
    }
    path.write_text(yaml.safe_dump({"agents": agents}, allow_unicode=True), encoding="utf-8")
    return path


def http(method: str, url: str, body: Any = None, token: str = "", raw: Optional[bytes] = None, timeout: float = 15) -> Tuple[int, Any]:
    """One HTTP request; returns (status, decoded JSON or text)."""
    data = raw if raw is not None else (json.dumps(body, ensure_ascii=False).encode() if body is not None else None)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        payload, status = error.read(), error.code
    try:
        return status, json.loads(payload or b"null")
    except ValueError:
        return status, payload.decode(errors="replace")


def stop_gracefully(process: Optional[subprocess.Popen], timeout_s: float = 15) -> None:
    """SIGTERM a child service, SIGKILL it when it has not exited after ``timeout_s``."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class DeskProcess:
    """A desk service run as a child process."""

    url: str
    redis_url: str
    policy_file: Path
    agents_file: Path
    env: Dict[str, str]
    log: Path
    process: Optional[subprocess.Popen] = None
    tokens: Dict[str, str] = field(default_factory=dict)

    def start(self, timeout_s: float = 60) -> DeskProcess:
        """Start the desk and wait until it is healthy."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "desk", "serve"], cwd=PROJECT_ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_healthy(f"{self.url}/health", self.process, "desk", timeout_s)
        return self

    def kill(self) -> None:
        """Kill the desk abruptly, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the desk gracefully."""
        stop_gracefully(self.process)

    def login(self, username: str, password: Optional[str] = None) -> str:
        """Log an agent in; returns and remembers the token."""
        status, body = http("POST", f"{self.url}/api/login", {"username": username, "password": password or f"{username}-pass"})
        assert status == 200, body
        self.tokens[username] = body["token"]
        return str(body["token"])

    def call(self, method: str, path: str, agent: str = "", body: Any = None) -> Tuple[int, Any]:
        """An API call as an agent (logged in before)."""
        return http(method, f"{self.url}{path}", body, token=self.tokens.get(agent, ""))


def desk_process(tmp: Path, redis_url: str, agents: Iterable[str] = ("agent1", "agent2"), desk_env: Optional[Dict[str, str]] = None,
                 **policy_changes: Any) -> DeskProcess:
    """A desk (not started) on a free port with an always-open policy and the given agents (and
    environment variables ``desk_env``, e.g. ``DESK_TRUSTED_PROXIES``)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    policy_file = write_policy(tmp / "service.yml", **policy_changes)
    agents_file = write_agents(tmp / "agents.yml", agents)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "REDIS_URL": redis_url, "DESK_HOST": "127.0.0.1", "DESK_PORT": str(port),
           "HANDOFF_POLICY_FILE": str(policy_file), "DESK_AGENTS_FILE": str(agents_file), "HANDOFF_REDELIVER_IDLE_MS": "500",
           "VAR_DIR": str(tmp), **(desk_env or {})}
    return DeskProcess(f"http://127.0.0.1:{port}", redis_url, policy_file, agents_file, env, tmp / "desk.log")


def run(redis_url: str, policy_file: Path, work: Callable[[HandoffContext], Awaitable[T]]) -> T:
    """Run a coroutine over a fresh handoff context (its own event loop and connections)."""

    async def go() -> T:
        client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)
        try:
            return await work(HandoffContext(client, load_policy(policy_file), ZoneInfo("Asia/Shanghai"), redeliver_idle_ms=500))
        finally:
            await client.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(go())
    with ThreadPoolExecutor(max_workers=1) as pool:  # inside a running loop (e.g. Playwright's): use a thread
        return pool.submit(asyncio.run, go()).result()


def request(sender: str, customer_id: Optional[str] = "C000001", tier: Optional[str] = "L2", reason: str = "requested",
            intents: Iterable[str] = ("track_order", "human_agent")) -> HandoffRequest:
    """A handoff request as ``action_handoff`` builds it."""
    summary = {
        "who": {"name": "张*", "phone": "138****5678", "customer_id": customer_id or "", "verified": bool(customer_id),
                "verification": "已验证（商城登录）" if customer_id else "未验证身份", "tier": tier or "", "tier_name": "铜牌会员"},
        "wanted": ["查询物流", "要求人工客服"],
        "orders": [],
        "bot_told": [{"text": "您的订单 880000010001 运输中", "at": time.time()}],
        "reason": {"code": reason, "label": reason},
        "mood": "平稳",
        "last_turns": [{"from": "shopper", "text": "转人工", "at": time.time()}],
    }
    return HandoffRequest(keys.new_handoff_id(), sender, customer_id, tier, "铜牌会员", reason, list(intents), summary,
                          f"【转人工摘要】\n顾客：张*（138****5678），{tier}", time.time())


def wait_for(check: Callable[[], T], timeout_s: float = 10, interval_s: float = 0.05) -> T:
    """Poll until ``check`` returns something truthy; fail after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def sync_client(redis_url: str) -> redis_sync.Redis:
    """A synchronous client for assertions."""
    return redis_sync.Redis.from_url(redis_url, decode_responses=True)
