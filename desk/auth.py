"""Agents and their logins: salted password hashes (scrypt, or PBKDF2-SHA256), roles, bearer
sessions and the throttling of login attempts.

The agents file (``DESK_AGENTS_FILE``, default ``desk/agents.yml``) lists each agent's username,
the name shoppers see, a password hash made by ``python -m desk hash-password`` and a role
(``agent``, the default, or ``supervisor``). Sessions are random tokens stored in Redis with a
TTL, so every desk instance accepts them.

Login attempts are counted in Redis before the password is checked, in one atomic step, per
(username, client address), per client address and per username: an attempt over any limit is
refused without computing the hash, so parallel guesses cannot get more checks than the limit, and
a stranger guessing from elsewhere uses up only their own address's allowance, not the agent's.
Hashes are computed off the event loop, a few at a time, and an unknown username is checked
against a dummy hash of the same cost, so the answer's timing does not tell which usernames exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import yaml
from redis.asyncio import Redis

from handoff import keys
from handoff.conversation import script

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
PBKDF2_ITERATIONS = 240_000
USERNAME_MAX = 32
ROLES = ("agent", "supervisor")
HASH_CONCURRENCY = 2
"""How many password hashes are computed at once (each takes a core for tens of milliseconds)."""
HASH_QUEUE_WAIT_S = 10.0
"""How long a login waits for a turn to compute its hash before it is answered "busy"."""


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
        role: ``agent`` (the queue, the conversations offered or assigned to them, their own
            history) or ``supervisor`` (every conversation, the metrics).
    """

    username: str
    display_name: str
    password_hash: str
    role: str = "agent"
    teams: Tuple[str, ...] = ()
    """The service policy's teams the agent works in (empty: every team)."""

    @property
    def supervisor(self) -> bool:
        """Whether the agent sees every conversation and the metrics."""
        return self.role == "supervisor"


