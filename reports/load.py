"""SQL loaders that read a report's inputs into DataFrames, and `build_report` on top of them.

Every value is bound as a parameter; a site filter (`site_id = ANY(%(sites)s)`) is added only
when the caller is limited to some sites. The caller owns the connection and its transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, LiteralString

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from reports.compute import (
    ALERT_COLUMNS,
    ELEVATOR_COLUMNS,
    RECORD_COLUMNS,
    REPORT_NAMES,
    availability_report,
    check_period,
    maintenance_report,
    sla_report,
)
from reports.report import Report


@dataclass(frozen=True, slots=True)
class _Input:
    """One input of a report: its query, with `{sites}` where the site filter goes, the
    columns it selects, and the alias of the table whose `site_id` the filter tests."""

    query: LiteralString
    columns: Sequence[str]
    alias: str


# Active elevators with their site's and their own threshold overrides.
_ELEVATORS: Final = _Input(
    """
SELECT e.id AS elevator_id, e.site_id, e.building, e.created_at,
       s.thresholds AS site_thresholds, e.thresholds AS elevator_thresholds
FROM elevators e JOIN sites s ON s.id = e.site_id
WHERE e.active {sites}
ORDER BY e.site_id, e.id
""",
    ELEVATOR_COLUMNS,
    "e",
)

# Alerts that overlap [start, end) (opened before its end, not closed before its start): only
# those can count towards a report of that period.
_ALERTS: Final = _Input(
    """
SELECT a.id AS alert_id, a.elevator_id, a.site_id, a.type, a.severity, a.status,
       a.opened_at, a.acknowledged_at, a.on_site_at, a.closed_at
FROM alerts a
WHERE a.opened_at < %(end)s AND (a.closed_at IS NULL OR a.closed_at >= %(start)s) {sites}
ORDER BY a.opened_at, a.id
""",
    ALERT_COLUMNS,
    "a",
)

# Every record performed in [start, end), and each elevator's latest routine record whenever
# it was.
_RECORDS: Final = _Input(
    """
(SELECT m.id AS record_id, m.elevator_id, m.kind, m.performed_at
 FROM maintenance_records m JOIN elevators e ON e.id = m.elevator_id
 WHERE m.performed_at >= %(start)s AND m.performed_at < %(end)s {sites})
UNION
(SELECT DISTINCT ON (m.elevator_id) m.id, m.elevator_id, m.kind, m.performed_at
 FROM maintenance_records m JOIN elevators e ON e.id = m.elevator_id
 WHERE m.kind = 'routine' {sites}
 ORDER BY m.elevator_id, m.performed_at DESC, m.id DESC)
ORDER BY elevator_id, performed_at, record_id
""",
    RECORD_COLUMNS,
    "e",
)


def build_report(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    sites: Collection[str] | None,
) -> Report:
    """Load what report `name` needs (of `sites` only, when given) and compute it."""
    if name not in REPORT_NAMES:
        raise ValueError(f"unknown report {name!r}; reports are {', '.join(REPORT_NAMES)}")
    check_period(start, end, now)
    start, end, now = (moment.astimezone(dt.UTC) for moment in (start, end, now))
    period = {"start": start, "end": end}
    elevators = _read(conn, _ELEVATORS, {}, sites)
    if name == "maintenance":
        records = _read(conn, _RECORDS, period, sites)
        return maintenance_report(elevators, records, start=start, end=end, now=now)
    alerts = _read(conn, _ALERTS, period, sites)
    if name == "sla":
        return sla_report(elevators, alerts, start=start, end=end, now=now)
    return availability_report(elevators, alerts, start=start, end=end, now=now)


def _read(
    conn: psycopg.Connection[Any],
    source: _Input,
    params: dict[str, Any],
    sites: Collection[str] | None,
) -> pd.DataFrame:
    site_filter: sql.Composable = sql.SQL("")
    if sites is not None:
        site_filter = sql.SQL("AND {} = ANY(%(sites)s)").format(
            sql.Identifier(source.alias, "site_id")
        )
        params = {**params, "sites": list(sites)}
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql.SQL(source.query).format(sites=site_filter), params).fetchall()
    # Named columns, so an empty result still has them; datetimes as UTC whatever the session.
    frame = pd.DataFrame(rows, columns=list(source.columns))
    for column in source.columns:
        if column.endswith("_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
