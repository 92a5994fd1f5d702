"""The one launcher: trains when needed and runs the whole stack on one machine.

``python -m bot.launcher run`` starts, in order: Redis (an embedded real redis-server with
append-only persistence under ``var/redis`` unless REDIS_URL is set), the reference CRM (seeded on
first run), the action server, the agent desk and the Rasa server with the app channel. It waits until each is
healthy, prints the URLs and demo accounts, and on Ctrl-C (or SIGTERM) stops every child it
started. ``train`` trains a model only when none matches the training data and code.
``serve ROLE [--port N]`` starts one service alone, the same way (:mod:`bot.roles`).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional
from urllib.parse import parse_qs, unquote, urlparse

from bot import logs, production
from bot.redis_server import RedisServer, embedded_password, port_is_open
from bot.settings import PROJECT_ROOT, Settings, load_settings
from bot.texts import training_bytes

logger = logging.getLogger("launcher")

MODEL_DIR = PROJECT_ROOT / "models"
# Everything a trained model depends on: a change to any of these needs a new model.
MODEL_INPUTS = ("config.yml", "domain.yml", "data", "bot/nlu", "bot/dictionaries")
DEMO_CUSTOMER = "C000001"


def python_bin() -> str:
    """The interpreter running the launcher (the project's .venv)."""
    return sys.executable


def rasa_bin() -> str:
    """The rasa command of the same environment."""
    return str(Path(sys.executable).with_name("rasa"))


def _input_files(root: Path) -> Iterable[Path]:
    for name in MODEL_INPUTS:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def model_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash of the training data, configuration and NLU code (response names, not wording)."""
    digest = hashlib.sha256()
    for path in _input_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(training_bytes(path))
    return digest.hexdigest()[:16]


def model_path(root: Path = PROJECT_ROOT) -> Path:
    """Where the model for the current data lives (it may not exist yet)."""
    return MODEL_DIR / f"shop-{model_fingerprint(root)}.tar.gz"


def base_env(settings: Settings, redis_url: str) -> Dict[str, str]:
    """Environment for every child: every setting resolved, Redis split for endpoints.yml.

    ``redis://[user:password@]host:port/db`` or ``rediss://...`` (TLS; ``?ssl_ca_certs=/path`` for a
    private CA) becomes REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD (both
    percent-decoded), REDIS_USE_SSL (``true`` for rediss, else empty: YAML hands Rasa a string, and
    only the empty one is false) and REDIS_SSL_CA_CERTS.
    """
    parsed = urlparse(redis_url)
    query = parse_qs(parsed.query)
    env = dict(os.environ)
    for name in Settings.__dataclass_fields__:
        env[name.upper()] = str(getattr(settings, name))
    env.update(
        {
            "PYTHONPATH": str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
            "REDIS_URL": redis_url,
            "REDIS_HOST": parsed.hostname or "127.0.0.1",
            "REDIS_PORT": str(parsed.port or 6379),
            "REDIS_DB": (parsed.path or "/0").lstrip("/") or "0",
            "REDIS_USERNAME": unquote(parsed.username or ""),
            "REDIS_PASSWORD": unquote(parsed.password or ""),
            "REDIS_USE_SSL": "true" if parsed.scheme == "rediss" else "",
            "REDIS_SSL_CA_CERTS": query.get("ssl_ca_certs", [""])[0],
            "CRM_URL": settings.effective_crm_url,
            "DATABASE_URL": settings.effective_database_url,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "LOG_LEVEL_LIBRARIES": "ERROR",
            # One Sanic worker per core beats TensorFlow threads fighting over the same cores.
            "SANIC_WORKERS": str(max(1, settings.rasa_workers)),
            "TF_INTRA_OP_PARALLELISM_THREADS": "1",
            "TF_INTER_OP_PARALLELISM_THREADS": "1",
        }
    )
    return env


def train_if_needed(env: Optional[Dict[str, str]] = None) -> Path:
    """Train a model unless one for the current data exists; returns its path."""
    target = model_path()
    if target.exists():
        logger.info("model is up to date: %s", target.relative_to(PROJECT_ROOT))
        return target
    MODEL_DIR.mkdir(exist_ok=True)
    # Concurrent trainings of the same data (two `make test` at once) wait for one another.
    with open(MODEL_DIR / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        return _train(target, env)


def train_command(out: Path, name: str) -> List[str]:
    """The command that trains the project's model into ``out/<name>.tar.gz``.

    ``rasa train`` with the training patches (``python -m bot.rasa_patches train``) and ``--force``:
    the launcher trains only when the data changed, so Rasa's training cache (off, see
    :func:`train_environment`) and its fingerprint run would only cost time.
    """
    return [sys.executable, "-m", "bot.rasa_patches", "train", "--config", "config.yml", "--domain", "domain.yml",
            "--data", "data", "--out", str(out), "--fixed-model-name", name, "--force"]


def train_environment(env: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a training: ``env`` (default: this process's) with the training cache off."""
    base = env or {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false"}
    return {**base, "RASA_MAX_CACHE_SIZE": "0"}


def _train(target: Path, env: Optional[Dict[str, str]]) -> Path:
    started = time.monotonic()
    logger.info("training a new model (about 1-2 minutes on 2 cores)...")
    subprocess.run(train_command(MODEL_DIR, target.name.removesuffix(".tar.gz")),
                   cwd=PROJECT_ROOT, env=train_environment(env), check=True)
    logger.info("trained %s in %.0f s", target.name, time.monotonic() - started)
    prune_models(keep=target)
    return target


def prune_models(keep: Path, how_many: int = 3) -> None:
    """Delete all but the newest few models (``keep`` always stays)."""
    models = sorted(MODEL_DIR.glob("shop-*.tar.gz"), key=lambda path: path.stat().st_mtime, reverse=True)
    for old in models[how_many:]:
        if old != keep:
            old.unlink(missing_ok=True)


@dataclass
class Child:
    """A service process the launcher owns."""

    name: str
    command: List[str]
    health_url: str
    process: Optional[subprocess.Popen[bytes]] = None
    log_path: Optional[Path] = None


def wait_healthy(url: str, process: subprocess.Popen[bytes], name: str, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail early if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before becoming healthy")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not become healthy at {url} within {timeout_s:.0f} s")


@dataclass
class Stack:
    """Every process of the running stack, stopped in reverse order."""

    settings: Settings
    redis: Optional[RedisServer] = None
    children: List[Child] = field(default_factory=list)

    def start_child(self, child: Child, env: Dict[str, str], timeout_s: float) -> None:
        """Start one service in its own session (so Ctrl-C reaches only the launcher) and wait."""
        host_port = urlparse(child.health_url)
        if port_is_open(host_port.hostname or "127.0.0.1", host_port.port or 80):
            raise RuntimeError(f"port {host_port.port} for {child.name} is already in use (is the stack already running?)")
        log_dir = self.settings.var_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        child.log_path = log_dir / f"{child.name}.log"
        log = open(child.log_path, "ab")
        child.process = subprocess.Popen(
            child.command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.children.append(child)
        started = time.monotonic()
        wait_healthy(child.health_url, child.process, child.name, timeout_s)
        logger.info("%-14s healthy in %.1f s (log: %s)", child.name, time.monotonic() - started,
                    child.log_path.relative_to(PROJECT_ROOT) if child.log_path.is_relative_to(PROJECT_ROOT) else child.log_path)

    def stop(self) -> None:
        """Stop every child (SIGTERM, then SIGKILL after 10 s), then Redis."""
        for child in reversed(self.children):
            if child.process and child.process.poll() is None:
                try:
                    os.killpg(child.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for child in reversed(self.children):
            if child.process:
                try:
                    child.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(child.process.pid, signal.SIGKILL)
                    child.process.wait(timeout=5)
        if self.redis:
            self.redis.stop()

    def first_dead(self) -> Optional[Child]:
        """A child that has exited, if any."""
        return next((c for c in self.children if c.process and c.process.poll() is not None), None)


def print_banner(settings: Settings, redis_url: str) -> None:
    """Tell the user where everything is and how to try it."""
    from bot.identity import identity_token_for

    token = identity_token_for(settings.shop_identity_secret, DEMO_CUSTOMER, ttl_s=12 * 3600)
    body = json.dumps({"sender": "demo-1", "message": "我的快递到哪了",
                       "metadata": {"identity_token": token}}, ensure_ascii=False)
    print(f"""
The shop assistant is running.
  App channel   http://{settings.rasa_host}:{settings.rasa_port}/webhooks/app/webhook
  Rasa server   http://{settings.rasa_host}:{settings.rasa_port}/
  Action server http://{settings.action_host}:{settings.action_port}/health
  CRM           {settings.effective_crm_url}/openapi.json   (X-API-Key: {settings.crm_api_key})
  Agent desk    http://{_local(settings.desk_host)}:{settings.desk_port}/   (agent1 / agent1-pass, agent2 / agent2-pass)
  Demo shop     http://{_local(settings.shop_host)}:{settings.shop_port}/   (log in as a demo customer, chat in the widget)
  WeChat (sim)  http://{_local(settings.wechat_sim_host)}:{settings.wechat_sim_port}/   (chat as a WeChat user; unless WECHAT_API_BASE is set)
  Redis         {redis_url}
Demo customers: see crm/DEMO_CUSTOMERS.md ({DEMO_CUSTOMER} has a late order and a returnable one).
Try it:
  curl -s -X POST http://{settings.rasa_host}:{settings.rasa_port}/webhooks/app/webhook \\
    -H 'Content-Type: application/json' -d '{body}'
  make shell        (chat in this terminal as {DEMO_CUSTOMER})
Press Ctrl-C to stop everything.
""", flush=True)


def _local(host: str) -> str:
    """The address to reach a service bound to ``host`` from this machine."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def start_embedded_redis(stack: Stack) -> str:
    """Start the embedded redis-server (password and append-only file in ``VAR_DIR/redis``); returns its URL."""
    settings = stack.settings
    redis_dir = settings.var_dir / "redis"
    stack.redis = RedisServer(settings.embedded_redis_port, redis_dir, password=embedded_password(redis_dir),
                              maxmemory_mb=settings.redis_maxmemory_mb).start()
    used_mb, limit_mb = stack.redis.memory_mb()
    logger.info("embedded redis-server on 127.0.0.1:%d (password in %s, append-only file in %s, %.0f of %s MB used)",
                stack.redis.port, redis_dir / "password", redis_dir, used_mb, f"{limit_mb:.0f}" if limit_mb else "unlimited")
    return stack.redis.url


def start_services(stack: Stack, model: Optional[Path] = None) -> str:
    """Start Redis (unless REDIS_URL is set), the CRM, the action server, the agent desk and Rasa; returns the Redis URL.

    Each service starts as its role does in ``serve`` (:func:`bot.roles.start_role`).

    Args:
        stack: where the started processes are recorded (so they can be stopped).
        model: the trained model to serve; trained first when omitted and out of date.
    """
    from bot import roles

    settings = stack.settings
    production.enforce(settings, "make run")
    redis_url = settings.redis_url or start_embedded_redis(stack)
    if not settings.action_server_token:  # one shared secret of Rasa and the action server per start
        settings = stack.settings = replace(settings, action_server_token=secrets.token_urlsafe(32))
    env = base_env(settings, redis_url)
    model = model or train_if_needed(env)
    for role in ("crm", "actions", "desk", "shop", "rasa"):
        roles.start_role(stack, role, env, model)
    return redis_url


def start_demo_peers(stack: Stack, redis_url: str) -> None:
    """Start what plays the outside world in the demo: the simulated WeChat, unless a real API is set."""
    from bot import roles

    settings = stack.settings
    if settings.wechat_api_base:
        return
    roles.guard("wechat-sim", settings)
    roles.start_role(stack, "wechat-sim", base_env(settings, redis_url))


def supervise(settings: Settings, start: Callable[[Stack], None], what: str = "stack") -> int:
    """Start services with ``start`` and supervise them until Ctrl-C or SIGTERM; returns the exit code.

    Exits with 1 as soon as one of them dies or fails to start, 130 on Ctrl-C during the start;
    every process started is stopped on the way out.
    """
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings)
    stopping = False
    supervising = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if not supervising:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    try:
        start(stack)
        logger.info("%s healthy %.1f s after start", what, time.monotonic() - started)
        supervising = True
        while not stopping:
            dead = stack.first_dead()
            if dead:
                logger.error("%s exited with code %s; stopping the %s (see %s)", dead.name,
                             dead.process.returncode if dead.process else "?", what, dead.log_path)
                return 1
            if stack.redis and stack.redis.process and stack.redis.process.poll() is not None:
                logger.error("redis-server exited with code %s; stopping the %s", stack.redis.process.returncode, what)
                return 1
            time.sleep(0.5)
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        logger.info("stopping...")
        stack.stop()
        logger.info("stopped")


def run(settings: Settings) -> int:
    """Start the whole stack and supervise it until Ctrl-C; returns the exit code."""

    def start(stack: Stack) -> None:
        redis_url = start_services(stack)
        start_demo_peers(stack, redis_url)
        print_banner(stack.settings, redis_url)

    return supervise(settings, start)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """``run``, ``train``, ``model-path`` or ``serve ROLE [--port N] [--model PATH]``."""
    from bot.roles import ROLES

    parser = argparse.ArgumentParser(prog="python -m bot.launcher", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the whole stack on this machine")
    commands.add_parser("train", help="train a model unless one matches the data")
    commands.add_parser("model-path", help="print where the model for the current data is")
    serve = commands.add_parser("serve", help="start one service (a role) against REDIS_URL and DATABASE_URL; see bot/roles.py")
    serve.add_argument("role", choices=ROLES)
    serve.add_argument("--port", type=int, help="listen on this port instead of the role's port setting")
    serve.add_argument("--model", type=Path, help="rasa: the trained model (default: the one for the current data, trained if missing)")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: ``run``, ``train``, ``model-path`` or ``serve ROLE``."""
    args = parse_args(argv)
    settings = load_settings()
    logs.configure_logging("launcher", settings.log_format, text_format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    if args.command == "train":
        train_if_needed()
        return 0
    if args.command == "model-path":
        print(model_path())
        return 0
    if args.command == "serve":
        from bot import roles

        return roles.serve(args.role, settings, args.port, args.model)
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
