"""Helpers of the CRM tests: running ``python -m crm`` and talking to the server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pytest

from crm.clock import Clock

REPO = Path(__file__).resolve().parents[2]
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
API_KEY = "test-crm-key"
# The date every test database is seeded for, fixed once per test run: a suite that runs across
# the shop's midnight seeds the same day its assertions count from.
SEED_DAY = Clock.for_timezone("Asia/Shanghai").today()
PG_ADMIN = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


def crm_env(database_url: str, var_dir: Path, **extra: str) -> Dict[str, str]:
    """Environment for a ``python -m crm`` subprocess."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "VAR_DIR": str(var_dir),
            "CRM_API_KEY": API_KEY,
            "PYTHONPATH": str(REPO),
            "PYTHONDONTWRITEBYTECODE": "1",
            "SEED_TODAY": SEED_DAY.isoformat(),
        }
    )
    env.update(extra)
    return env


def run_crm(args: list, env: Dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m crm <args>`` and fail the test with its output if it fails."""
    result = subprocess.run([PYTHON, "-m", "crm", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"python -m crm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_error() -> Optional[str]:
    """Why PostgreSQL cannot be used for tests, or None when it can."""
    try:
        import psycopg2
    except ImportError as error:
        return f"psycopg2 not installed: {error}"
    try:
        psycopg2.connect(connect_timeout=3, **PG_ADMIN).close()
    except Exception as error:
        return f"PostgreSQL at 127.0.0.1:5432 (user postgres) unreachable: {error}"
    return None


def _pg_admin(statement: str) -> None:
    import psycopg2

    connection = psycopg2.connect(connect_timeout=5, **PG_ADMIN)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def create_postgres_database() -> str:
    """Create ``crm_test_<random>`` and return its URL (skips when PostgreSQL is unreachable)."""
    reason = postgres_error()
    if reason:
        pytest.skip(reason)
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_postgres_database(url: str) -> None:
    """Drop a database made by :func:`create_postgres_database`."""
    name = url.rsplit("/", 1)[1]
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _lower(headers: Any) -> Dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@dataclass
class CrmServer:
    """A running CRM subprocess and how to talk to it."""

    base_url: str
    database_url: str
    backend: str
    log_path: Path

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: Optional[str] = API_KEY,
        raw: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, Any, Dict[str, str]]:
        """Send a request; returns status, decoded JSON body and headers."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode("utf-8"))
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("X-API-Key", key)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, payload, response_headers = response.status, response.read(), _lower(response.headers)
        except urllib.error.HTTPError as error:
            status, payload, response_headers = error.code, error.read(), _lower(error.headers)
        try:
            decoded = json.loads(payload.decode("utf-8"))
        except ValueError:
            pytest.fail(f"{method} {path} answered {status} with non-JSON body {payload[:200]!r}")
        return status, decoded, response_headers

    def get(self, path: str, **options: Any) -> Tuple[int, Any]:
        status, body, _ = self.call("GET", path, **options)
        return status, body

    def post(self, path: str, body: Any = None, **options: Any) -> Tuple[int, Any]:
        status, body, _ = self.call("POST", path, body, **options)
        return status, body

    def ok(self, path: str) -> Any:
        """GET that must answer 200; returns the body."""
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return body


def start_server(database_url: str, var_dir: Path) -> Tuple[subprocess.Popen, CrmServer]:
    """Start ``python -m crm serve`` on a free port and wait for ``/health``."""
    port = free_port()
    log_path = var_dir / "crm-server.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [PYTHON, "-m", "crm", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=crm_env(database_url, var_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = CrmServer(
        f"http://127.0.0.1:{port}", database_url, "postgresql" if database_url.startswith("postgresql") else "sqlite", log_path
    )
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"CRM server exited with {process.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(server.base_url + "/health", timeout=2) as response:
                if response.status == 200:
                    return process, server
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    process.kill()
    pytest.fail(f"CRM server did not become healthy:\n{log_path.read_text(errors='replace')}")
    raise AssertionError  # unreachable


def stop_server(process: subprocess.Popen) -> None:
    """Terminate the server process (kill it if it does not stop)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
