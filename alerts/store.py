"""The alert store: detector signals, crew actions and escalations applied to the database.

Every function works inside the caller's transaction on a psycopg connection and returns the
`alert_events` it wrote; `record_in_ledger` appends their entries (`alerts.entries`) to the
ledger in the same transaction, so an alert change, its event and its ledger entry commit
together or not at all.

Lifecycle (SPEC §4): a raise opens an alert, or updates the unresolved one of that
(elevator, type) — reactivating it when its condition had cleared. The partial unique index
`ux_alerts_one_unresolved_per_elevator_type` makes a second unresolved alert impossible
whatever the code does. Critical alerts get their escalation deadlines when they open (or
become critical). Workflow: open → acknowledged → on_site → resolved, or false_alarm from any
unresolved state; each step records who and when.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from alerts.detector import AlertSignal
from alerts.entries import STEP_COLUMNS, alert_event_entry
from core.alerting import (
    UNRESOLVED_SQL,
    UNRESOLVED_STATUSES,
    AlertCondition,
    AlertEventKind,
    AlertStatus,
)
from core.errors import Refused
from core.faults import SEVERITY_RANK, Severity
from core.stored_json import report_unreadable
from ledger.entries import append_entries, entry_time

UNRESOLVED: Final = list(UNRESOLVED_STATUSES)
# The step each workflow action takes, and the statuses it may start from.
WORKFLOW: Final[Mapping[str, tuple[AlertStatus, tuple[AlertStatus, ...]]]] = {
    "acknowledge": (AlertStatus.ACKNOWLEDGED, (AlertStatus.OPEN,)),
    "on_site": (AlertStatus.ON_SITE, (AlertStatus.ACKNOWLEDGED,)),
    "resolve": (AlertStatus.RESOLVED, (AlertStatus.ACKNOWLEDGED, AlertStatus.ON_SITE)),
    "false_alarm": (AlertStatus.FALSE_ALARM, UNRESOLVED_STATUSES),
}
_ALERT_COLUMNS: Final = "id, elevator_id, site_id, type, severity, condition, status"


class WorkflowError(Refused):
    """A workflow step that the alert's current status does not allow."""


@dataclass(frozen=True, slots=True)
class AlertEventRecord:
    """One row written to `alert_events`, with what the ledger entry needs."""

    event_id: int
    alert_id: int
    kind: str
    time: dt.datetime
    elevator_id: str
    site_id: str
    type: str
    severity: str
    actor_user_id: int | None
    details: Mapping[str, Any]


