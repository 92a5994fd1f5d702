"""Agents and their logins: salted password hashes (scrypt, or PBKDF2-SHA256) and bearer sessions.

The agents file (``DESK_AGENTS_FILE``, default ``desk/agents.yml``) lists each agent's username,
the name shoppers see and a password hash made by ``python -m desk hash-password``. Sessions are
random tokens stored in Redis with a TTL, so every desk instance accepts them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional

import yaml
from redis.asyncio import Redis

from bot.handoff import keys

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PBKDF2_ITERATIONS = 240_000
MAX_LOGIN_FAILURES = 5
LOGIN_FAILURE_WINDOW_S = 300
USERNAME_MAX = 32


class AgentsFileError(ValueError):
    """The agents file is missing or malformed."""


def hash_password(password: str, scheme: str = "scrypt", salt: Optional[bytes] = None, cost: Optional[int] = None) -> str:
    """Hash a password for the agents file.

    Args:
        password: the clear-text password.
        scheme: ``scrypt`` (default) or ``pbkdf2_sha256``.
        salt: 16 random bytes unless given.
        cost: scrypt N or PBKDF2 iterations (defaults: 2**14, 240,000).

    Returns:
        ``scrypt$N$r$p$salt$hash`` or ``pbkdf2_sha256$iterations$salt$hash`` (hex).
    """
    salt = salt or secrets.token_bytes(16)
    if scheme == "scrypt":
        n = cost or SCRYPT_N
        digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
        return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"
    if scheme == "pbkdf2_sha256":
        iterations = cost or PBKDF2_ITERATIONS
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=32)
        return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"
    raise ValueError(f"unknown password scheme {scheme!r}")


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a stored hash in constant time; False for any malformed hash."""
    try:
        parts = stored.split("$")
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
            digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=256 * 1024 * 1024)
            return hmac.compare_digest(digest, expected)
        if parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            iterations, salt, expected = int(parts[1]), bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
            digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, dklen=len(expected))
            return hmac.compare_digest(digest, expected)
    except (ValueError, TypeError, MemoryError):
        return False
    return False


@dataclass(frozen=True)
class Agent:
    """A desk agent.

    Attributes:
        username: the login name.
        display_name: the name shoppers see (客服{display_name}).
        password_hash: see :func:`hash_password`.
    """

    username: str
    display_name: str
    password_hash: str


def parse_agents(raw: Mapping[str, object]) -> Dict[str, Agent]:
    """Agents from the parsed agents file.

    Raises:
        AgentsFileError: the file does not hold ``agents: {username: {display_name, password}}``.
    """
    entries = raw.get("agents") if isinstance(raw, Mapping) else None
    if not isinstance(entries, Mapping) or not entries:
        raise AgentsFileError("the agents file needs an 'agents' mapping")
    agents: Dict[str, Agent] = {}
    for username, entry in entries.items():
        if not isinstance(username, str) or not keys.SENDER.fullmatch(username) or len(username) > USERNAME_MAX:
            raise AgentsFileError(f"invalid agent username {username!r}")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("password"), str):
            raise AgentsFileError(f"agent {username}: needs a password hash")
        agents[username] = Agent(username, str(entry.get("display_name") or username), str(entry["password"]))
    return agents


def load_agents(path: Path) -> Dict[str, Agent]:
    """Read the agents file.

    Raises:
        AgentsFileError: the file cannot be read or is malformed.
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise AgentsFileError(f"cannot read the agents file {path}: {error}") from error
    return parse_agents(raw)


async def open_session(redis: Redis, username: str, ttl_s: int) -> str:
    """Create a session for an agent; returns its bearer token."""
    token = secrets.token_urlsafe(32)
    await redis.set(keys.session(token), username, ex=ttl_s)
    return token


async def session_agent(redis: Redis, token: str) -> Optional[str]:
    """The username of a valid session token, else None."""
    if not token or len(token) > 128:
        return None
    return await redis.get(keys.session(token)) or None


async def close_session(redis: Redis, token: str) -> None:
    """End a session (logout)."""
    await redis.delete(keys.session(token))


async def too_many_failures(redis: Redis, username: str) -> bool:
    """Whether a username has failed to log in too often recently."""
    count = await redis.get(keys.login_failures(username))
    return count is not None and int(count) >= MAX_LOGIN_FAILURES


async def note_failure(redis: Redis, username: str) -> None:
    """Count a failed login of a username (forgotten after a few minutes)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(keys.login_failures(username))
        pipe.expire(keys.login_failures(username), LOGIN_FAILURE_WINDOW_S)
        await pipe.execute()
