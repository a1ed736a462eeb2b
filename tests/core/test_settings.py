from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.settings import load_settings

ANVIL_ACCOUNT_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# Anvil/Hardhat accounts 1-9 of the public "test test … junk" mnemonic.
ANVIL_ACCOUNTS_1_TO_9 = (
    "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "dbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
# 48 characters from `openssl rand -base64 36`: what a production JWT secret looks like.
REAL_JWT_SECRET = "q3Vd8Rk0ZxP7mW2sLfY9tJcB4nH6gUaE1oTiK5yXvQ+rN/Ml"


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
    jwt_file.write_text(REAL_JWT_SECRET + "\n")
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv("LIFTLEDGER_JWT_SECRET_FILE", str(jwt_file))
    assert load_settings().secret("jwt_secret") == REAL_JWT_SECRET


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


@pytest.mark.parametrize("key", ANVIL_ACCOUNTS_1_TO_9)
def test_production_refuses_every_well_known_anvil_key(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv("LIFTLEDGER_ANCHORER_KEY", "0x" + key)
    with pytest.raises(ConfigError, match="ANCHORER_KEY is a development secret"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("JWT_SECRET", "x" * 48, "different characters"),
        ("JWT_SECRET", "abcdefghij" * 4, "repeats a shorter pattern"),
        ("JWT_SECRET", "0123456789abcdef", "at least 32 characters"),
        ("MQTT_SECRET", "passwordpasswordpasswordpassword", "different characters"),
        ("MQTT_SECRET", "short-Secret-1", "at least 32 characters"),
        ("DB_PASSWORD", "liftledger", "at least 16 characters"),
        ("DB_PASSWORD", "aaaaaaaaaaaaaaaaaaaaaaaa", "different characters"),
        ("DB_PASSWORD", "abcdefghijabcdefghij", "repeats a shorter pattern"),
        ("JWT_SECRET", "x" * 22 + "0123456789", "too predictable"),
    ],
)
def test_production_refuses_a_low_entropy_secret(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, why: str
) -> None:
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv(f"LIFTLEDGER_{name}", value)
    with pytest.raises(ConfigError, match=f"LIFTLEDGER_{name} .*{why}"):
        load_settings()


def test_production_accepts_random_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIFTLEDGER_ENV", "production")
    monkeypatch.setenv("LIFTLEDGER_JWT_SECRET", REAL_JWT_SECRET)
    monkeypatch.setenv("LIFTLEDGER_MQTT_SECRET", "9f2c4e71b8a05d3e6c1f7a9b2d4e8c0a")
    monkeypatch.setenv("LIFTLEDGER_DB_PASSWORD", "Zr7-kQ2w_Xv9mB4t")
    settings = load_settings()
    assert settings.secret("db_password") == "Zr7-kQ2w_Xv9mB4t"