def _one(row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:  # a RETURNING of a row we hold locked cannot be empty
        raise RuntimeError("expected a row")
    return row


def _insert_event(
    cur: psycopg.Cursor[Any],
    alert: Mapping[str, Any],
    kind: AlertEventKind,
    at: dt.datetime,
    details: Mapping[str, Any],
    *,
    actor: int | None = None,
) -> AlertEventRecord:
    row = cur.execute(
        "INSERT INTO alert_events (alert_id, time, kind, actor_user_id, details) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (alert["id"], at, kind, actor, Jsonb(dict(details))),
    ).fetchone()
    return AlertEventRecord(
        event_id=int(_one(row)["id"]),
        alert_id=int(alert["id"]),
        kind=kind,
        time=at,
        elevator_id=alert["elevator_id"],
        site_id=alert["site_id"],
        type=alert["type"],
        severity=alert["severity"],
        actor_user_id=actor,
        details=dict(details),
    )


def _deadlines(
    severity: Severity, at: dt.datetime, thresholds: Mapping[str, float]
) -> tuple[dt.datetime | None, dt.datetime | None]:
    if severity is not Severity.CRITICAL:
        return None, None
    return (
        at + dt.timedelta(seconds=thresholds["escalate_ack_s"]),
        at + dt.timedelta(seconds=thresholds["escalate_on_site_s"]),
    )


def _deadline_details(
    ack_due: dt.datetime | None, on_site_due: dt.datetime | None
) -> dict[str, str]:
    """The escalation deadlines an event sets, as its details record them for the audit."""
    if ack_due is None or on_site_due is None:
        return {}
    return {"ack_due_at": entry_time(ack_due), "on_site_due_at": entry_time(on_site_due)}


def apply_signal(
    conn: psycopg.Connection[Any], signal: AlertSignal, thresholds: Mapping[str, float]
) -> AlertEventRecord | None:
    """Apply one detector signal; returns the event it caused, if any."""
    if signal.action == "raise":
        return _raise(conn, signal, thresholds)
    return _clear(conn, signal)


def _raise(
    conn: psycopg.Connection[Any], signal: AlertSignal, thresholds: Mapping[str, float]
) -> AlertEventRecord | None:
    with conn.cursor(row_factory=dict_row) as cur:
        current = cur.execute(
            f"SELECT {_ALERT_COLUMNS}, ack_due_at FROM alerts "  # noqa: S608
            "WHERE elevator_id = %s AND type = %s AND status = ANY(%s) FOR UPDATE",
            (signal.elevator, signal.type, UNRESOLVED),
        ).fetchone()
        if current is None:
            ack_due, on_site_due = _deadlines(signal.severity, signal.at, thresholds)
            opened = cur.execute(
                "INSERT INTO alerts (elevator_id, site_id, type, severity, opened_at, "  # noqa: S608 - constant columns
                "last_active_at, ack_due_at, on_site_due_at, details) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (elevator_id, type) "
                f"WHERE status IN ({UNRESOLVED_SQL}) DO NOTHING "
                f"RETURNING {_ALERT_COLUMNS}",
                (signal.elevator, signal.site, signal.type, signal.severity.value, signal.at,
                 signal.at, ack_due, on_site_due, Jsonb(dict(signal.details))),
            ).fetchone()  # fmt: skip
            if opened is not None:
                details = {**signal.details, **_deadline_details(ack_due, on_site_due)}
                return _insert_event(cur, opened, AlertEventKind.OPENED, signal.at, details)
            # Another writer opened it between our read and insert: update that one instead.
            return _raise(conn, signal, thresholds)
        higher = SEVERITY_RANK[signal.severity] > SEVERITY_RANK[Severity(current["severity"])]
        severity = signal.severity.value if higher else current["severity"]
        ack_due, on_site_due = _deadlines(Severity(severity), signal.at, thresholds)
        reactivated = current["condition"] == AlertCondition.CLEARED
        updated = cur.execute(
            "UPDATE alerts SET condition = 'active', cleared_at = NULL, last_active_at = %s, "  # noqa: S608 - constant columns
            "severity = %s, occurrences = occurrences + %s, "
            "ack_due_at = coalesce(ack_due_at, %s), on_site_due_at = coalesce(on_site_due_at, %s) "
            f"WHERE id = %s RETURNING {_ALERT_COLUMNS}",
            (signal.at, severity, 1 if reactivated else 0, ack_due, on_site_due, current["id"]),
        ).fetchone()
        updated = _one(updated)
        # Deadlines are set once (coalesce): the event that sets them records them.
        deadlines = _deadline_details(ack_due, on_site_due) if current["ack_due_at"] is None else {}
        if reactivated:
            details = {**signal.details, **deadlines}
            return _insert_event(cur, updated, AlertEventKind.REACTIVATED, signal.at, details)
        if higher:
            details = {**signal.details, "severity_from": current["severity"], **deadlines}
            return _insert_event(cur, updated, AlertEventKind.UPDATED, signal.at, details)
        return None


def _clear(conn: psycopg.Connection[Any], signal: AlertSignal) -> AlertEventRecord | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cleared = cur.execute(
            "UPDATE alerts SET condition = 'cleared', cleared_at = %s "  # noqa: S608 - constant columns
            "WHERE id = (SELECT id FROM alerts WHERE elevator_id = %s AND type = %s "
            "            AND condition = 'active' ORDER BY opened_at DESC LIMIT 1) "
            f"RETURNING {_ALERT_COLUMNS}",
            (signal.at, signal.elevator, signal.type),
        ).fetchone()
        if cleared is None:
            return None
        return _insert_event(cur, cleared, AlertEventKind.CLEARED, signal.at, signal.details)


def advance_workflow(
    conn: psycopg.Connection[Any],
    alert_id: int,
    action: str,
    *,
    user_id: int,
    at: dt.datetime,
    note: str | None = None,
) -> AlertEventRecord:
    """Take one workflow step (`acknowledge`, `on_site`, `resolve`, `false_alarm`)."""
    if action not in WORKFLOW:
        raise WorkflowError(f"unknown workflow action {action!r}", code="unknown_action")
    status, allowed_from = WORKFLOW[action]
    at_column, by_column = STEP_COLUMNS[status]
    with conn.cursor(row_factory=dict_row) as cur:
        current = cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s FOR UPDATE",  # noqa: S608
            (alert_id,),
        ).fetchone()
        if current is None:
            raise WorkflowError(f"alert {alert_id} does not exist", code="alert_not_found")
        if current["status"] not in allowed_from:
            raise WorkflowError(
                f"alert {alert_id} is {current['status']}; {action} needs "
                + " or ".join(allowed_from),
                code="invalid_transition",
            )
        updated = cur.execute(
            f"UPDATE alerts SET status = %s, {at_column} = %s, {by_column} = %s "  # noqa: S608
            f"WHERE id = %s RETURNING {_ALERT_COLUMNS}",
            (status, at, user_id, alert_id),
        ).fetchone()
        updated = _one(updated)
        details = {"from": current["status"]} | ({"note": note} if note else {})
        return _insert_event(cur, updated, AlertEventKind(status), at, details, actor=user_id)


