"""The one settings module: every tunable comes from an environment variable with a documented default.

Every process of the stack (Rasa server, action server, CRM, desk, launcher, tests) reads its
configuration through :func:`load_settings`, so one ``.env`` file or one set of exported variables
configures the whole stack. ``.env.example`` lists the same variables with their defaults.

Code that runs inside a turn or a request reads :func:`get_settings`: the environment and ``.env``
are read once per process and kept. A test that changes the environment of its own process calls
:func:`reset_settings` so that the next reading sees the change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """An environment variable holds a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Configuration of the whole stack; field names are the environment variable names in lower case."""

    # Where runtime state lives (SQLite file, embedded Redis data, logs, trained models).
    var_dir: Path = PROJECT_ROOT / "var"
    # Timezone in which shoppers and agents read dates and times.
    shop_timezone: str = "Asia/Shanghai"

    # Shopper identity: the shop's backend makes identity tokens with this HMAC-SHA256 key; every
    # other key (callbacks, WeChat bindings, conversation tokens, tracker encryption) derives from it.
    shop_identity_secret: str = "dev-shop-secret"
    # Accept the old never-expiring signature HMAC(secret, customer_id) besides identity tokens.
    shop_identity_static_signatures: bool = False
    # "production" refuses default secrets, demo passwords and the WeChat simulator at start.
    shop_env: str = "development"
    # Log lines of every service (bot/logs.py): "text", or "json" (one JSON object per line, with the
    # turn's correlation id; docs/operations.md).
    log_format: str = "text"

    # Reference CRM service.
    crm_host: str = "127.0.0.1"
    crm_port: int = 7000
    crm_url: str = ""  # defaults to http://{crm_host}:{crm_port}
    crm_api_key: str = "dev-crm-key"
    crm_timeout_s: float = 2.0
    crm_retries: int = 2
    database_url: str = ""  # defaults to a SQLite file under var_dir

    # Redis (tracker store, lock store, handoff queue). Empty: the launcher starts an embedded server.
    redis_url: str = ""
    embedded_redis_port: int = 6390
    # Memory cap of the embedded server, MB (0: none); beyond it writes fail and the channels answer 503.
    redis_maxmemory_mb: int = 512
    # Redis behind Sentinel (bot/redis_sentinel.py): the sentinels (host:port, comma-separated), the
    # name they monitor the master under, and their own password; REDIS_URL's host:port then names the
    # current master, e.g. redis://:secret@shop-master:6379/0. Empty: REDIS_URL is the server itself.
    redis_sentinels: str = ""
    redis_sentinel_master: str = ""
    redis_sentinel_password: str = ""

    # Rasa server, action server, agent desk.
    rasa_host: str = "127.0.0.1"
    rasa_port: int = 5005
    # Rasa server worker processes (Sanic workers sharing the Redis tracker and lock stores).
    rasa_workers: int = 2
    # Parse results of short messages kept per Rasa worker (identical text, identical parse); 0: off.
    nlu_cache_size: int = 10000
    # The fenced speed patches of Rasa's private code (bot/rasa_patches, docs/speed.md); false: stock
    # Rasa (every patch and the parse cache off).
    rasa_speedups: bool = True
    # This Rasa server's name in the web channel's socket.io sids (``<instance>.<worker pid>.``), what
    # the load balancer routes a socket's requests by (fleet/haproxy.cfg); empty: the host name.
    rasa_instance: str = ""
    # Hand a socket.io request that reached the wrong Sanic worker to the worker holding its socket
    # (connectors/worker_routing.py, docs/channels-web.md); false: engine.io's own sids, no handoff.
    web_worker_routing: bool = True
    action_host: str = "127.0.0.1"
    action_port: int = 5055
    # Shared secret Rasa sends to the action server (header X-Action-Token); empty: the launcher
    # generates one per start.
    action_server_token: str = ""
    # Largest request body the action server reads, bytes.
    action_max_body_bytes: int = 4 * 1024 * 1024
    # Longest Rasa waits for one action, seconds (below the 60 s conversation locks).
    action_timeout_s: float = 20.0
    # Origins (scheme://host:port, comma-separated) a conversation's callback_url may point at; the
    # default port is made explicit when compared; ":*" allows every port (development only: the
    # production guard refuses it). See bot/callback_targets.py.
    app_callback_origins: str = "http://127.0.0.1:*,https://127.0.0.1:*,http://localhost:*,https://localhost:*"
    # Non-global networks (CIDR, comma-separated; "none": none) callbacks may connect to; every other
    # loopback, private, link-local, multicast, reserved or unspecified address is refused.
    app_callback_allowed_networks: str = "127.0.0.0/8,::1/128"
    # Attempts at delivering a pushed message before it becomes a dead letter (push:dead:<channel>).
    push_max_attempts: int = 8
    desk_host: str = "127.0.0.1"
    desk_port: int = 7100
    # The demo shop page with the web chat widget.
    shop_host: str = "127.0.0.1"
    shop_port: int = 7200

    # WeChat official account.
    wechat_token: str = "dev-wechat-token"

    # Human handoff and the agent desk.
    # The human service policy: opening hours, SLA targets, capacity, priorities, callback windows.
    handoff_policy_file: Path = PROJECT_ROOT / "handoff" / "service.yml"
    # The desk's agents with their scrypt password hashes (python -m desk hash-password).
    desk_agents_file: Path = PROJECT_ROOT / "desk" / "agents.yml"
    # How long a desk login lasts, seconds.
    desk_session_ttl_s: int = 12 * 3600
    # Proxies (addresses or networks, comma-separated) whose X-Forwarded-For the desk believes.
    desk_trusted_proxies: str = ""
    # How often an agent's websocket re-checks its login, seconds.
    desk_ws_recheck_s: float = 15.0
    # Connect and command timeout of every handoff Redis call (actions, channel, desk), seconds.
    handoff_redis_timeout_s: float = 1.0
    # A handoff request read by a desk but not acknowledged for this long is taken over, milliseconds.
    handoff_redeliver_idle_ms: int = 10000

    # Bearer token of every service's Prometheus page (GET /metrics, bot/metrics.py); empty: the page
    # answers loopback clients only (403 for everyone else).
    metrics_token: str = ""

    # Conversations: how long an idle tracker is kept in Redis (privacy: PIPL retention), seconds.
    tracker_ttl_s: int = 30 * 24 * 3600

    # The NLU inbox (bot/nlu_inbox.py): how long a message the bot did not understand is kept for
    # review, days (0: nothing is kept); the top-intent confidence below which a message counts as
    # not understood; the most messages kept (the oldest go first).
    nlu_inbox_retention_days: int = 30
    nlu_inbox_confidence: float = 0.6
    nlu_inbox_max_items: int = 5000

    # WeChat official account (its token is WECHAT_TOKEN above): the account's credentials, the API
    # the channel calls (empty: the simulator at WECHAT_SIM_HOST:WECHAT_SIM_PORT; in production
    # https://api.weixin.qq.com), how long WeChat waits for a passive reply before the bot's answer
    # goes out as customer-service messages, seconds, how long an OpenID stays bound to a customer,
    # seconds, and where the simulated WeChat server (python -m wechat_sim) listens.
    wechat_appid: str = "dev-wechat-appid"
    wechat_appsecret: str = "dev-wechat-appsecret"
    wechat_encoding_aes_key: str = ""
    wechat_api_base: str = ""
    wechat_reply_budget_s: float = 4.0
    wechat_binding_ttl_s: int = 365 * 24 * 3600
    wechat_sim_host: str = "127.0.0.1"
    wechat_sim_port: int = 7300

    @property
    def effective_crm_url(self) -> str:
        """Base URL of the CRM that the action server calls."""
        return (self.crm_url or f"http://{self.crm_host}:{self.crm_port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        """SQLAlchemy URL of the CRM database."""
        return self.database_url or f"sqlite:///{self.var_dir / 'crm.sqlite3'}"

    @property
    def effective_redis_url(self) -> str:
        """Redis URL; the embedded server's when REDIS_URL is not set (with its password, once generated)."""
        if self.redis_url:
            return self.redis_url
        from bot.redis_server import local_url, read_password

        return local_url(self.embedded_redis_port, read_password(self.var_dir / "redis"))


