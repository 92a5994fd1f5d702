"""One service per process: the roles of ``python -m bot.launcher serve ROLE [--port N]``.

A role is one service of the stack, started the way ``make run`` starts it (``run`` calls the same
:func:`start_role` for each), configured from the same settings, and listening on that role's
host and port settings (``--port`` overrides the port):

=============  ================================  ==============================================
role           listens on                        process
=============  ================================  ==============================================
``rasa``       ``RASA_HOST``:``RASA_PORT``       ``rasa run`` with the channels (``RASA_WORKERS``)
                                                 and the fenced patches (``python -m bot.rasa_patches``)
``actions``    ``ACTION_HOST``:``ACTION_PORT``   ``python -m actions.server``
``crm``        ``CRM_HOST``:``CRM_PORT``         ``python -m crm serve`` (seeded first if empty)
``desk``       ``DESK_HOST``:``DESK_PORT``       ``python -m desk serve``
``shop``       ``SHOP_HOST``:``SHOP_PORT``       ``python -m shop serve``
``wechat-sim`` ``WECHAT_SIM_HOST``:``..._PORT``  ``python -m wechat_sim serve``
``redis``      127.0.0.1:``EMBEDDED_REDIS_PORT``  the embedded redis-server of ``make run``
=============  ================================  ==============================================

Every role but ``redis`` works against ``REDIS_URL`` (the embedded server's address when it is
empty, so ``serve redis`` and the others make a stack on one machine) and the CRM against
``DATABASE_URL``. With ``REDIS_SENTINELS`` the services reach Redis through Sentinel
(:mod:`bot.redis_sentinel`). The production guard (:mod:`bot.production`) applies to each role on
its own host, as it applies to the whole stack in ``run``. Rasa and the action server, started
apart, must share ``ACTION_SERVER_TOKEN`` (``run`` makes one per start); ``serve`` refuses to start
either without it. Rasa's endpoint of the action server is ``ACTION_HOST``:``ACTION_PORT`` of its
own settings, which is where a load balancer in front of several action servers goes.

``serve`` supervises its one service like ``run`` supervises the stack: it waits until the service
answers its health check, logs to ``VAR_DIR/logs/<name>.log``, and stops it on SIGTERM or Ctrl-C;
it exits with 1 when the service dies.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from bot import launcher, production
from bot.settings import PROJECT_ROOT, Settings

ROLES: Tuple[str, ...] = ("rasa", "actions", "crm", "desk", "shop", "wechat-sim", "redis")
"""Every role ``serve`` knows, in the order ``run`` starts them (Redis first, then the CRM ...)."""

ADDRESSES: Dict[str, Tuple[Optional[str], str]] = {
    "rasa": ("rasa_host", "rasa_port"),
    "actions": ("action_host", "action_port"),
    "crm": ("crm_host", "crm_port"),
    "desk": ("desk_host", "desk_port"),
    "shop": ("shop_host", "shop_port"),
    "wechat-sim": ("wechat_sim_host", "wechat_sim_port"),
    "redis": (None, "embedded_redis_port"),
}
"""Per role: the settings of its host (None: loopback only) and of its port."""

NEEDS_ACTION_TOKEN = ("rasa", "actions")
"""Roles that must agree on ACTION_SERVER_TOKEN when started apart."""


class RoleError(SystemExit):
    """A role cannot start with this configuration (the message says why)."""


@dataclass(frozen=True)
class RoleLaunch:
    """How one role's process is started and checked.

    Attributes:
        name: the service's name in logs (``VAR_DIR/logs/<name>.log``), as ``run`` names it.
        command: the service's command line.
        health_url: answers 200 once the service is ready.
        timeout_s: how long it may take to become healthy.
        before: commands run to completion first (the CRM's schema and demo data).
    """

    name: str
    command: Tuple[str, ...]
    health_url: str
    timeout_s: float
    before: Tuple[Tuple[str, ...], ...] = ()


def check_role(role: str) -> str:
    """``role`` when it is one of :data:`ROLES`.

    Raises:
        RoleError: an unknown role.
    """
    if role not in ROLES:
        raise RoleError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    return role


def host_of(settings: Settings, role: str) -> str:
    """The interface ``role`` listens on."""
    field = ADDRESSES[check_role(role)][0]
    return str(getattr(settings, field)) if field else "127.0.0.1"


def port_of(settings: Settings, role: str) -> int:
    """The port ``role`` listens on."""
    return int(getattr(settings, ADDRESSES[check_role(role)][1]))


def with_port(settings: Settings, role: str, port: Optional[int]) -> Settings:
    """``settings`` with ``role``'s port set to ``port`` (unchanged when None).

    Raises:
        RoleError: a port outside 1-65535.
    """
    if port is None:
        return settings
    if not 0 < port < 65536:
        raise RoleError(f"--port {port} is not a TCP port")
    changes: Dict[str, Any] = {ADDRESSES[check_role(role)][1]: port}
    return replace(settings, **changes)


def _local_url(settings: Settings, role: str, path: str) -> str:
    return f"http://{launcher._local(host_of(settings, role))}:{port_of(settings, role)}{path}"


def launch(role: str, settings: Settings, model: Optional[Path] = None) -> RoleLaunch:
    """The command, health check and start-up time of ``role`` (every role but ``redis``).

    Args:
        role: one of :data:`ROLES` except ``redis`` (:func:`bot.launcher.start_embedded_redis`).
        settings: the configuration; the role's host and port come from it.
        model: the trained model (``rasa`` only; required there).

    Raises:
        RoleError: ``redis``, an unknown role, or ``rasa`` without a model.
    """
    py = launcher.python_bin()
    host, port = host_of(settings, role), str(port_of(settings, role))
    if role == "rasa":
        if model is None:
            raise RoleError("the rasa role needs a trained model")
        return RoleLaunch("rasa", (py, "-m", "bot.rasa_patches", "run", "--model", str(model), "--endpoints", "endpoints.yml",
                                   "--credentials", "credentials.yml", "--interface", host, "--port", port),
                          _local_url(settings, role, "/webhooks/app/"), 600)
    if role == "actions":
        return RoleLaunch("action-server", (py, "-m", "actions.server", "--host", host, "--port", port),
                          _local_url(settings, role, "/health"), 90)
    if role == "crm":
        return RoleLaunch("crm", (py, "-m", "crm", "serve", "--host", host, "--port", port), _local_url(settings, role, "/health"), 60,
                          before=((py, "-m", "crm", "ensure-seeded"),))
    if role in ("desk", "shop", "wechat-sim"):
        module = role.replace("-", "_")
        return RoleLaunch(role, (py, "-m", module, "serve", "--host", host, "--port", port), _local_url(settings, role, "/health"), 60)
    check_role(role)
    raise RoleError("the redis role is the embedded redis-server: see bot.launcher.start_embedded_redis")


def guard(role: str, settings: Settings) -> None:
    """The production guard for ``role`` alone, on its own host (see :mod:`bot.production`).

    Raises:
        bot.production.ProductionGuardError: the role would be reachable with a shipped secret or a demo part.
    """
    production.enforce(settings, role, hosts=[host_of(settings, role)], with_simulator=role == "wechat-sim",
                       check_agents=role == "desk")


def check_action_token(role: str, settings: Settings) -> None:
    """Rasa and the action server started apart must be given their shared secret.

    Raises:
        RoleError: ``rasa`` or ``actions`` with ACTION_SERVER_TOKEN empty.
    """
    if role in NEEDS_ACTION_TOKEN and not settings.action_server_token:
        raise RoleError(f"serve {role}: ACTION_SERVER_TOKEN is empty; set the same secret for `serve rasa` and `serve actions` "
                        "(`make run` makes one per start, separate roles cannot)")


def start_role(stack: launcher.Stack, role: str, env: Dict[str, str], model: Optional[Path] = None) -> launcher.Child:
    """Start ``role`` as a child of ``stack`` (what ``run`` does for each service) and wait until it is healthy.

    Raises:
        RuntimeError: the service exited or did not become healthy in time.
        subprocess.CalledProcessError: a preparing command failed.
    """
    how = launch(role, stack.settings, model)
    for command in how.before:
        subprocess.run(list(command), cwd=PROJECT_ROOT, env=env, check=True)
    child = launcher.Child(how.name, list(how.command), how.health_url)
    stack.start_child(child, env, how.timeout_s)
    return child


def serve(role: str, settings: Settings, port: Optional[int] = None, model: Optional[Path] = None) -> int:
    """Run one role until SIGTERM or Ctrl-C; returns the exit code.

    Args:
        role: one of :data:`ROLES`.
        settings: the configuration.
        port: overrides the role's port setting.
        model: the model for ``rasa`` (default: the one for the current data, trained when missing).

    Raises:
        RoleError: an unknown role, a bad port or a missing ACTION_SERVER_TOKEN.
        bot.production.ProductionGuardError: see :func:`guard`.
    """
    settings = with_port(settings, check_role(role), port)
    guard(role, settings)
    check_action_token(role, settings)

    def start(stack: launcher.Stack) -> None:
        if role == "redis":
            launcher.start_embedded_redis(stack)
            return
        env = launcher.base_env(settings, settings.effective_redis_url)
        start_role(stack, role, env, (model or launcher.train_if_needed(env)) if role == "rasa" else None)

    return launcher.supervise(settings, start, f"serve {role}")
