"""``python -m bot.launcher serve crm`` and ``serve desk`` as processes, against the machine's
PostgreSQL (127.0.0.1:5432, a database of the test's own, dropped after) and Redis (127.0.0.1:6379,
database 13, which must be empty before and is emptied after; database 0 is never touched).

Each answers its health check on the port given with ``--port``, and stops with its service on
SIGTERM (exit code 0, the port closed again).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from bot.redis_server import free_port, port_is_open
from crm.tests.support import create_postgres_database, drop_postgres_database

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MACHINE_REDIS_DB = 13


def health(url: str) -> Tuple[int, Any]:
    """GET ``url``: (status, decoded JSON), (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def serve(role: str, port: int, var_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start ``python -m bot.launcher serve <role> --port <port>`` with its own VAR_DIR."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "VAR_DIR": str(var_dir), **env}
    environment.pop("REDIS_SENTINELS", None)
    log = (var_dir / f"serve-{role}.out").open("wb")
    return subprocess.Popen([sys.executable, "-m", "bot.launcher", "serve", role, "--port", str(port)], cwd=REPO,
                            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(process: subprocess.Popen[bytes], role: str, url: str, var_dir: Path, timeout_s: float = 120) -> Dict[str, Any]:
    """The service's health answer, once the launcher too has seen it healthy (it then supervises)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}:\n{output(var_dir)}")
        status, body = health(url)
        if status == 200 and f"serve {role} healthy" in (var_dir / f"serve-{role}.out").read_text(errors="replace"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.3)
    pytest.fail(f"no health answer at {url} within {timeout_s:.0f} s:\n{output(var_dir)}")
    raise AssertionError  # unreachable


def output(var_dir: Path) -> str:
    return "\n".join(path.read_text(errors="replace")[-3000:] for path in sorted(var_dir.rglob("*.out")) + sorted(var_dir.rglob("*.log")))


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM to the launcher; its exit code (the whole session is killed if it does not stop)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    url = create_postgres_database()  # skips when PostgreSQL is unreachable
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture()
def machine_redis_url() -> Iterator[str]:
    import redis

    url = f"redis://127.0.0.1:6379/{MACHINE_REDIS_DB}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        size = client.dbsize()
    except redis.RedisError as error:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {error}")
    if size:
        pytest.skip(f"database {MACHINE_REDIS_DB} of the machine's Redis is in use ({size} keys): not touching it")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def test_serve_crm_on_postgresql_answers_its_health_check(postgres_url: str, tmp_path: Path) -> None:
    port = free_port()
    process = serve("crm", port, tmp_path, DATABASE_URL=postgres_url)
    try:
        body = wait_healthy(process, "crm", f"http://127.0.0.1:{port}/health", tmp_path)
        assert body == {"status": "ok", "database": "postgresql"}
    finally:
        code = stop(process)
    assert code == 0, output(tmp_path)
    assert not port_is_open("127.0.0.1", port)
    assert (tmp_path / "logs" / "crm.log").is_file()  # the service's own log, as under `make run`


def test_serve_desk_on_the_machines_redis_answers_its_health_check(machine_redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    process = serve("desk", port, tmp_path, REDIS_URL=machine_redis_url)
    try:
        body = wait_healthy(process, "desk", f"http://127.0.0.1:{port}/health", tmp_path)
        assert (body["status"], body["redis"]) == ("ok", "ok")
    finally:
        code = stop(process)
    assert code == 0, output(tmp_path)
    assert not port_is_open("127.0.0.1", port)
