"""Operator mistakes produce one clear error line that names the problem and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.settings import Settings
from tests.integration.cli_helpers import REPO, clean_environment, free_port, run_cli


def _single_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_wrong_database_password_is_one_line(stack_settings: Settings, tmp_path: Path) -> None:
    url = f"postgresql://liftledger:wrong@127.0.0.1:{stack_settings.pg_port}/liftledger"
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(tmp_path), LIFTLEDGER_DATABASE_URL=url)
    result = run_cli("db", "upgrade", env=env)
    assert result.returncode == 1
    line = _single_error_line(result.stderr)
    assert "refused the password" in line
    assert "LIFTLEDGER_DATABASE_URL" in line
    assert "wrong" not in line  # the password itself is never printed


def test_unreachable_broker_is_one_line(stack_settings: Settings) -> None:
    port = free_port()
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
        LIFTLEDGER_MQTT_URL=f"mqtt://127.0.0.1:{port}",
    )
    result = run_cli("stack", "status", env=env)
    assert result.returncode == 1
    errors = [line for line in result.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stdout
    assert f"MQTT broker at mqtt://127.0.0.1:{port} does not answer" in errors[0]
    assert "LIFTLEDGER_MQTT_URL" in errors[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_npm_is_one_line(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(REPO / name, tools / name)
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    env = clean_environment(
        PATH=str(empty_path),
        LIFTLEDGER_DATA_DIR=str(tmp_path / "data"),
        LIFTLEDGER_TOOLS_DIR=str(tools),
        LIFTLEDGER_INSTALL_MISSING="false",
        LIFTLEDGER_DATABASE_URL="postgresql://u:p@db.invalid:5432/x",
        LIFTLEDGER_MQTT_URL="mqtt://mqtt.invalid:1883",
    )
    result = run_cli("stack", "up", env=env)
    assert result.returncode == 1
    line = _single_error_line(result.stderr)
    assert "npm not found" in line
    assert "apt-get install npm" in line


def test_unregistered_elevator_credentials_is_one_line(stack_settings: Settings) -> None:
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir))
    result = run_cli("elevators", "credentials", "no-such-elevator", env=env)
    assert result.returncode == 1
    assert "is not registered" in _single_error_line(result.stderr)
