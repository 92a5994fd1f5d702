"""``python -m bot.launcher serve ROLE``: the command line, and the command, health check, environment
and production guard each role gets (pure functions; no process is started here)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest

from bot import launcher, production, roles
from bot.settings import Settings

MODEL = Path("/models/shop-0123456789abcdef.tar.gz")

FLEET_SECRETS = dict(
    shop_identity_secret="s" * 40, crm_api_key="fleet-crm-key", wechat_token="fleet-wechat-token",
    wechat_appsecret="fleet-wechat-appsecret", wechat_api_base="https://api.weixin.qq.com",
    wechat_encoding_aes_key="k" * 43, app_callback_origins="https://shop.example.com:443", app_callback_allowed_networks="none",
)
"""Settings that pass the production guard (the desk's agents file aside)."""


def spread(**changes: Any) -> Settings:
    """Every role on its own address, as on separate hosts."""
    return replace(Settings(), rasa_host="10.0.0.11", rasa_port=5006, action_host="10.0.0.21", action_port=5056,
                   crm_host="10.0.0.1", crm_port=7001, desk_host="10.0.0.31", desk_port=7101, shop_host="0.0.0.0",
                   shop_port=7201, wechat_sim_host="127.0.0.1", wechat_sim_port=7301, embedded_redis_port=6391, **changes)


def test_serve_takes_a_role_a_port_and_a_model() -> None:
    args = launcher.parse_args(["serve", "rasa", "--port", "5010", "--model", "m.tar.gz"])
    assert (args.command, args.role, args.port, args.model) == ("serve", "rasa", 5010, Path("m.tar.gz"))
    args = launcher.parse_args(["serve", "wechat-sim"])
    assert (args.role, args.port, args.model) == ("wechat-sim", None, None)
    assert [launcher.parse_args([name]).command for name in ("run", "train", "model-path")] == ["run", "train", "model-path"]


@pytest.mark.parametrize("argv", [["serve"], ["serve", "postgres"], ["serve", "desk", "--port", "x"], [], ["start"]])
def test_serve_refuses_what_it_does_not_know(argv: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        launcher.parse_args(argv)
    assert stopped.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_each_role_listens_on_its_own_settings_and_port_overrides_them() -> None:
    settings = spread()
    assert {role: (roles.host_of(settings, role), roles.port_of(settings, role)) for role in roles.ROLES} == {
        "rasa": ("10.0.0.11", 5006), "actions": ("10.0.0.21", 5056), "crm": ("10.0.0.1", 7001), "desk": ("10.0.0.31", 7101),
        "shop": ("0.0.0.0", 7201), "wechat-sim": ("127.0.0.1", 7301), "redis": ("127.0.0.1", 6391)}
    moved = roles.with_port(settings, "desk", 7102)
    assert (moved.desk_port, moved.rasa_port) == (7102, 5006)
    assert roles.with_port(settings, "redis", 6500).embedded_redis_port == 6500
    assert roles.with_port(settings, "rasa", None) is settings
    with pytest.raises(roles.RoleError, match="not a TCP port"):
        roles.with_port(settings, "crm", 70000)
    with pytest.raises(roles.RoleError, match="unknown role"):
        roles.with_port(settings, "postgres", 5432)


def test_the_command_and_health_check_of_each_role() -> None:
    settings = spread()
    py = launcher.python_bin()
    expected: Dict[str, Tuple[str, Tuple[str, ...], str]] = {
        "rasa": ("rasa", (py, "-m", "bot.rasa_patches", "run", "--model", str(MODEL), "--endpoints", "endpoints.yml",
                          "--credentials", "credentials.yml", "--interface", "10.0.0.11", "--port", "5006"), "http://10.0.0.11:5006/webhooks/app/"),
        "actions": ("action-server", (py, "-m", "actions.server", "--host", "10.0.0.21", "--port", "5056"), "http://10.0.0.21:5056/health"),
        "crm": ("crm", (py, "-m", "crm", "serve", "--host", "10.0.0.1", "--port", "7001"), "http://10.0.0.1:7001/health"),
        "desk": ("desk", (py, "-m", "desk", "serve", "--host", "10.0.0.31", "--port", "7101"), "http://10.0.0.31:7101/health"),
        "shop": ("shop", (py, "-m", "shop", "serve", "--host", "0.0.0.0", "--port", "7201"), "http://127.0.0.1:7201/health"),
        "wechat-sim": ("wechat-sim", (py, "-m", "wechat_sim", "serve", "--host", "127.0.0.1", "--port", "7301"),
                       "http://127.0.0.1:7301/health"),
    }
    for role, (name, command, health) in expected.items():
        how = roles.launch(role, settings, MODEL)
        assert (how.name, how.command, how.health_url) == (name, command, health), role
        assert how.timeout_s >= 60
    assert roles.launch("crm", settings).before == ((py, "-m", "crm", "ensure-seeded"),)
    assert all(not roles.launch(role, settings, MODEL).before for role in expected if role != "crm")
    with pytest.raises(roles.RoleError, match="model"):
        roles.launch("rasa", settings)
    with pytest.raises(roles.RoleError, match="embedded"):
        roles.launch("redis", settings)


def test_every_role_gets_the_same_environment_from_the_settings() -> None:
    settings = spread(redis_url="redis://:pw@shop-master:6379/2", redis_sentinels="10.0.0.41:26379,10.0.0.42:26379",
                      redis_sentinel_master="shop-master", action_server_token="t" * 32, rasa_workers=1)
    env = launcher.base_env(settings, settings.effective_redis_url)
    assert {key: env[key] for key in ("REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PASSWORD", "REDIS_SENTINELS",
                                      "REDIS_SENTINEL_MASTER", "ACTION_HOST", "ACTION_PORT", "ACTION_SERVER_TOKEN",
                                      "CRM_URL", "SANIC_WORKERS")} == {
        "REDIS_HOST": "shop-master", "REDIS_PORT": "6379", "REDIS_DB": "2", "REDIS_PASSWORD": "pw",
        "REDIS_SENTINELS": "10.0.0.41:26379,10.0.0.42:26379", "REDIS_SENTINEL_MASTER": "shop-master",
        "ACTION_HOST": "10.0.0.21", "ACTION_PORT": "5056", "ACTION_SERVER_TOKEN": "t" * 32,
        "CRM_URL": "http://10.0.0.1:7001", "SANIC_WORKERS": "1"}


def test_the_production_guard_applies_to_each_role_on_its_own_host(tmp_path: Path) -> None:
    loopback = Settings()
    for role in roles.ROLES:
        if role != "wechat-sim":
            roles.guard(role, loopback)  # development defaults on loopback: every role starts
    exposed = spread()
    for role in ("rasa", "actions", "crm", "desk"):
        with pytest.raises(production.ProductionGuardError, match=f"^{role}: refusing"):
            roles.guard(role, exposed)
    roles.guard("shop", replace(exposed, shop_host="127.0.0.1"))  # only its own host counts
    fit = spread(**FLEET_SECRETS)
    for role in ("rasa", "actions", "crm", "shop", "redis"):
        roles.guard(role, fit)
    with pytest.raises(production.ProductionGuardError, match="demo password"):
        roles.guard("desk", fit)  # the shipped agents file
    agents = tmp_path / "agents.yml"
    from desk.auth import hash_password

    hashed = hash_password("a-long-fleet-password", "pbkdf2_sha256")
    agents.write_text(f'agents:\n  a1:\n    display_name: A\n    role: agent\n    password: "{hashed}"\n')
    roles.guard("desk", replace(fit, desk_agents_file=agents))
    with pytest.raises(production.ProductionGuardError, match="simulated WeChat"):
        roles.guard("wechat-sim", replace(fit, shop_env="production"))


def test_rasa_and_the_action_server_started_apart_need_their_shared_token() -> None:
    for role in ("rasa", "actions"):
        with pytest.raises(roles.RoleError, match="ACTION_SERVER_TOKEN"):
            roles.check_action_token(role, Settings())
        roles.check_action_token(role, replace(Settings(), action_server_token="t" * 32))
    for role in ("crm", "desk", "shop", "wechat-sim", "redis"):
        roles.check_action_token(role, Settings())


class FakeStack:
    """Records what would be started."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = None


def test_run_starts_each_service_through_its_role(monkeypatch: pytest.MonkeyPatch) -> None:
    started: List[Tuple[str, str, Path]] = []
    monkeypatch.setattr(roles, "start_role", lambda stack, role, env, model=None: started.append((role, env["REDIS_URL"], model)))
    stack: Any = FakeStack(replace(Settings(), redis_url="redis://127.0.0.1:6399/4"))
    assert launcher.start_services(stack, MODEL) == "redis://127.0.0.1:6399/4"
    assert started == [(role, "redis://127.0.0.1:6399/4", MODEL) for role in ("crm", "actions", "desk", "shop", "rasa")]
    assert stack.settings.action_server_token  # made for this start


def test_serve_guards_and_starts_one_role_on_the_given_port(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[Tuple[str, Settings, Dict[str, str]]] = []
    monkeypatch.setattr(roles, "start_role", lambda stack, role, env, model=None: calls.append((role, stack.settings, env)))

    def supervise(settings: Settings, start: Callable[[Any], None], what: str) -> int:
        start(FakeStack(settings))
        return 0

    monkeypatch.setattr(launcher, "supervise", supervise)
    settings = replace(Settings(), redis_url="redis://127.0.0.1:6399/4")
    assert roles.serve("desk", settings, port=7102) == 0
    ((role, given, env),) = calls
    assert (role, given.desk_port, env["DESK_PORT"], env["REDIS_URL"]) == ("desk", 7102, "7102", "redis://127.0.0.1:6399/4")
    with pytest.raises(production.ProductionGuardError):
        roles.serve("crm", replace(settings, crm_host="10.0.0.1"))
    with pytest.raises(roles.RoleError, match="ACTION_SERVER_TOKEN"):
        roles.serve("actions", settings)
    assert len(calls) == 1
