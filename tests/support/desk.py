"""A desk of its own for a test: the service policy and agents files, the desk process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

import yaml

from bot.launcher import wait_healthy
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT
from desk.auth import hash_password
from tests.support.http import http

POLICY_FILE = PROJECT_ROOT / "handoff" / "service.yml"


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
