"""The detection engine inside the batch writer, on the real database.

Samples go through `validate` and `BatchWriter.write` exactly as in the collector; the
tests check the exactly-once rules: a redelivered batch raises nothing new, and state lost
between batches (a restart, a failed transaction) is rebuilt from the stored telemetry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from alerts.engine import DetectionEngine
from core.db import libpq_url
from core.messages import Batch, Event, Sample
from ingest.validate import validate
from ingest.writer import BatchWriter
from tests.factories import add_elevator, event_payload, sample_payload

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TRAPPED = {"occupied": True, "door_zone": False, "pos_m": 7.4, "load_kg": 80.0}


@pytest.fixture
def elevator(test_database_url: str) -> tuple[str, str]:
    with psycopg.connect(libpq_url(test_database_url)) as conn:  # committed: the writer reads it
        return add_elevator(conn, prefix="de", site_name="Engine test")


def _batch(site: str, elevator: str, boot: str, seconds: range, **fields: Any) -> Batch:
    batch = Batch()
    for second in seconds:
        payload = sample_payload(boot=boot, seq=second, ts=NOW + dt.timedelta(seconds=second),
                                 **fields)  # fmt: skip
        outcome = validate(
            f"lift/v1/{site}/{elevator}/telemetry",
            payload,
            received_at=NOW + dt.timedelta(seconds=second),
            sites_by_elevator={elevator: site},
        )
        assert isinstance(outcome, Sample)
        batch.samples.append(outcome)
    return batch


def _alarm(site: str, elevator: str, boot: str, second: int) -> Event:
    payload = event_payload("alarm_button", boot=boot, seq=10_000 + second,
                            ts=NOW + dt.timedelta(seconds=second))  # fmt: skip
    outcome = validate(
        f"lift/v1/{site}/{elevator}/event",
        payload,
        received_at=NOW + dt.timedelta(seconds=second),
        sites_by_elevator={elevator: site},
    )
    assert isinstance(outcome, Event)
    return outcome


def _events(url: str, elevator: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.type, e.kind FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
            "WHERE a.elevator_id = %s ORDER BY e.id",
            (elevator,),
        ).fetchall()
    return [(kind, event) for kind, event in rows]


def _writer(url: str, site: str) -> BatchWriter:
    engine = DetectionEngine(owns_site=lambda s: s == site)
    return BatchWriter(url, detection=engine)


def test_a_redelivered_batch_raises_nothing_new(
    test_database_url: str, elevator: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    site, lift = elevator
    boot = uuid.uuid4().hex[:8]
    writer = _writer(url, site)
    try:
        batch = _batch(site, lift, boot, range(0, 25), **TRAPPED)
        batch.events.append(_alarm(site, lift, boot, 22))
        first = writer.write(batch)
        again = writer.write(batch)
    finally:
        writer.close()
    assert first.alert_events == 2
    assert again.alert_events == 0
    assert again.samples_duplicate == 25
    assert _events(url, lift) == [("trapped_between_floors", "opened"), ("alarm_button", "opened")]


def test_lost_state_is_rebuilt_from_stored_telemetry_without_a_second_raise(
    test_database_url: str, elevator: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    site, lift = elevator
    boot = uuid.uuid4().hex[:8]
    writer = _writer(url, site)
    try:
        writer.write(_batch(site, lift, boot, range(0, 15), **TRAPPED))
        assert _events(url, lift) == []
        writer.close()  # a new process: nothing in memory
        writer = _writer(url, site)
        # The condition started 15 s ago in stored telemetry: 5 more seconds complete it.
        writer.write(_batch(site, lift, boot, range(15, 21), **TRAPPED))
        assert _events(url, lift) == [("trapped_between_floors", "opened")]
        writer.close()
        writer = _writer(url, site)
        writer.write(_batch(site, lift, boot, range(21, 60), **TRAPPED))
    finally:
        writer.close()
    assert _events(url, lift) == [("trapped_between_floors", "opened")]


def test_an_active_alert_clears_after_the_hysteresis_time_across_a_restart(
    test_database_url: str, elevator: tuple[str, str]
) -> None:
    url = libpq_url(test_database_url)
    site, lift = elevator
    boot = uuid.uuid4().hex[:8]
    writer = _writer(url, site)
    try:
        writer.write(_batch(site, lift, boot, range(0, 30), power="battery"))
        writer.write(_batch(site, lift, boot, range(30, 90)))
        writer.close()
        writer = _writer(url, site)
        writer.write(_batch(site, lift, boot, range(90, 160)))
    finally:
        writer.close()
    assert _events(url, lift) == [("power_failure", "opened"), ("power_failure", "cleared")]