def _convert(name: str, raw: str, kind: type) -> object:
    try:
        if kind is bool:
            if raw.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if raw.strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if issubclass(kind, Path):
            return Path(raw).expanduser().resolve()
        return raw
    except ValueError as error:
        raise SettingsError(f"{name.upper()}={raw!r} is not a valid {kind.__name__}") from error


def read_env_file(path: Path) -> Dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (comments and blank lines ignored)."""
    values: Dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def load_settings(environ: Optional[Mapping[str, str]] = None) -> Settings:
    """Build settings from environment variables (``CRM_PORT``, ``REDIS_URL``, ...).

    Without ``environ``, the process environment is read, over the project's ``.env`` file if
    there is one (exported variables win).

    Args:
        environ: variables to read instead of the environment and ``.env``.

    Raises:
        SettingsError: a variable is set to a value of the wrong type.
    """
    env: Mapping[str, str]
    if environ is None:
        env = {**read_env_file(PROJECT_ROOT / ".env"), **os.environ}
    else:
        env = environ
    defaults = Settings()
    values: Dict[str, Any] = {}
    for field in fields(Settings):
        raw = env.get(field.name.upper())
        if raw is None or raw == "":
            continue
        kind = type(getattr(defaults, field.name))
        values[field.name] = _convert(field.name, raw, kind)
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings: :func:`load_settings` of the environment and ``.env``, read once and kept.

    Raises:
        SettingsError: a variable is set to a value of the wrong type (raised again at the next call).
    """
    return load_settings()


def reset_settings() -> None:
    """Forget the kept settings: the next :func:`get_settings` reads the environment and ``.env`` again (tests)."""
    get_settings.cache_clear()
