"""`liftledger simulate` publishes through the real Mosquitto with device credentials."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.credentials import MONITOR_USERNAME, service_credentials
from core.settings import Settings
from tests.integration.broker_accounts import broker_devices
from tests.integration.cli_helpers import clean_environment, run_cli
from tests.integration.mqtt_helpers import connect


@pytest.fixture
def test_db_env(stack_settings: Settings, test_database_url: str) -> Iterator[dict[str, str]]:
    """CLI environment on the test database; the broker's accounts are restored afterwards."""
    yield clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir),
        LIFTLEDGER_DATABASE_URL=test_database_url,
    )
    # `simulate` registered sim-00001… in the broker; leave no retained status behind.
    simulated = [("sim-s001", f"sim-{n:05d}") for n in range(1, 6)]
    with broker_devices(stack_settings, simulated):
        pass


def test_simulated_fleet_publishes_in_order_with_device_identities(
    stack_settings: Settings, test_db_env: dict[str, str]
) -> None:
    creds = service_credentials(stack_settings.secret("mqtt_secret"), MONITOR_USERNAME)
    monitor = connect(stack_settings.resolved_mqtt_url(), creds.username, creds.password)
    try:
        monitor.subscribe("lift/v1/sim-s001/+/telemetry")
        monitor.subscribe("lift/v1/sim-s001/+/event")
        monitor.subscribe("lift/v1/sim-s001/+/status")
        time.sleep(0.3)
        result = run_cli(
            "simulate",
            "--elevators", "5",
            "--duration", "60s",
            "--speedup", "20",
            "--traffic-scale", "5",
            "--seed", "11",
            env=test_db_env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "5 of 5 elevators connected" in result.stderr
        time.sleep(0.5)
    finally:
        monitor.close()

    by_elevator: dict[str, list[int]] = defaultdict(list)
    statuses = set()
    for topic, payload in monitor.received:
        elevator, kind = topic.split("/")[3], topic.split("/")[4]
        body = json.loads(payload)
        if kind == "status":
            statuses.add((elevator, body["state"]))
            continue
        by_elevator[elevator].append(body["seq"])
    assert set(by_elevator) == {f"sim-{n:05d}" for n in range(1, 6)}
    for seqs in by_elevator.values():
        assert len(seqs) >= 6  # at least one idle sample every 10 s for 60 s
        assert seqs == sorted(seqs)
        assert len(set(seqs)) == len(seqs)
    assert {("sim-00001", "online")} <= statuses
    sent = int(result.stdout.split("sent ")[1].split()[0].replace(",", ""))
    assert sent == sum(len(seqs) for seqs in by_elevator.values())


def test_dry_run_is_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(tmp_path / "data"))
    outputs = []
    for name in ("a.jsonl", "b.jsonl"):
        result = run_cli(
            "simulate", "--elevators", "20", "--duration", "10m", "--seed", "5",
            "--faults", "random", "--fault-rate", "50",
            "--start", "2026-11-28T07:30:00Z", "--dry-run", str(tmp_path / name),
            env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]
    assert outputs[0].count(b"\n") > 1000


def test_bad_scenario_is_one_clear_error(tmp_path: Path) -> None:
    scenario = tmp_path / "s.csv"
    scenario.write_text("at_s,elevator,fault,duration_s\n10,sim-00001,levitation,5\n")
    env = clean_environment(LIFTLEDGER_DATA_DIR=str(tmp_path / "data"))
    result = run_cli(
        "simulate", "--elevators", "1", "--faults", str(scenario),
        "--dry-run", str(tmp_path / "out.jsonl"),
        env=env,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {scenario} line 2: unknown fault 'levitation'"


def test_replay_publishes_a_recording_byte_for_byte(
    stack_settings: Settings, test_db_env: dict[str, str], tmp_path: Path
) -> None:
    recording = tmp_path / "fleet.jsonl"
    record = run_cli(
        "simulate", "--elevators", "3", "--duration", "2m", "--seed", "2",
        "--traffic-scale", "5", "--dry-run", str(recording),
        env=test_db_env,
    )  # fmt: skip
    assert record.returncode == 0, record.stderr
    expected = [
        (line["topic"], line["payload"].encode())
        for line in map(json.loads, recording.read_text().splitlines())
        if not line["retain"]
    ]
    creds = service_credentials(stack_settings.secret("mqtt_secret"), MONITOR_USERNAME)
    monitor = connect(stack_settings.resolved_mqtt_url(), creds.username, creds.password)
    try:
        monitor.subscribe("lift/v1/sim-s001/+/telemetry")
        monitor.subscribe("lift/v1/sim-s001/+/event")
        time.sleep(0.3)
        result = run_cli(
            "simulate", "--elevators", "3", "--replay", str(recording), "--speedup", "0",
            env=test_db_env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while len(monitor.received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        monitor.close()
    assert len(expected) > 30
    assert sorted(monitor.received) == sorted(expected)
    for elevator in {topic.split("/")[3] for topic, _ in expected}:
        sent = [p for t, p in expected if t.split("/")[3] == elevator]
        got = [p for t, p in monitor.received if t.split("/")[3] == elevator]
        assert got == sent  # per-elevator order kept
