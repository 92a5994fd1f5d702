"""The production guard: shipped secrets, demo passwords and the simulator never face strangers."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from bot.production import ProductionGuardError, enforce, guarded, is_loopback, problems
from bot.settings import PROJECT_ROOT, load_settings

STRONG = "s" * 40


def hardened(tmp_path: Path):
    agents = tmp_path / "agents.yml"
    from desk.auth import hash_password

    agents.write_text(f"agents:\n  ops1:\n    display_name: 小李\n    password: '{hash_password('a real password', cost=2**10)}'\n",
                      encoding="utf-8")
    return dataclasses.replace(load_settings({}), shop_identity_secret=STRONG, crm_api_key="k" * 32, wechat_token="t" * 32,
                               wechat_appsecret="a" * 32, wechat_api_base="https://api.weixin.qq.com", desk_agents_file=agents,
                               wechat_encoding_aes_key="k" * 43, app_callback_origins="https://shop.example.com",
                               app_callback_allowed_networks="none")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
                                            ("0.0.0.0", False), ("10.0.0.5", False), ("shop.example", False), ("", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_make_run_on_loopback_keeps_the_development_defaults() -> None:
    settings = load_settings({})
    assert not guarded(settings)
    enforce(settings, "make run")  # does not raise


def test_every_shipped_default_is_named_when_bound_beyond_loopback() -> None:
    settings = dataclasses.replace(load_settings({}), action_host="0.0.0.0")
    assert guarded(settings)
    with pytest.raises(ProductionGuardError) as refused:
        enforce(settings, "make run")
    message = str(refused.value)
    for name in ("SHOP_IDENTITY_SECRET", "CRM_API_KEY", "WECHAT_TOKEN", "WECHAT_APPSECRET", "WECHAT_API_BASE",
                 "WECHAT_ENCODING_AES_KEY", "'agent1'", "'agent2'", "APP_CALLBACK_ORIGINS", "APP_CALLBACK_ALLOWED_NETWORKS"):
        assert name in message


def test_production_env_guards_a_loopback_stack_too(tmp_path: Path) -> None:
    settings = dataclasses.replace(hardened(tmp_path), shop_env="production")
    assert guarded(settings) and problems(settings) == []
    enforce(settings, "make run")
    with pytest.raises(ProductionGuardError, match="wechat-sim"):
        enforce(settings, "wechat-sim", with_simulator=True)
    with pytest.raises(ProductionGuardError, match="at least 32"):
        enforce(dataclasses.replace(settings, shop_identity_secret="short-but-not-default"), "make run")


def test_a_service_started_on_its_own_refuses_too() -> None:
    env = {"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin", "SHOP_ENV": "production", "ACTION_SERVER_TOKEN": "x" * 32}
    done = subprocess.run([sys.executable, "-m", "actions.server", "--port", "1"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "SHOP_IDENTITY_SECRET is still the shipped default" in done.stderr


@pytest.mark.parametrize("origins, networks, refused", [
    ("https://shop.example.com", "none", []),
    ("https://shop.example.com,https://api.shop.example.com:8443", "10.20.0.0/16,fd00::/8", []),
    ("https://shop.example.com:*", "none", ["APP_CALLBACK_ORIGINS allows any port (https://shop.example.com:*)"]),
    ("http://127.0.0.1:*,https://127.0.0.1:*,http://localhost:*,https://localhost:*", "127.0.0.0/8,::1/128",
     ["APP_CALLBACK_ORIGINS allows any port", "APP_CALLBACK_ALLOWED_NETWORKS reaches loopback or link-local addresses (127.0.0.0/8, ::1/128)"]),
    ("https://shop.example.com", "169.254.0.0/16", ["(169.254.0.0/16)"]),
    ("https://shop.example.com", "0.0.0.0/0", ["(0.0.0.0/0)"]),
    ("https://shop.example.com", "127.0.0.5/32", ["(127.0.0.5/32)"]),
    ("https://shop.example.com", "::ffff:0:0/96", ["(::ffff:0:0/96)"]),
    ("ftp://shop.example.com", "none", ["'ftp://shop.example.com' is not an origin"]),
    ("https://shop.example.com", "10.0.0.5/8", ["'10.0.0.5/8' is not a network"]),
])
def test_callbacks_in_production_reach_named_origins_and_no_loopback(tmp_path: Path, origins: str, networks: str,
                                                                      refused: List[str]) -> None:
    settings = dataclasses.replace(hardened(tmp_path), shop_env="production", app_callback_origins=origins,
                                   app_callback_allowed_networks=networks)
    found = problems(settings)
    assert len(found) == len(refused), found
    for problem, expected in zip(found, refused, strict=True):
        assert expected in problem
    if refused:
        with pytest.raises(ProductionGuardError, match="APP_CALLBACK"):
            enforce(settings, "make run")
    else:
        enforce(settings, "make run")
