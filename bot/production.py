"""The production guard: no default secret, demo password or simulator where strangers can reach.

``make run`` on loopback keeps the development defaults so the two commands just work. As soon as
one service listens beyond loopback, or ``SHOP_ENV=production``, every service refuses to start
while any of these is left as shipped (:func:`problems`):

- ``SHOP_IDENTITY_SECRET`` at its default or shorter than 32 characters (every key derives from it);
- ``CRM_API_KEY``, ``WECHAT_TOKEN``, ``WECHAT_APPSECRET`` at their defaults;
- a desk agent whose password is still the demo one (``agent1-pass`` ...);
- the simulated WeChat: ``WECHAT_API_BASE`` empty (the channel would call the simulator) or the
  simulator itself being started; WeChat without safe mode (``WECHAT_ENCODING_AES_KEY`` empty);
- app callbacks open wider than named origins: an origin of ``APP_CALLBACK_ORIGINS`` with any port
  (``:*``, the development default), or ``APP_CALLBACK_ALLOWED_NETWORKS`` reaching loopback,
  link-local (cloud metadata at ``169.254.169.254``) or unspecified addresses, where a callback
  would reach the stack's own services (Redis, the action server, the desk); private networks such
  as ``10.0.0.0/8`` stay allowed for a shop backend inside the same network. An entry that cannot
  be read is named too.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Iterable, List, Optional

from bot.callback_targets import CallbackConfigError, parse_networks, parse_origins
from bot.settings import Settings

DEFAULTS = {
    "SHOP_IDENTITY_SECRET": "dev-shop-secret",
    "CRM_API_KEY": "dev-crm-key",
    "WECHAT_TOKEN": "dev-wechat-token",
    "WECHAT_APPSECRET": "dev-wechat-appsecret",
}
"""Settings whose shipped value must not reach production."""

MIN_SECRET_CHARS = 32

DEMO_PASSWORDS = ("agent1-pass", "agent2-pass", "agent3-pass", "supervisor-pass")
"""The demo desk accounts' passwords, refused for any agent in production."""


INNER_NETWORKS = tuple(ipaddress.ip_network(network) for network in (
    "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/32", "::1/128", "fe80::/10", "::/128",
    "::ffff:127.0.0.0/104", "::ffff:169.254.0.0/112", "::ffff:0.0.0.0/128"))
"""Loopback, link-local and unspecified addresses: callbacks never reach them in production."""


class ProductionGuardError(SystemExit):
    """A service refused to start: it would be reachable with a shipped secret or a demo part."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bound_hosts(settings: Settings) -> List[str]:
    """The hosts the stack's services listen on."""
    return [settings.rasa_host, settings.action_host, settings.crm_host, settings.desk_host, settings.shop_host,
            settings.wechat_sim_host]


def guarded(settings: Settings, hosts: Optional[Iterable[str]] = None) -> bool:
    """Whether the guard applies: ``SHOP_ENV=production`` or a service bound beyond loopback."""
    return settings.shop_env.strip().lower() == "production" or not all(is_loopback(h) for h in (hosts or bound_hosts(settings)))


def _demo_agents(agents_file: Path) -> List[str]:
    from desk.auth import AgentsFileError, load_agents, verify_password

    try:
        agents = load_agents(agents_file)
    except AgentsFileError:
        return []
    return [name for name, agent in agents.items() if any(verify_password(p, agent.password_hash) for p in DEMO_PASSWORDS)]


def callback_problems(settings: Settings) -> List[str]:
    """What opens the app channel's callbacks wider than production allows (empty: nothing).

    Args:
        settings: the configuration (``APP_CALLBACK_ORIGINS``, ``APP_CALLBACK_ALLOWED_NETWORKS``).
    """
    found: List[str] = []
    try:
        wildcard = [str(origin) for origin in parse_origins(settings.app_callback_origins) if origin.any_port]
        if wildcard:
            found.append(f"APP_CALLBACK_ORIGINS allows any port ({', '.join(wildcard)}): name each origin with its port")
    except CallbackConfigError as error:
        found.append(str(error))
    try:
        inner = [str(network) for network in parse_networks(settings.app_callback_allowed_networks)
                 if any(network.version == own.version and network.overlaps(own) for own in INNER_NETWORKS)]
        if inner:
            found.append(f"APP_CALLBACK_ALLOWED_NETWORKS reaches loopback or link-local addresses ({', '.join(inner)}): "
                         "callbacks could reach this machine's own services; use none or the shop backend's network")
    except CallbackConfigError as error:
        found.append(str(error))
    return found


def problems(settings: Settings, with_simulator: bool = False, check_agents: bool = True) -> List[str]:
    """What makes this configuration unfit for strangers to reach (empty: fit).

    Args:
        settings: the configuration.
        with_simulator: the simulated WeChat is about to be started too.
        check_agents: also check the desk's agents file for demo passwords.
    """
    found: List[str] = []
    values = {"SHOP_IDENTITY_SECRET": settings.shop_identity_secret, "CRM_API_KEY": settings.crm_api_key,
              "WECHAT_TOKEN": settings.wechat_token, "WECHAT_APPSECRET": settings.wechat_appsecret}
    for name, default in DEFAULTS.items():
        if values[name] == default:
            found.append(f"{name} is still the shipped default")
    if len(settings.shop_identity_secret) < MIN_SECRET_CHARS:
        found.append(f"SHOP_IDENTITY_SECRET must have at least {MIN_SECRET_CHARS} characters")
    if not settings.wechat_api_base:
        found.append("WECHAT_API_BASE is empty: the WeChat channel would talk to the simulator")
    if not settings.wechat_encoding_aes_key:
        found.append("WECHAT_ENCODING_AES_KEY is empty: WeChat messages would travel in plaintext (use safe mode)")
    if with_simulator:
        found.append("the simulated WeChat (wechat-sim) must not run in production")
    found.extend(callback_problems(settings))
    if check_agents:
        found.extend(f"desk agent {name!r} still has a demo password" for name in _demo_agents(settings.desk_agents_file))
    return found


def enforce(settings: Settings, service: str, hosts: Optional[Iterable[str]] = None, with_simulator: bool = False,
            check_agents: bool = True) -> None:
    """Refuse to start ``service`` when the guard applies and the configuration has :func:`problems`.

    Raises:
        ProductionGuardError: with every problem listed, so the operator fixes them at once.
    """
    if not guarded(settings, hosts):
        return
    found = problems(settings, with_simulator=with_simulator, check_agents=check_agents)
    if found:
        lines = "\n  - ".join(found)
        raise ProductionGuardError(f"{service}: refusing to start where strangers can reach it:\n  - {lines}\n"
                                   "Set the secrets (see .env.example) or bind to 127.0.0.1 for development.")
