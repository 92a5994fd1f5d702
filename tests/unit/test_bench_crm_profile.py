"""``python -m bench.crm_profile``: the CRM served under cProfile, its database threads included."""

from __future__ import annotations

import pstats
import subprocess
import time
import urllib.request
from pathlib import Path

from crm.tests.support import API_KEY, PYTHON, REPO, crm_env, free_port, run_crm


def _get(url: str) -> int:
    request = urllib.request.Request(url, headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_the_profile_holds_the_use_cases_run_on_the_database_threads(tmp_path: Path) -> None:
    env = crm_env(f"sqlite:///{tmp_path / 'crm.sqlite3'}", tmp_path)
    run_crm(["seed", "--customers", "5"], env)
    port, output = free_port(), tmp_path / "crm.prof"
    log = (tmp_path / "crm.log").open("wb")
    process = subprocess.Popen([PYTHON, "-m", "bench.crm_profile", str(output), "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                if _get(f"{base}/health") == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert _get(f"{base}/api/customers/C000001/orders?limit=5") == 200
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode == 0, (tmp_path / "crm.log").read_text(errors="replace")
    functions = {name for _, _, name in pstats.Stats(str(output)).stats}  # type: ignore[attr-defined]
    assert "list_customer_orders" in functions  # run on a database thread
    assert "serve" in functions  # the main thread's event loop
