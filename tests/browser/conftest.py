"""Fixtures of the browser tests: Debian's Chromium (installed by scripts/ensure-chromium.sh, never
downloaded by Playwright) driven by Playwright from PyPI, and a desk on a free port."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from bot.settings import PROJECT_ROOT
from tests.support.desk import DeskProcess, desk_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium from the system's packages.

    Module-scoped: Playwright's synchronous API keeps an event loop running in the main thread,
    which must be gone before other tests call ``asyncio.run``.
    """
    result = subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "ensure-chromium.sh")], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"cannot install Chromium: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def desk(redis_url: str, tmp_path: Path) -> Iterator[DeskProcess]:
    """A desk with the demo agents' names over the test Redis."""
    desk = desk_process(tmp_path / "desk", redis_url).start()
    try:
        yield desk
    finally:
        desk.stop()
