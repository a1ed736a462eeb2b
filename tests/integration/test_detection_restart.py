"""A collector killed during an active trapped-passenger condition, then restarted.

The restarted collector rebuilds its detectors from the stored telemetry and the active
alerts: the passenger is still trapped, so the alert stays one alert, still active, with
its escalation deadlines unchanged, and no second `opened` event or notice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from alerts.store import escalate_due
from core.db import libpq_url
from core.registry import ParsedRegistry, upsert_registry
from core.settings import Settings
from simulators.fleet import Fleet
from simulators.publisher import FleetPublisher
from simulators.runner import MqttSink, run_fleet
from simulators.scenario import ScheduledFault
from tests.integration.broker_accounts import broker_devices, identities
from tests.integration.collector_process import CollectorProcess
from tests.simulators.helpers import TOWER

SITE = "restart-site"
SPEEDUP = 4.0
SIM_S = 200.0
WAIT_S = 60.0


def _register(database_url: str, elevator: str) -> None:
    registry = ParsedRegistry()
    registry.sites[SITE] = {"id": SITE, "name": "Restart", "district": None}
    registry.elevators.append(
        {
            "id": elevator, "site_id": SITE, "building": "tower", "lowest_floor": -1,
            "highest_floor": 18, "floor_height_m": 3.0, "rated_speed_mps": 1.75,
            "rated_load_kg": 1000.0, "acceleration_mps2": 0.8, "jerk_mps3": 1.2,
            "registration_code": None, "manufacturer": None, "installed_on": None,
            # Simulated time runs ahead of the wall clock from a start in the past.
            "thresholds": {"clock_skew_s": 1e9},
        }
    )  # fmt: skip
    with psycopg.connect(libpq_url(database_url)) as conn:
        upsert_registry(conn, registry)


def _trapped_alerts(conn: psycopg.Connection[Any], elevator: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, condition, status, opened_at, ack_due_at, on_site_due_at FROM alerts "
        "WHERE elevator_id = %s AND type = 'trapped_between_floors'",
        (elevator,),
    ).fetchall()


def _wait(predicate: Any, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def test_killed_collector_keeps_one_active_trapped_alert_with_its_escalation_due(
    stack_settings: Settings, test_database_url: str, engine: Engine
) -> None:
    elevator = f"restart-{uuid.uuid4().hex[:6]}"
    _register(test_database_url, elevator)
    spec = dataclasses.replace(TOWER, site=SITE, elevator=elevator)
    fault = ScheduledFault(2.0, elevator, "trapped_between_floors", 10_000.0)
    wall_s = SIM_S / SPEEDUP
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=SIM_S - wall_s + 5)
    fleet = Fleet([spec], seed=5, start=start, faults=[fault], traffic_scale=0.0)
    url = libpq_url(test_database_url)
    collector = CollectorProcess(
        stack_settings, test_database_url, f"test-restart-{elevator}", sites=[SITE]
    )
    errors: list[BaseException] = []

    def simulate() -> None:
        try:
            devices = identities(stack_settings, [(SITE, elevator)])
            mqtt_url = stack_settings.resolved_mqtt_url()
            with FleetPublisher(mqtt_url=mqtt_url, devices=devices) as publisher:
                publisher.start()
                publisher.wait_connected(WAIT_S)
                run_fleet(fleet, MqttSink(publisher), duration_s=SIM_S, speedup=SPEEDUP)
                publisher.flush(WAIT_S)
        except BaseException as exc:
            errors.append(exc)

    with broker_devices(stack_settings, [(SITE, elevator)]), psycopg.connect(url) as conn:
        conn.autocommit = True
        collector.open_session()
        collector.start()
        publisher = threading.Thread(target=simulate)
        publisher.start()
        try:
            assert _wait(lambda: _trapped_alerts(conn, elevator)), "no trapped alert raised"
            [before] = _trapped_alerts(conn, elevator)
            collector.kill()
            time.sleep(3.0)  # the car stays stuck; samples queue in the collector's session
            collector.start()
            killed_at = dt.datetime.now(dt.UTC)

            def stored_after_restart() -> bool:
                row = conn.execute(
                    "SELECT count(*) FROM telemetry WHERE elevator_id = %s AND received_at > %s",
                    (elevator, killed_at + dt.timedelta(seconds=5)),
                ).fetchone()
                return row is not None and row[0] > 0

            assert _wait(stored_after_restart), "the restarted collector stores nothing"
            publisher.join()
            assert errors == []
            time.sleep(2.0)
            after = _trapped_alerts(conn, elevator)
            events = conn.execute(
                "SELECT kind FROM alert_events WHERE alert_id = %s ORDER BY id", (before[0],)
            ).fetchall()
        finally:
            collector.stop()
            collector.discard_session()
            publisher.join()

        assert after == [before]
        alert_id, condition, status, opened_at, ack_due_at, on_site_due_at = before
        assert (condition, status) == ("active", "open")
        assert ack_due_at == opened_at + dt.timedelta(minutes=5)
        assert on_site_due_at == opened_at + dt.timedelta(minutes=30)
        assert events == [("opened",)]
        # The escalation timer fires at its deadline, once, and not a moment before.
        with conn.transaction(force_rollback=True):
            early = escalate_due(conn, ack_due_at - dt.timedelta(seconds=1))
            due = escalate_due(conn, ack_due_at)
        assert [e for e in early if e.alert_id == alert_id] == []
        assert [e.details["stage"] for e in due if e.alert_id == alert_id] == ["acknowledge"]