def escalate_due(conn: psycopg.Connection[Any], now: dt.datetime) -> list[AlertEventRecord]:
    """Escalate critical alerts past their acknowledge or on-site deadline (once each).

    Each alert is escalated in its own savepoint: a stored alert row that cannot be read
    back (a deadline out of range, …) is logged and left for the next sweep, and the other
    alerts are escalated. The update claims only a row whose flag is still empty, so two
    notifiers never escalate the same stage twice."""
    events: list[AlertEventRecord] = []
    stages = (
        ("acknowledge", "ack_escalated_at", "ack_due_at", [AlertStatus.OPEN]),
        (
            "on_site",
            "on_site_escalated_at",
            "on_site_due_at",
            [AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED],
        ),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        for stage, flag, due, statuses in stages:
            due_ids = [
                int(row["id"])
                for row in cur.execute(
                    f"SELECT id FROM alerts WHERE {flag} IS NULL AND {due} <= %s "  # noqa: S608
                    "AND status = ANY(%s) ORDER BY id",
                    (now, statuses),
                )
            ]
            for alert_id in due_ids:
                try:
                    with conn.transaction():
                        row = cur.execute(
                            f"UPDATE alerts SET {flag} = %s WHERE id = %s AND {flag} IS NULL "  # noqa: S608
                            f"AND {due} <= %s AND status = ANY(%s) "
                            f"RETURNING {_ALERT_COLUMNS}, {due} AS due_at",
                            (now, alert_id, now, statuses),
                        ).fetchone()
                        if row is None:  # another notifier escalated it meanwhile
                            continue
                        details = {"stage": stage, "due_at": entry_time(row["due_at"])}
                        event = _insert_event(cur, row, AlertEventKind.ESCALATED, now, details)
                except (psycopg.DataError, ValueError, OverflowError) as exc:
                    report_unreadable("escalation", None, f"alert {alert_id}: {exc}")
                    continue
                events.append(event)
    return events


def record_in_ledger(conn: psycopg.Connection[Any], events: Sequence[AlertEventRecord]) -> None:
    """Append the ledger entries of `events`, in the caller's transaction."""
    append_entries(conn, [alert_event_entry(event) for event in events])
