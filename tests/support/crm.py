"""A reference CRM of a test module's own, for tests that change data (redeem, cancel, re-address),
so they neither depend on nor disturb the session CRM other tests read."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from bot.launcher import wait_healthy
from bot.redis_server import free_port
from bot.settings import PROJECT_ROOT


@contextlib.contextmanager


def seeded_crm(var_dir: Path) -> Iterator[str]:
    """Seed a CRM database under ``var_dir``, serve it on a free port, yield its base URL."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "VAR_DIR": str(var_dir),
           "DATABASE_URL": f"sqlite:///{var_dir / 'crm.sqlite3'}"}
    subprocess.run([sys.executable, "-m", "crm", "seed"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "crm", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/health", process, "crm", 60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
