"""The fleet's hosts and addresses, and the environment each service gets (pure: nothing runs here).

Every host is a network namespace with one veth leg on the bridge ``sfbr0`` in the private subnet
10.231.0.0/24; the root namespace is the gateway host at 10.231.0.1, where the CRM runs next to the
machine's PostgreSQL (which listens on 127.0.0.1 only). The addresses are the ones written in
``fleet/haproxy.cfg`` and ``fleet/redis/*.conf`` (a test checks that they agree).
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

SUBNET = "10.231.0.0/24"
PREFIX_LEN = 24
BRIDGE = "sfbr0"
GATEWAY = "10.231.0.1"
"""The root namespace's address on the bridge: the CRM and the runner."""
NAMESPACE_PREFIX = "shopfleet-"
MASTER_NAME = "shop-master"
"""The name the sentinels monitor the master under, and the host part of every service's REDIS_URL."""
REDIS_PORT = 6379
SENTINEL_PORT = 26379
RASA_PORT = 5005
ACTION_PORT = 5055
DESK_PORT = 7100
CRM_PORT = 7000
STATS_PORT = 8404


@dataclass(frozen=True)
class Host:
    """One namespace of the fleet.

    Attributes:
        name: the short name (``rasa1``); the namespace is ``shopfleet-<name>``, its hostname the same.
        address: its address on the bridge.
        runs: what runs there (``rasa``, ``actions``, ``desk``, ``haproxy``, ``redis``, ``sentinel``).
    """

    name: str
    address: str
    runs: Tuple[str, ...]

    @property
    def namespace(self) -> str:
        return NAMESPACE_PREFIX + self.name

    @property
    def veth(self) -> str:
        """The root namespace's end of the host's veth pair (15 characters at most)."""
        return f"sfv-{self.name}"[:15]


HOSTS: Tuple[Host, ...] = (
    Host("lb", "10.231.0.2", ("haproxy",)),
    Host("rasa1", "10.231.0.11", ("rasa",)),
    Host("rasa2", "10.231.0.12", ("rasa",)),
    Host("act1", "10.231.0.21", ("actions",)),
    Host("act2", "10.231.0.22", ("actions",)),
    Host("desk1", "10.231.0.31", ("desk",)),
    Host("desk2", "10.231.0.32", ("desk",)),
    Host("redis1", "10.231.0.41", ("redis", "sentinel")),
    Host("redis2", "10.231.0.42", ("redis", "sentinel")),
    Host("sentinel3", "10.231.0.43", ("sentinel",)),
)

ROLE_PORTS = {"rasa": RASA_PORT, "actions": ACTION_PORT, "desk": DESK_PORT}


def host(name: str) -> Host:
    """The host called ``name``."""
    return next(h for h in HOSTS if h.name == name)


def hosts_running(what: str) -> Tuple[Host, ...]:
    """Every host where ``what`` runs, in order."""
    return tuple(h for h in HOSTS if what in h.runs)


LB = host("lb").address


def sentinels() -> str:
    """``REDIS_SENTINELS`` of every service."""
    return ",".join(f"{h.address}:{SENTINEL_PORT}" for h in hosts_running("sentinel"))


@dataclass(frozen=True)
class Secrets:
    """Per-run secrets: nothing shipped, so the production guard lets every service start."""

    shop_identity_secret: str
    crm_api_key: str
    wechat_token: str
    wechat_appsecret: str
    wechat_encoding_aes_key: str
    action_server_token: str
    redis_password: str
    sentinel_password: str
    agent_passwords: Dict[str, str]
    metrics_token: str

    @classmethod
    def generate(cls) -> Secrets:
        """Fresh random secrets."""
        alphabet = string.ascii_letters + string.digits
        return cls(
            shop_identity_secret=secrets.token_urlsafe(36), crm_api_key=secrets.token_urlsafe(24),
            wechat_token=secrets.token_hex(16), wechat_appsecret=secrets.token_hex(16),
            wechat_encoding_aes_key="".join(secrets.choice(alphabet) for _ in range(43)),
            action_server_token=secrets.token_urlsafe(32), redis_password=secrets.token_hex(24),
            sentinel_password=secrets.token_hex(24), agent_passwords={"agent1": secrets.token_urlsafe(18), "agent2": secrets.token_urlsafe(18)},
            metrics_token=secrets.token_urlsafe(24))


def redis_url(keys: Secrets) -> str:
    """Every service's ``REDIS_URL``: the password, database 0, and the master's name as its host."""
    return f"redis://:{keys.redis_password}@{MASTER_NAME}:{REDIS_PORT}/0"


def service_env(role: str, on: Optional[Host], keys: Secrets, run_dir: Path, database_url: str = "") -> Dict[str, str]:
    """The settings (environment variables) of one service of the fleet.

    Args:
        role: ``rasa``, ``actions``, ``desk`` or ``crm``.
        on: the host it runs on (None: the root namespace, for the CRM).
        keys: the run's secrets.
        run_dir: the run's directory (agents file, policy, each host's VAR_DIR).
        database_url: the CRM's PostgreSQL database.
    """
    name = on.name if on else "gateway"
    env = {
        "SHOP_ENV": "production",
        "VAR_DIR": str(run_dir / "hosts" / name / "var"),
        "SHOP_IDENTITY_SECRET": keys.shop_identity_secret,
        "CRM_API_KEY": keys.crm_api_key,
        "CRM_HOST": GATEWAY,
        "CRM_PORT": str(CRM_PORT),
        "CRM_URL": f"http://{GATEWAY}:{CRM_PORT}",
        "WECHAT_TOKEN": keys.wechat_token,
        "WECHAT_APPID": "fleet-appid",
        "WECHAT_APPSECRET": keys.wechat_appsecret,
        "WECHAT_ENCODING_AES_KEY": keys.wechat_encoding_aes_key,
        "WECHAT_API_BASE": f"http://{GATEWAY}:7399",  # nothing listens: no WeChat traffic in the fleet test
        "APP_CALLBACK_ORIGINS": "https://shop.example.com:443",
        "APP_CALLBACK_ALLOWED_NETWORKS": "none",
        "ACTION_SERVER_TOKEN": keys.action_server_token,
        "METRICS_TOKEN": keys.metrics_token,
        "DESK_AGENTS_FILE": str(run_dir / "agents.yml"),
        "DESK_TRUSTED_PROXIES": LB,
        "HANDOFF_POLICY_FILE": str(run_dir / "service.yml"),
        "REDIS_URL": redis_url(keys),
        "REDIS_SENTINELS": sentinels(),
        "REDIS_SENTINEL_MASTER": MASTER_NAME,
        "REDIS_SENTINEL_PASSWORD": keys.sentinel_password,
        "RASA_WORKERS": "1",
        # Rasa reaches the action servers through the load balancer; each action server listens on its own host.
        "ACTION_HOST": LB,
        "ACTION_PORT": str(ACTION_PORT),
    }
    if role == "crm":
        env["DATABASE_URL"] = database_url
    elif on is not None:
        own = {"rasa": "RASA", "actions": "ACTION", "desk": "DESK"}[role]
        env[f"{own}_HOST"] = on.address
        env[f"{own}_PORT"] = str(ROLE_PORTS[role])
        if role == "rasa":  # the name HAProxy routes the web widget's socket.io sids by
            env["RASA_INSTANCE"] = on.name
    return env
