"""The two systems under test, started on free loopback ports and always stopped.

- :class:`StockBot`: the bot of ``rasa init`` (created and trained under ``var/bench/stock`` when
  missing), served by ``rasa run --enable-api`` with its REST channel and in-memory tracker store.
- :class:`OurStack`: our whole stack (CRM, action server, Rasa with the app channel) through
  ``bot.launcher``, on a redis-server of its own, with fresh state under ``var/bench/ours``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

from bot import launcher
from bot.redis_server import RedisServer, free_port
from bot.settings import PROJECT_ROOT, Settings, load_settings

logger = logging.getLogger("bench")

BENCH_VAR = PROJECT_ROOT / "var" / "bench"
STOCK_DIR = BENCH_VAR / "stock"
OURS_DIR = BENCH_VAR / "ours"
LOG_DIR = BENCH_VAR / "logs"

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MACHINE_BUSY = "_machine_busy"
OTHERS = "other processes (not this bench)"


class BenchError(RuntimeError):
    """A system under test could not be prepared or started."""


# ------------------------------------------------------------------------------ CPU accounting
def _proc_table() -> Dict[int, tuple]:
    """pid -> (ppid, cpu seconds) of every process visible in /proc."""
    table: Dict[int, tuple] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                raw = handle.read().decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return table


def tree_cpu_seconds(roots: Dict[str, Optional[int]]) -> Dict[str, float]:
    """CPU seconds (user + system) used so far by each named process and its descendants."""
    table = _proc_table()
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    result: Dict[str, float] = {}
    for name, root in roots.items():
        total, stack = 0.0, [root] if root in table else []
        while stack:
            pid = stack.pop()
            total += table[pid][1]
            stack.extend(children.get(pid, []))
        result[name] = total
    result["bench (load generator)"] = time.process_time()
    result[MACHINE_BUSY] = machine_busy_seconds()
    return result


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy (not idle, not waiting for I/O) since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def cpu_shares(probes: Dict[str, Dict[str, float]], window_s: float) -> Dict[str, float]:
    """Cores used by each process during the window (1.0 = one core busy all the time)."""
    start, end = probes.get("start"), probes.get("end")
    if not start or not end or window_s <= 0:
        return {}
    shares = {name: (end[name] - start.get(name, 0.0)) / window_s for name in end}
    machine = shares.pop(MACHINE_BUSY, None)
    if machine is not None:
        shares[OTHERS] = max(0.0, machine - sum(shares.values()))
    return {name: round(value, 3) for name, value in shares.items()}


# ------------------------------------------------------------------------------------ helpers
def _http_status(url: str, timeout_s: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_group(process: Optional[subprocess.Popen], name: str, timeout_s: float = 15.0) -> None:
    """SIGTERM the process group of a child started in its own session, SIGKILL if it lingers."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        logger.warning("%s ignored SIGTERM for %.0f s; killing it", name, timeout_s)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=5)


def bench_env() -> Dict[str, str]:
    """Environment of the stock bot's processes."""
    env = dict(os.environ)
    env.update({"RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2", "LOG_LEVEL_LIBRARIES": "ERROR"})
    return env


