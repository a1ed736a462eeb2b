from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings

ANVIL_ACCOUNT_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Isolate each test from the caller's LIFTLEDGER_* variables and settings file."""
    for name in list(os.environ):
        if name.startswith("LIFTLEDGER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIFTLEDGER_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_development_secrets_are_generated_once_with_owner_only_permissions(
    clean_env: Path,
) -> None:
    first = load_settings()
    second = load_settings()
    secrets_dir = clean_env / "data" / "secrets"
    for name in ("db_password", "jwt_secret", "anchorer_key", "mqtt_secret"):
        path = secrets_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert first.secret(name) == second.secret(name)
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert len(bytes.fromhex(first.secret("anchorer_key"))) == 32


def test_production_refuses_generated_development_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv("LIFTLEDGER_JWT_SECRET", "dev-abcdefghijklmnopqrstuvwxyz0123456789")
    with pytest.raises(ConfigError, match="JWT_SECRET is a development secret"):
        load_settings()


def test_production_refuses_well_known_anvil_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv("LIFTLEDGER_ANCHORER_KEY", ANVIL_ACCOUNT_0)
    with pytest.raises(ConfigError, match="ANCHORER_KEY is a development secret"):
        load_settings()


def test_production_generates_nothing_and_reports_missing_secret(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    settings = load_settings()
    assert not (clean_env / "data" / "secrets").exists()
    with pytest.raises(ConfigError, match="LIFTLEDGER_DB_PASSWORD"):
        settings.resolved_database_url()


def test_production_accepts_real_secrets_from_files(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    jwt_file = clean_env / "jwt"
    jwt_file.write_text("x" * 48 + "\n")
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv("LIFTLEDGER_JWT_SECRET_FILE", str(jwt_file))
    assert load_settings().secret("jwt_secret") == "x" * 48


def test_invalid_url_is_one_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTLEDGER_MQTT_URL", "tcp://broker")
    with pytest.raises(ConfigError, match=r"LIFTLEDGER_MQTT_URL: .*mqtt://host:port"):
        load_settings()


def test_settings_file_is_read(monkeypatch: pytest.MonkeyPatch, clean_env: Path) -> None:
    (clean_env / "site.env").write_text("LIFTLEDGER_MQTT_PORT=40001\n")
    monkeypatch.setenv("LIFTLEDGER_SETTINGS_FILE", str(clean_env / "site.env"))
    assert load_settings().resolved_mqtt_url() == "mqtt://127.0.0.1:40001"


def test_environment_overrides_settings_file(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    (clean_env / "liftledger.env").write_text("LIFTLEDGER_PG_PORT=40001\n")
    monkeypatch.setenv("LIFTLEDGER_PG_PORT", "40002")
    assert ":40002/" in load_settings().resolved_database_url()


def test_missing_settings_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTLEDGER_SETTINGS_FILE", "/nonexistent/liftledger.env")
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_external_url_disables_local_service_but_own_port_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFTLEDGER_CHAIN_URL", "http://chain.example:8545")
    monkeypatch.setenv("LIFTLEDGER_MQTT_URL", "mqtt://127.0.0.1:51883")
    settings = load_settings()
    assert not settings.local_chain
    assert settings.resolved_chain_url() == "http://chain.example:8545"
    assert settings.local_mqtt  # the URL `stack env` prints still means the local broker
    assert settings.local_database
