"""End to end, per fault type: simulator → Mosquitto → collector → alert → MQTT alert topic.

One simulated elevator per SPEC §4 fault type publishes through the real broker with that
fault injected; a `liftledger collector` subprocess detects it and the notifier publishes it
on the elevator's alert topic. Each fault must give exactly one alert of its type, with its
severity, and exactly one `opened` notice on the alert topic.

Most fleets run faster than real time (`FAST`), with simulated clocks set in the past so
device time never runs ahead of the receive time; those elevators get a clock-skew threshold
that ignores the offset. `clock_skew` itself runs in real time. `maintenance_overdue` comes
from maintenance records, not telemetry (`tests/integration/test_alert_store.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from alerts.detector import STREAM_TYPES
from core.credentials import ALERT_READER_USERNAME, PLATFORM_USERNAME, service_credentials
from core.db import libpq_url
from core.faults import FAULTS_BY_NAME
from core.registry import ElevatorSpec, ParsedRegistry, upsert_registry
from core.settings import Settings
from notify.mqtt_alerts import AlertPublisher
from notify.notifier import Notifier, NotifierConfig
from simulators.fleet import Fleet
from simulators.publisher import FleetPublisher
from simulators.runner import MqttSink, run_fleet
from simulators.scenario import ScheduledFault
from tests.integration.broker_accounts import broker_devices, identities
from tests.integration.collector_process import CollectorProcess
from tests.integration.mqtt_helpers import MqttTestClient, connect
from tests.simulators.test_fault_signatures import CASES

SITE = "e2e-site"
FAST = 120.0
WAIT_S = 90.0
STREAM_FAULTS = sorted(STREAM_TYPES)
IGNORE_SKEW = {"clock_skew_s": 1e9}


@dataclasses.dataclass(frozen=True)
class Group:
    """Elevators simulated together: one fleet, one pace, one traffic level."""

    faults: tuple[str, ...]
    traffic: float
    speedup: float
    until_s: float
    inject_at_s: float = 30.0


def _groups() -> list[Group]:
    busy = tuple(f for f in STREAM_FAULTS if CASES[f][4] > 0)
    quiet = tuple(f for f in STREAM_FAULTS if CASES[f][4] == 0 and f != "clock_skew")
    return [
        Group(quiet, 0.0, FAST, max(CASES[f][3] for f in quiet)),
        Group(busy, 3.0, FAST / 2, max(CASES[f][3] for f in busy)),
        Group(("clock_skew",), 0.0, 1.0, 40.0, inject_at_s=5.0),
    ]


def _elevator_id(fault: str, run: str) -> str:
    return f"e2e-{run}-{fault}"[:64]


def _spec(fault: str, run: str) -> ElevatorSpec:
    return dataclasses.replace(CASES[fault][1], site=SITE, elevator=_elevator_id(fault, run))


def _register(database_url: str, run: str) -> None:
    registry = ParsedRegistry()
    registry.sites[SITE] = {"id": SITE, "name": "End-to-end", "district": None}
    for fault in STREAM_FAULTS:
        spec = _spec(fault, run)
        registry.elevators.append(
            {
                "id": spec.elevator,
                "site_id": SITE,
                "building": fault,
                "lowest_floor": spec.lowest_floor,
                "highest_floor": spec.highest_floor,
                "floor_height_m": spec.floor_height_m,
                "rated_speed_mps": spec.rated_speed_mps,
                "rated_load_kg": spec.rated_load_kg,
                "acceleration_mps2": spec.acceleration_mps2,
                "jerk_mps3": spec.jerk_mps3,
                "registration_code": None,
                "manufacturer": None,
                "installed_on": None,
                "thresholds": {} if fault == "clock_skew" else IGNORE_SKEW,
            }
        )
    with psycopg.connect(libpq_url(database_url)) as conn:
        upsert_registry(conn, registry)


def _simulate(settings: Settings, group: Group, run: str, errors: list[BaseException]) -> None:
    try:
        specs = [_spec(fault, run) for fault in group.faults]
        faults = [
            ScheduledFault(group.inject_at_s, _elevator_id(f, run), f, CASES[f][2])
            for f in group.faults
        ]
        start = _start(group)
        fleet = Fleet(specs, seed=11, start=start, faults=faults, traffic_scale=group.traffic)
        devices = identities(settings, [(SITE, spec.elevator) for spec in specs])
        with FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=devices) as publisher:
            publisher.start()
            publisher.wait_connected(WAIT_S)
            run_fleet(fleet, MqttSink(publisher), duration_s=group.until_s, speedup=group.speedup)
            publisher.flush(WAIT_S)
    except BaseException as exc:
        errors.append(exc)


def _start(group: Group) -> dt.datetime:
    """When the group's simulated day begins.

    Device time runs `speedup` times faster than the wall clock, so it starts far enough back
    never to pass the receive time (a timestamp ahead by 5 min would be dead-lettered). Fleets
    with traffic start at 07:00, the morning peak, so the run has the same trips whatever
    the hour of the test run.
    """
    now = dt.datetime.now(dt.UTC)
    latest = now - dt.timedelta(seconds=group.until_s - group.until_s / group.speedup + 5)
    if group.traffic == 0:
        return latest
    start = latest.replace(hour=7, minute=0, second=0, microsecond=0)
    return start if start <= latest else start - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def e2e_run(
    stack_settings: Settings, test_database_url: str, engine: Engine
) -> Iterator[tuple[str, MqttTestClient]]:
    """Run every fault once through the whole pipeline; yields the run id and the alert
    topic subscriber."""
    run = uuid.uuid4().hex[:6]
    _register(test_database_url, run)
    devices = [(SITE, _elevator_id(fault, run)) for fault in STREAM_FAULTS]
    reader = service_credentials(stack_settings.secret("mqtt_secret"), ALERT_READER_USERNAME)
    stop = threading.Event()
    with broker_devices(stack_settings, devices):
        alerts_topic = connect(stack_settings.resolved_mqtt_url(), reader.username, reader.password)
        alerts_topic.subscribe(f"lift/v1/{SITE}/+/alert")
        collector = CollectorProcess(
            stack_settings, test_database_url, f"test-e2e-{run}", sites=[SITE]
        )
        collector.open_session()
        collector.start()
        notifier, publisher = _notifier(stack_settings, test_database_url, run)
        notifier_thread = threading.Thread(target=notifier.run, args=(stop,), daemon=True)
        notifier_thread.start()
        try:
            errors: list[BaseException] = []
            threads = [
                threading.Thread(target=_simulate, args=(stack_settings, group, run, errors))
                for group in _groups()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            _wait_for_alerts(test_database_url, run)
            yield run, alerts_topic
        finally:
            stop.set()
            notifier_thread.join(10)
            publisher.stop()
            collector.stop()
            collector.discard_session()
            alerts_topic.close()


def _notifier(settings: Settings, database_url: str, run: str) -> tuple[Notifier, AlertPublisher]:
    creds = service_credentials(settings.secret("mqtt_secret"), PLATFORM_USERNAME)
    publisher = AlertPublisher(
        mqtt_url=settings.resolved_mqtt_url(),
        username=creds.username,
        password=creds.password,
        client_id=f"test-notifier-{run}",
    )
    publisher.start()
    config = NotifierConfig(
        mqtt_cursor=f"mqtt-{run}", webhook_cursor=f"webhooks-{run}", new_cursor_at_latest=True
    )
    notifier = Notifier(conninfo=libpq_url(database_url), publisher=publisher, config=config)
    return notifier, publisher


def _alert_rows(database_url: str, run: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(
            "SELECT elevator_id, type, severity FROM alerts WHERE elevator_id LIKE %s",
            (f"e2e-{run}-%",),
        ).fetchall()


def _wait_for_alerts(database_url: str, run: str) -> None:
    wanted = {(_elevator_id(f, run), f) for f in STREAM_FAULTS}
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        seen = {(elevator, kind) for elevator, kind, _ in _alert_rows(database_url, run)}
        if wanted <= seen:
            return
        time.sleep(0.5)


def _expected_severity(database_url: str, elevator: str, fault: str) -> str:
    if fault in ("motor_overheat", "brake_overheat"):
        column = "motor_c" if fault == "motor_overheat" else "brake_c"
        with psycopg.connect(libpq_url(database_url)) as conn:
            row = conn.execute(
                f"SELECT max({column}) FROM telemetry WHERE elevator_id = %s",
                (elevator,),
            ).fetchone()
        assert row is not None
        return "major" if row[0] >= 110 else "minor"
    if fault == "safety_chain_open":
        return "major"  # injected while the car stands idle (no traffic)
    return FAULTS_BY_NAME[fault].severity.value


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_injected_fault_raises_one_alert_of_its_type_and_severity(
    e2e_run: tuple[str, MqttTestClient], test_database_url: str, fault: str
) -> None:
    run, _ = e2e_run
    elevator = _elevator_id(fault, run)
    rows = [
        severity
        for alert_elevator, kind, severity in _alert_rows(test_database_url, run)
        if alert_elevator == elevator and kind == fault
    ]
    assert rows == [_expected_severity(test_database_url, elevator, fault)]


@pytest.mark.parametrize("fault", STREAM_FAULTS)
def test_injected_fault_is_announced_once_on_its_alert_topic(
    e2e_run: tuple[str, MqttTestClient], fault: str
) -> None:
    run, alerts_topic = e2e_run
    elevator = _elevator_id(fault, run)
    topic = f"lift/v1/{SITE}/{elevator}/alert"
    deadline = time.monotonic() + 20
    opened: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        notices = [json.loads(payload) for t, payload in list(alerts_topic.received) if t == topic]
        opened = [n for n in notices if n["type"] == fault and n["event"] == "opened"]
        if opened:
            break
        time.sleep(0.2)
    assert len(opened) == 1
    assert opened[0]["elevator"] == elevator
    assert opened[0]["site"] == SITE