# ---------------------------------------------------------------------------------- stock bot
def stock_models(directory: Path = STOCK_DIR) -> List[Path]:
    """Trained models of the stock bot, newest last."""
    return sorted((directory / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)


def prepare_stock_bot(skip_train: bool, directory: Path = STOCK_DIR) -> Path:
    """Create the ``rasa init`` project and train it unless done before; returns the model.

    Args:
        skip_train: never create or train; fail when no stock model exists.
    """
    models = stock_models(directory)
    if models:
        return models[-1]
    if skip_train:
        raise BenchError(f"no stock model under {directory / 'models'} and --skip-stock-train was given")
    rasa = launcher.rasa_bin()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "stock-train.log"
    started = time.monotonic()
    with open(log_path, "ab") as log:
        if not (directory / "domain.yml").exists():
            directory.mkdir(parents=True, exist_ok=True)
            logger.info("creating and training the stock bot (rasa init) in %s; log: %s", directory, log_path)
            command = [rasa, "init", "--no-prompt", "--init-dir", str(directory)]
        else:
            logger.info("training the stock bot in %s; log: %s", directory, log_path)
            command = [rasa, "train", "--out", "models"]
        process = subprocess.Popen(command, cwd=directory, env=bench_env(), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = process.wait(timeout=1800)
        except BaseException:
            _stop_group(process, "stock training", timeout_s=5)
            raise
    models = stock_models(directory)
    if code != 0 or not models:
        raise BenchError(f"stock bot training failed (exit {code}); last lines of {log_path}:\n{_tail(log_path)}")
    logger.info("stock bot trained in %.0f s", time.monotonic() - started)
    return models[-1]


class StockBot:
    """``rasa run --enable-api`` of a model (the stock bot's unless told) on a free port."""

    name = "stock"

    def __init__(self, model: Path, directory: Path = STOCK_DIR, env: Optional[Dict[str, str]] = None,
                 log_name: str = "stock-rasa.log") -> None:
        self.model = model
        self.directory = directory
        self.env = env or bench_env()
        self.port = free_port()
        self.process: Optional[subprocess.Popen] = None
        self.log_path = LOG_DIR / log_name

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}/webhooks/rest/webhook"

    def start(self, timeout_s: float = 240.0) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        command = [launcher.rasa_bin(), "run", "--enable-api", "--model", str(self.model),
                   "--credentials", "credentials.yml", "--interface", "127.0.0.1", "--port", str(self.port)]
        started = time.monotonic()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.directory, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"stock rasa exited with {self.process.returncode}; last lines of {self.log_path}:\n"
                                 f"{_tail(self.log_path)}")
            if _http_status(f"{self.base_url}/status") == 200:
                logger.info("rasa ready on port %d in %.1f s (log: %s)", self.port, time.monotonic() - started,
                            self.log_path)
                return
            time.sleep(0.5)
        raise BenchError(f"stock rasa did not load its model within {timeout_s:.0f} s; see {self.log_path}")

    def cpu_roots(self) -> Dict[str, Optional[int]]:
        return {"rasa (stock)": self.process.pid if self.process else None}

    def stop(self) -> None:
        _stop_group(self.process, "stock rasa")


# ---------------------------------------------------------------------------------- our stack
def stack_cpu_roots(stack: launcher.Stack) -> Dict[str, Optional[int]]:
    """The process of each service of a launcher stack by name, and its Redis (for :func:`tree_cpu_seconds`)."""
    roots: Dict[str, Optional[int]] = {child.name: child.process.pid if child.process else None for child in stack.children}
    if stack.redis and stack.redis.process:
        roots["redis"] = stack.redis.process.pid
    return roots


class OurStack:
    """Our stack through ``bot.launcher.start_services`` on free ports and a redis-server of its own."""

    name = "ours"

    def __init__(self, model: Path, directory: Path = OURS_DIR, rasa_speedups: bool = True) -> None:
        self.model = model
        self.directory = directory
        self.redis_port = free_port()
        self.settings: Settings = dataclasses.replace(
            load_settings({}),
            rasa_speedups=rasa_speedups,  # False: stock Rasa (docs/speed.md)
            var_dir=directory,
            redis_url=f"redis://127.0.0.1:{self.redis_port}/0",
            crm_port=free_port(),
            action_port=free_port(),
            rasa_port=free_port(),
            desk_port=free_port(), shop_port=free_port(),
        )
        self.stack = launcher.Stack(self.settings)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.rasa_port}/webhooks/app/webhook"

    @property
    def crm_url(self) -> str:
        return self.settings.effective_crm_url

    def start(self) -> None:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        started = time.monotonic()
        self.stack.redis = RedisServer(self.redis_port, self.directory / "redis").start()
        try:
            launcher.start_services(self.stack, self.model)
        except subprocess.CalledProcessError as error:
            raise BenchError(f"{' '.join(map(str, error.cmd[1:]))} failed with exit {error.returncode} "
                             "(is crm/ complete and seedable?)") from error
        except RuntimeError as error:
            dead = self.stack.first_dead()
            detail = f"\nlast lines of {dead.log_path}:\n{_tail(dead.log_path)}" if dead and dead.log_path else ""
            raise BenchError(f"our stack did not start: {error}{detail}") from error
        logger.info("our stack ready in %.1f s (logs: %s)", time.monotonic() - started, self.directory / "logs")

    def cpu_roots(self) -> Dict[str, Optional[int]]:
        return stack_cpu_roots(self.stack)

    def stop(self) -> None:
        self.stack.stop()
