"""Rasa's own checks on the project: the training data validates and the test stories pass."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bot.launcher import rasa_bin
from bot.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def rasa(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([rasa_bin(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_rasa_data_validate() -> None:
    result = rasa("data", "validate", "--domain", "domain.yml", "--data", "data", "--config", "config.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_test_stories_pass(trained_model: Path, tmp_path: Path) -> None:
    result = rasa("test", "core", "--model", str(trained_model), "--stories", "tests/stories",
                  "--out", str(tmp_path), "--fail-on-prediction-errors")
    report = (tmp_path / "failed_test_stories.yml")
    failed = report.read_text(encoding="utf-8") if report.exists() else ""
    assert result.returncode == 0, failed + result.stdout[-3000:] + result.stderr[-3000:]
