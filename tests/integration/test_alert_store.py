"""The alert store on the real database: lifecycle, workflow, escalation, ledger entries."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from typing import Any

import psycopg
import pytest

from alerts.detector import AlertSignal
from alerts.maintenance import sweep_maintenance_overdue
from alerts.store import (
    WorkflowError,
    advance_workflow,
    apply_signal,
    escalate_due,
    record_in_ledger,
)
from core.db import libpq_url
from core.faults import Severity, resolve_thresholds
from ledger.entries import PendingEntry, append_entries, content_hash
from ledger.merkle import hash_leaf
from tests.factories import add_elevator, add_site, add_user

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
THRESHOLDS = resolve_thresholds()


@pytest.fixture
def elevator(conn: psycopg.Connection[Any]) -> str:
    """A registered elevator of its own site; returns its id."""
    suffix = uuid.uuid4().hex[:8]
    return add_elevator(conn, f"el-{suffix}", site=f"st-{suffix}", site_name="Store test",
                        building="B1", highest_floor=10,
                        created_at=T0 - dt.timedelta(days=1)).elevator  # fmt: skip


@pytest.fixture
def crew(conn: psycopg.Connection[Any]) -> int:
    """A crew member's user id."""
    return add_user(conn, "crew", sites=[add_site(conn)]).id


def _signal(
    elevator: str,
    action: str = "raise",
    *,
    kind: str = "trapped_between_floors",
    severity: Severity = Severity.CRITICAL,
    at: dt.datetime = T0,
) -> AlertSignal:
    site = "st-" + elevator.removeprefix("el-")
    return AlertSignal(elevator, site, kind, action, severity, at, {"floor": 3})  # type: ignore[arg-type]


def _alerts(conn: psycopg.Connection[Any], elevator: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, type, severity, condition, status, occurrences FROM alerts "
        "WHERE elevator_id = %s ORDER BY id",
        (elevator,),
    ).fetchall()


def _event_kinds(conn: psycopg.Connection[Any], alert_id: int) -> list[str]:
    rows = conn.execute(
        "SELECT kind FROM alert_events WHERE alert_id = %s ORDER BY id", (alert_id,)
    ).fetchall()
    return [row[0] for row in rows]


