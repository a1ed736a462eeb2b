"""The `maintenance_overdue` rule: no routine maintenance record for 15 days (SPEC §4).

Statutory maintenance is proven by records, not by telemetry, so this rule is a sweep over
the registry and `maintenance_records` that the notifier runs every minute. An elevator that
never had a routine record counts from its registration. The sweep is idempotent: it raises
only where no active alert exists and clears only where one does. Stored thresholds are
decoded as possibly hostile (`core.stored_json`), and an elevator whose row cannot be used is
logged and skipped, in its own savepoint, so it cannot stop the sweep for the others.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from alerts.detector import AlertSignal
from alerts.store import AlertEventRecord, apply_signal, record_in_ledger
from core.alerting import AlertCondition
from core.faults import FAULTS_BY_NAME, resolve_thresholds
from core.stored_json import decode_object, report_unreadable
from ledger.entries import entry_time

OVERDUE: Final = "maintenance_overdue"
_ELEVATORS: Final = """
SELECT e.id, e.site_id, e.created_at, e.thresholds::text AS elevator_thresholds,
       s.thresholds::text AS site_thresholds,
       (SELECT max(m.performed_at) FROM maintenance_records m
        WHERE m.elevator_id = e.id AND m.kind = 'routine') AS last_routine,
       EXISTS (SELECT 1 FROM alerts a WHERE a.elevator_id = e.id
               AND a.type = %(type)s AND a.condition = %(active)s) AS alert_active
FROM elevators e JOIN sites s ON s.id = e.site_id
WHERE e.active
"""


def maintenance_due_at(
    last_routine: dt.datetime | None, registered_at: dt.datetime, interval_days: float
) -> dt.datetime:
    """When the next routine maintenance is due."""
    return (last_routine or registered_at) + dt.timedelta(days=interval_days)


def sweep_maintenance_overdue(
    conn: psycopg.Connection[Any], now: dt.datetime
) -> list[AlertEventRecord]:
    """Raise or clear `maintenance_overdue` for every active elevator, in one transaction."""
    events: list[AlertEventRecord] = []
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _ELEVATORS, {"type": OVERDUE, "active": AlertCondition.ACTIVE}
        ).fetchall()
    for row in rows:
        try:
            with conn.transaction():
                event = _sweep_one(conn, row, now)
        except Exception as exc:  # one elevator's stored row must not stop the sweep
            report_unreadable("maintenance_sweep", None, f"elevator {row['id']}: {exc}")
            continue
        if event is not None:
            events.append(event)
    record_in_ledger(conn, events)
    return events


def _sweep_one(
    conn: psycopg.Connection[Any], row: dict[str, Any], now: dt.datetime
) -> AlertEventRecord | None:
    thresholds = resolve_thresholds(
        decode_object(row["site_thresholds"]), decode_object(row["elevator_thresholds"])
    )
    due = maintenance_due_at(
        row["last_routine"], row["created_at"], thresholds["maintenance_interval_days"]
    )
    overdue = now >= due
    if overdue == row["alert_active"]:
        return None
    last = row["last_routine"]
    signal = AlertSignal(
        elevator=row["id"],
        site=row["site_id"],
        type=OVERDUE,
        action="raise" if overdue else "clear",
        severity=FAULTS_BY_NAME[OVERDUE].severity,
        at=now,
        details={
            "due_at": entry_time(due),
            "last_routine": entry_time(last) if last is not None else None,
        },
    )
    return apply_signal(conn, signal, thresholds)
