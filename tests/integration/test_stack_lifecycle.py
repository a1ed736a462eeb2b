"""`liftledger stack up && status && down`, twice, in a separate data folder and ports."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.integration.cli_helpers import clean_environment, free_port, run_cli


def test_up_status_down_works_twice_in_a_row(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(data_dir),
        LIFTLEDGER_PG_PORT=str(free_port()),
        LIFTLEDGER_MQTT_PORT=str(free_port()),
        LIFTLEDGER_CHAIN_PORT=str(free_port()),
    )
    try:
        for round_ in (1, 2):
            up = run_cli("stack", "up", env=env)
            assert up.returncode == 0, f"round {round_}: {up.stderr}"
            again = run_cli("stack", "up", env=env)
            assert again.returncode == 0, f"round {round_}, second up: {again.stderr}"

            status = run_cli("stack", "status", env=env)
            assert status.returncode == 0, status.stdout + status.stderr
            lines = status.stdout.splitlines()
            assert [line.split()[:3] for line in lines] == [
                ["timescaledb", "answers", "local"],
                ["mosquitto", "answers", "local"],
                ["anvil", "answers", "local"],
            ]

            down = run_cli("stack", "down", env=env)
            assert down.returncode == 0, down.stderr
            assert "stopped" in down.stdout

            after = run_cli("stack", "status", env=env)
            assert after.returncode == 1
            assert after.stdout.count("DOWN") == 3

            second_down = run_cli("stack", "down", env=env)
            assert second_down.returncode == 0
            assert second_down.stdout.count("was not running") == 3
    finally:
        run_cli("stack", "down", env=env)
        cluster = data_dir / "postgres"
        if cluster.is_symlink():
            shutil.rmtree(cluster.resolve().parent, ignore_errors=True)


def test_env_prints_export_lines_for_every_url(tmp_path: Path) -> None:
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(tmp_path), LIFTLEDGER_CHAIN_URL="http://chain.example:8545"
    )
    result = run_cli("stack", "env", env=env)
    assert result.returncode == 0, result.stderr
    names = [line.split("=", 1)[0] for line in result.stdout.splitlines()]
    assert names == [
        "export LIFTLEDGER_DATABASE_URL",
        "export LIFTLEDGER_MQTT_URL",
        "export LIFTLEDGER_CHAIN_URL",
        "export LIFTLEDGER_API_URL",
    ]
    assert "export LIFTLEDGER_CHAIN_URL=http://chain.example:8545" in result.stdout