def test_a_raise_opens_an_alert_with_an_event_and_escalation_deadlines(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    event = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert event is not None
    assert event.kind == "opened"
    row = conn.execute(
        "SELECT status, condition, opened_at, ack_due_at, on_site_due_at FROM alerts WHERE id = %s",
        (event.alert_id,),
    ).fetchone()
    assert row == (
        "open",
        "active",
        T0,
        T0 + dt.timedelta(minutes=5),
        T0 + dt.timedelta(minutes=30),
    )


def test_a_minor_alert_has_no_escalation_deadlines(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    event = apply_signal(
        conn, _signal(elevator, kind="motor_overheat", severity=Severity.MINOR), THRESHOLDS
    )
    assert event is not None
    row = conn.execute(
        "SELECT ack_due_at, on_site_due_at FROM alerts WHERE id = %s", (event.alert_id,)
    ).fetchone()
    assert row == (None, None)


def test_a_repeat_while_unresolved_updates_the_same_alert_without_an_event(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    apply_signal(conn, _signal(elevator), THRESHOLDS)
    repeat = apply_signal(conn, _signal(elevator, at=T0 + dt.timedelta(seconds=5)), THRESHOLDS)
    assert repeat is None
    assert len(_alerts(conn, elevator)) == 1


def test_a_higher_severity_updates_the_alert_and_sets_deadlines_once_critical(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    major = _signal(elevator, kind="safety_chain_open", severity=Severity.MAJOR)
    opened = apply_signal(conn, major, THRESHOLDS)
    assert opened is not None
    later = T0 + dt.timedelta(seconds=30)
    critical = _signal(elevator, kind="safety_chain_open", severity=Severity.CRITICAL, at=later)
    updated = apply_signal(conn, critical, THRESHOLDS)
    assert updated is not None
    assert updated.kind == "updated"
    assert updated.details["severity_from"] == "major"
    row = conn.execute(
        "SELECT severity, ack_due_at FROM alerts WHERE id = %s", (opened.alert_id,)
    ).fetchone()
    assert row == ("critical", later + dt.timedelta(minutes=5))


def test_clear_then_raise_while_unresolved_reactivates_the_same_alert(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None
    apply_signal(conn, _signal(elevator, "clear", at=T0 + dt.timedelta(minutes=3)), THRESHOLDS)
    again = apply_signal(conn, _signal(elevator, at=T0 + dt.timedelta(minutes=10)), THRESHOLDS)
    assert again is not None
    assert again.kind == "reactivated"
    assert again.alert_id == opened.alert_id
    [(_, _, _, condition, status, occurrences)] = _alerts(conn, elevator)
    assert (condition, status, occurrences) == ("active", "open", 2)
    assert _event_kinds(conn, opened.alert_id) == ["opened", "cleared", "reactivated"]


def test_a_raise_after_the_alert_was_resolved_opens_a_new_alert(
    conn: psycopg.Connection[Any], elevator: str, crew: int
) -> None:
    first = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert first is not None
    advance_workflow(conn, first.alert_id, "acknowledge", user_id=crew, at=T0)
    advance_workflow(conn, first.alert_id, "resolve", user_id=crew, at=T0)
    apply_signal(conn, _signal(elevator, "clear"), THRESHOLDS)
    second = apply_signal(conn, _signal(elevator, at=T0 + dt.timedelta(hours=1)), THRESHOLDS)
    assert second is not None
    assert second.kind == "opened"
    assert second.alert_id != first.alert_id


def test_the_database_refuses_a_second_unresolved_alert_for_one_elevator_and_type(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    apply_signal(conn, _signal(elevator), THRESHOLDS)
    site = "st-" + elevator.removeprefix("el-")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO alerts (elevator_id, site_id, type, severity, opened_at, "
            "last_active_at) VALUES (%s, %s, 'trapped_between_floors', 'critical', %s, %s)",
            (elevator, site, T0, T0),
        )


def test_workflow_records_who_and_when_for_every_step(
    conn: psycopg.Connection[Any], elevator: str, crew: int
) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None
    steps = [("acknowledge", 2), ("on_site", 14), ("resolve", 25)]
    for action, minute in steps:
        event = advance_workflow(
            conn, opened.alert_id, action, user_id=crew, at=T0 + dt.timedelta(minutes=minute)
        )
        assert event.actor_user_id == crew
    row = conn.execute(
        "SELECT status, acknowledged_at, acknowledged_by, on_site_at, on_site_by, closed_at, "
        "closed_by FROM alerts WHERE id = %s",
        (opened.alert_id,),
    ).fetchone()
    minutes = [T0 + dt.timedelta(minutes=m) for _, m in steps]
    assert row == ("resolved", minutes[0], crew, minutes[1], crew, minutes[2], crew)
    assert _event_kinds(conn, opened.alert_id) == ["opened", "acknowledged", "on_site", "resolved"]


@pytest.mark.parametrize(
    ("done", "action"),
    [
        ((), "on_site"),
        ((), "resolve"),
        (("acknowledge",), "acknowledge"),
        (("acknowledge", "resolve"), "false_alarm"),
    ],
)
def test_a_step_the_status_does_not_allow_is_refused_with_a_code(
    conn: psycopg.Connection[Any], elevator: str, crew: int, done: tuple[str, ...], action: str
) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None
    for step in done:
        advance_workflow(conn, opened.alert_id, step, user_id=crew, at=T0)
    with pytest.raises(WorkflowError) as refused:
        advance_workflow(conn, opened.alert_id, action, user_id=crew, at=T0)
    assert refused.value.code == "invalid_transition"


def test_a_step_on_a_missing_alert_is_refused(conn: psycopg.Connection[Any], crew: int) -> None:
    with pytest.raises(WorkflowError) as refused:
        advance_workflow(conn, 10**12, "acknowledge", user_id=crew, at=T0)
    assert refused.value.code == "alert_not_found"


def test_escalation_fires_once_per_stage_at_its_deadline(
    conn: psycopg.Connection[Any], elevator: str, crew: int
) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None

    def mine(events: list[Any]) -> list[str]:
        return [e.details["stage"] for e in events if e.alert_id == opened.alert_id]

    assert mine(escalate_due(conn, T0 + dt.timedelta(minutes=4, seconds=59))) == []
    assert mine(escalate_due(conn, T0 + dt.timedelta(minutes=5))) == ["acknowledge"]
    assert mine(escalate_due(conn, T0 + dt.timedelta(minutes=6))) == []
    advance_workflow(conn, opened.alert_id, "acknowledge", user_id=crew, at=T0)
    assert mine(escalate_due(conn, T0 + dt.timedelta(minutes=30))) == ["on_site"]
    assert mine(escalate_due(conn, T0 + dt.timedelta(minutes=40))) == []
    row = conn.execute(
        "SELECT ack_escalated_at, on_site_escalated_at FROM alerts WHERE id = %s",
        (opened.alert_id,),
    ).fetchone()
    assert row == (T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=30))


def test_an_alert_on_site_in_time_is_not_escalated(
    conn: psycopg.Connection[Any], elevator: str, crew: int
) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None
    advance_workflow(conn, opened.alert_id, "acknowledge", user_id=crew, at=T0)
    advance_workflow(conn, opened.alert_id, "on_site", user_id=crew, at=T0)
    events = escalate_due(conn, T0 + dt.timedelta(hours=1))
    assert [e for e in events if e.alert_id == opened.alert_id] == []


def test_alert_events_become_ledger_entries_whose_hashes_match(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None
    record_in_ledger(conn, [opened])
    row = conn.execute(
        "SELECT seq, kind, source_table, source_id, canonical, content_hash, leaf_hash "
        "FROM ledger_entries WHERE source_table = 'alert_events' AND source_id = %s",
        (opened.event_id,),
    ).fetchone()
    assert row is not None
    _, kind, _, _, canonical, digest, leaf = row
    assert kind == "alert_event"
    assert bytes(digest) == content_hash(bytes(canonical))
    assert bytes(leaf) == hash_leaf(bytes(digest))
    body = json.loads(bytes(canonical))
    assert body["event"] == "opened"
    assert body["elevator"] == elevator
    assert len(body["salt"]) == 32


def test_ledger_entries_are_append_only(conn: psycopg.Connection[Any], elevator: str) -> None:
    opened = apply_signal(conn, _signal(elevator), THRESHOLDS)
    assert opened is not None
    record_in_ledger(conn, [opened])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "UPDATE ledger_entries SET kind = 'x' WHERE source_id = %s", (opened.event_id,)
        )


def test_concurrent_appenders_produce_a_dense_sequence(test_database_url: str) -> None:
    url = libpq_url(test_database_url)
    marker = uuid.uuid4().hex

    def append_many(worker: int) -> None:
        with psycopg.connect(url) as connection:
            for index in range(20):
                with connection.transaction():
                    entry = PendingEntry("test", "test", worker * 100 + index, marker, {"i": index})
                    append_entries(connection, [entry])

    threads = [threading.Thread(target=append_many, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with psycopg.connect(url) as connection:
        seqs = [row[0] for row in connection.execute("SELECT seq FROM ledger_entries ORDER BY seq")]
        mine = connection.execute(
            "SELECT count(*) FROM ledger_entries WHERE elevator_id = %s", (marker,)
        ).fetchone()
    assert seqs == list(range(len(seqs)))
    assert mine == (80,)


def test_maintenance_overdue_is_raised_after_15_days_and_cleared_by_a_routine_record(
    conn: psycopg.Connection[Any], elevator: str, crew: int
) -> None:
    def mine(events: list[Any]) -> list[str]:
        return [e.kind for e in events if e.elevator_id == elevator]

    registered = T0 - dt.timedelta(days=1)
    assert mine(sweep_maintenance_overdue(conn, registered + dt.timedelta(days=14))) == []
    raised = sweep_maintenance_overdue(conn, registered + dt.timedelta(days=15))
    assert mine(raised) == ["opened"]
    assert mine(sweep_maintenance_overdue(conn, registered + dt.timedelta(days=16))) == []
    conn.execute(
        "INSERT INTO maintenance_records (elevator_id, kind, performed_at, performed_by, summary) "
        "VALUES (%s, 'routine', %s, %s, 'half-monthly maintenance')",
        (elevator, registered + dt.timedelta(days=16), crew),
    )
    cleared = sweep_maintenance_overdue(conn, registered + dt.timedelta(days=16, hours=1))
    assert mine(cleared) == ["cleared"]
