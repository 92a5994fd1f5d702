"""Password hashes and the agents file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import PROJECT_ROOT
from desk.auth import AgentsFileError, hash_password, load_agents, parse_agents, verify_password


@pytest.mark.parametrize("scheme", ["scrypt", "pbkdf2_sha256"])
def test_hashes_verify_only_the_right_password(scheme: str):
    stored = hash_password("s3cret-密码", scheme, cost=1024 if scheme == "scrypt" else 1000)
    assert stored.startswith(scheme + "$")
    assert verify_password("s3cret-密码", stored)
    assert not verify_password("s3cret", stored)
    cost = 1024 if scheme == "scrypt" else 1000
    assert hash_password("same", scheme, cost=cost) != hash_password("same", scheme, cost=cost)  # salted


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$x$8$1$00$00", "md5$abc", "pbkdf2_sha256$10$zz$00", "scrypt$16384$8$1$00"])
def test_malformed_hashes_never_verify(stored: str):
    assert not verify_password("anything", stored)


def test_demo_agents_file_holds_hashes_not_passwords():
    agents = load_agents(PROJECT_ROOT / "desk" / "agents.yml")
    assert set(agents) >= {"agent1", "agent2"}
    text = (PROJECT_ROOT / "desk" / "agents.yml").read_text(encoding="utf-8")
    assert "password: \"scrypt$" in text
    assert verify_password("agent1-pass", agents["agent1"].password_hash)
    assert verify_password("agent2-pass", agents["agent2"].password_hash)
    assert not verify_password("agent2-pass", agents["agent1"].password_hash)
    assert agents["agent1"].display_name == "小王"


@pytest.mark.parametrize(
    "raw",
    [{}, {"agents": {}}, {"agents": {"bad name!": {"password": "x"}}}, {"agents": {"agent1": {"display_name": "x"}}}],
)
def test_malformed_agents_files_are_refused(raw):
    with pytest.raises(AgentsFileError):
        parse_agents(raw)


def test_missing_agents_file(tmp_path: Path):
    with pytest.raises(AgentsFileError):
        load_agents(tmp_path / "missing.yml")