def parse_agents(raw: Mapping[str, object]) -> Dict[str, Agent]:
    """Agents from the parsed agents file.

    Raises:
        AgentsFileError: the file does not hold ``agents: {username: {display_name, password, role}}``.
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
        role = entry.get("role", "agent")
        if role not in ROLES:
            raise AgentsFileError(f"agent {username}: role must be one of {', '.join(ROLES)}, not {role!r}")
        teams = entry.get("teams") or []
        if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
            raise AgentsFileError(f"agent {username}: teams must be a list of team codes")
        agents[username] = Agent(username, str(entry.get("display_name") or username), str(entry["password"]), str(role), tuple(teams))
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


def dummy_hash(stored: Iterable[str]) -> str:
    """A hash no password matches that costs as much to check as the agents' own.

    It has the parameters most of the agents' hashes have (scheme, cost, lengths), with a random
    salt and digest, so checking a password for an unknown username takes as long as for a known one.
    """
    stored = [h for h in stored if h.count("$") in (3, 5)]
    shapes = Counter("$".join(h.split("$")[:-2]) for h in stored)
    for shape, _ in shapes.most_common():
        sample = next(h for h in stored if h.startswith(shape + "$"))
        salt, digest = sample.split("$")[-2:]
        candidate = f"{shape}${secrets.token_hex(len(salt) // 2)}${secrets.token_hex(len(digest) // 2)}"
        if len(candidate) == len(sample):
            return candidate
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${secrets.token_hex(16)}${secrets.token_hex(32)}"


class Limit(NamedTuple):
    """At most ``attempts`` login attempts in a fixed window of ``window_s`` seconds."""

    attempts: int
    window_s: int


USER_CLIENT_LIMIT = Limit(5, 300)
CLIENT_LIMIT = Limit(20, 300)
USER_LIMIT = Limit(100, 900)


@dataclass(frozen=True)
class LoginLimits:
    """The three counters of login attempts, checked and counted together before any hash.

    Attributes:
        per_user_client: one username from one client address (the agent's own allowance).
        per_client: one client address, whatever the usernames it tries.
        per_user: one username from every address together (bounds guessing spread over many
            addresses; much higher, as reaching it locks the username out everywhere).
    """

    per_user_client: Limit = USER_CLIENT_LIMIT
    per_client: Limit = CLIENT_LIMIT
    per_user: Limit = USER_LIMIT

    def args(self) -> List[int]:
        """The limits as the throttle script reads them."""
        return [n for limit in (self.per_user_client, self.per_client, self.per_user) for n in (limit.attempts, limit.window_s)]


DEFAULT_LIMITS = LoginLimits()
SCOPES = ("user_client", "client", "user")

# KEYS: (username, client), client, username. ARGV: limit and window of each, in that order.
# Refuses, counting nothing, when any counter has reached its limit (so a refused guess does not use
# up the username's overall allowance); else counts the attempt on all three.
# Returns {1, 0, 0} when admitted, {0, i, seconds left} when counter i refused it.
THROTTLE = """
for i = 1, 3 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count >= tonumber(ARGV[2 * i - 1]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 0 then
      redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
      ttl = tonumber(ARGV[2 * i])
    end
    return {0, i, ttl}
  end
end
for i = 1, 3 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
end
return {1, 0, 0}
"""

# After a successful login: forget the (username, client) attempts, and give back to the address and
# the username the one attempt that succeeded (only failures use up their allowance).
REFUND = """
redis.call('DEL', KEYS[1])
for i = 2, 3 do
  local count = tonumber(redis.call('GET', KEYS[i]) or '0')
  if count > 1 then redis.call('DECR', KEYS[i]) elseif count == 1 then redis.call('DEL', KEYS[i]) end
end
return 1
"""


def _attempt_keys(username: str, client: str) -> List[str]:
    return [keys.login_attempts(username, client), keys.login_attempts_client(client), keys.login_attempts_user(username)]


async def admit_attempt(redis: Redis, username: str, client: str, limits: LoginLimits) -> Tuple[bool, str, int]:
    """Count a login attempt unless a limit is reached, atomically.

    Returns:
        (admitted, the scope that refused it or "", seconds until that counter is forgotten).
    """
    admitted, scope, ttl = await script(redis, THROTTLE)(keys=_attempt_keys(username, client), args=limits.args())
    return bool(int(admitted)), SCOPES[int(scope) - 1] if int(scope) else "", max(1, int(ttl)) if not int(admitted) else 0


async def forget_attempts(redis: Redis, username: str, client: str) -> None:
    """After a successful login: clear the (username, client) counter and refund the attempt."""
    await script(redis, REFUND)(keys=_attempt_keys(username, client))


@dataclass(frozen=True)
class LoginResult:
    """The outcome of a login attempt.

    Attributes:
        status: ``ok``, ``invalid`` (wrong username or password), ``throttled`` (refused before
            the check) or ``busy`` (no turn to check the password in time).
        agent: the agent when ``ok``.
        retry_after_s: when throttled, seconds until the refusing counter is forgotten.
        scope: when throttled, which counter refused (``user_client``, ``client`` or ``user``).
    """

    status: str
    agent: Optional[Agent] = None
    retry_after_s: int = 0
    scope: str = ""


class LoginGate:
    """Checks logins: throttled first, then the hash computed off the loop, a few at a time.

    Args:
        agents: the agents by username.
        limits: the attempt limits.
        concurrency: how many hashes may be computed at once.
        verify: the password check (``verify_password``; tests count its calls).
    """

    def __init__(self, agents: Mapping[str, Agent], limits: LoginLimits = DEFAULT_LIMITS, concurrency: int = HASH_CONCURRENCY,
                 verify: Callable[[str, str], bool] = verify_password) -> None:
        self.agents = agents
        self.limits = limits
        self.concurrency = concurrency
        self.verify = verify
        self.dummy = dummy_hash([a.password_hash for a in agents.values()])
        self._semaphore: Optional[asyncio.Semaphore] = None

    async def _check(self, password: str, stored: str) -> Optional[bool]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        try:
            await asyncio.wait_for(self._semaphore.acquire(), timeout=HASH_QUEUE_WAIT_S)
        except asyncio.TimeoutError:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.verify, password, stored)
        finally:
            self._semaphore.release()

    async def login(self, redis: Redis, username: str, password: str, client: str) -> LoginResult:
        """Throttle, then check a username and password from a client address."""
        client = address_bucket(client)
        admitted, scope, retry_after = await admit_attempt(redis, username, client, self.limits)
        if not admitted:
            return LoginResult("throttled", retry_after_s=retry_after, scope=scope)
        agent = self.agents.get(username)
        ok = await self._check(password, agent.password_hash if agent else self.dummy)
        if ok is None:
            return LoginResult("busy")
        if agent is None or not ok:
            return LoginResult("invalid")
        await forget_attempts(redis, username, client)
        return LoginResult("ok", agent)


Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def parse_networks(text: str) -> Tuple[Network, ...]:
    """Addresses or networks separated by commas or spaces (``10.0.0.1, 172.16.0.0/12``).

    Raises:
        ValueError: an entry is not an address or a network.
    """
    return tuple(ipaddress.ip_network(part, strict=False) for part in text.replace(",", " ").split())


def _address(text: str) -> Optional[Union[ipaddress.IPv4Address, ipaddress.IPv6Address]]:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def address_bucket(client: str) -> str:
    """What login attempts are counted by: an IPv4 address, or the /64 network of an IPv6 address
    (one subscriber usually has a whole /64, so counting single addresses would be no limit)."""
    address = _address(client)
    if address is None:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_address(peer: str, forwarded_for: Optional[str], trusted: Sequence[Network]) -> str:
    """The address of the client a request comes from.

    ``X-Forwarded-For`` is honoured only when the peer is a trusted proxy: the client is then the
    last address in the header that is not itself a trusted proxy (a client cannot pick its address
    by sending the header itself, as the proxies append to it).
    """
    address = _address(peer)
    if address is None:
        return peer or "unknown"
    if not forwarded_for or not any(address in network for network in trusted):
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        previous = _address(hop)
        if previous is None:
            break
        address = previous
        if not any(address in network for network in trusted):
            break
    return str(address)
