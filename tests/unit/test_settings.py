"""Settings come from environment variables with documented defaults."""

from pathlib import Path

import pytest

from actions import formatting
from bot import settings as settings_module
from bot.settings import PROJECT_ROOT, Settings, SettingsError, get_settings, load_settings, read_env_file, reset_settings


def test_defaults_match_the_pinned_contracts():
    settings = load_settings({})
    assert (settings.rasa_port, settings.action_port, settings.crm_port, settings.desk_port) == (5005, 5055, 7000, 7100)
    assert settings.shop_identity_secret == "dev-shop-secret"
    assert settings.crm_api_key == "dev-crm-key"
    assert settings.effective_crm_url == "http://127.0.0.1:7000"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_redis_url == "redis://127.0.0.1:6390/0"


def test_environment_overrides_and_types():
    settings = load_settings({"CRM_PORT": "7001", "CRM_TIMEOUT_S": "1.5", "REDIS_URL": "redis://h:1/2", "CRM_URL": "http://crm/"})
    assert settings.crm_port == 7001
    assert settings.crm_timeout_s == 1.5
    assert settings.effective_redis_url == "redis://h:1/2"
    assert settings.effective_crm_url == "http://crm"


def test_bad_value_names_the_variable():
    with pytest.raises(SettingsError, match="CRM_PORT"):
        load_settings({"CRM_PORT": "seven thousand"})


def test_env_example_lists_every_setting():
    listed = read_env_file(PROJECT_ROOT / ".env.example")
    assert set(listed) == {name.upper() for name in Settings.__dataclass_fields__}


def test_env_file_parsing(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("# comment\nCRM_PORT=7002\n\nSHOP_IDENTITY_SECRET='s3cret'\n", encoding="utf-8")
    assert read_env_file(env_file) == {"CRM_PORT": "7002", "SHOP_IDENTITY_SECRET": "s3cret"}


def test_var_dir_from_environment_is_a_path(tmp_path: Path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    assert settings.var_dir == tmp_path
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'crm.sqlite3'}"


def test_the_process_settings_are_read_once_and_again_only_after_a_reset(monkeypatch: pytest.MonkeyPatch):
    reads = []
    real_read = settings_module.read_env_file
    monkeypatch.setattr(settings_module, "read_env_file", lambda path: reads.append(path) or real_read(path))
    monkeypatch.setenv("SHOP_TIMEZONE", "Asia/Tokyo")
    reset_settings()
    try:
        for _ in range(20):  # what a turn does: every date a reply writes asks for the shop's timezone
            assert formatting.parse_datetime("2026-11-20T08:00:00+00:00").hour == 17
        assert get_settings() is get_settings() and len(reads) == 1
        monkeypatch.setenv("SHOP_TIMEZONE", "Europe/Berlin")
        assert formatting.shop_timezone().key == "Asia/Tokyo"  # kept: the environment is not read inside a turn
        reset_settings()
        assert formatting.shop_timezone().key == "Europe/Berlin" and len(reads) == 2
    finally:
        monkeypatch.undo()
        reset_settings()
