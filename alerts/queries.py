"""Reading alerts as people see them: the alert row with the names of who took each workflow
step, its history with the ledger seq of each step, and pages of alerts by filter.

Reads only, in the caller's transaction; the writes (detection, workflow steps) are
`alerts.store`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from core.pages import Keyset, KeysetPage, fetch_page

_ALERT_SELECT: Final = """
SELECT a.id, a.elevator_id, a.site_id, a.type, a.severity, a.condition, a.status,
       a.opened_at, a.last_active_at, a.cleared_at, a.occurrences,
       a.acknowledged_at, ua.username AS acknowledged_by, a.on_site_at,
       uo.username AS on_site_by, a.closed_at, uc.username AS closed_by,
       a.ack_due_at, a.on_site_due_at, a.ack_escalated_at, a.on_site_escalated_at, a.details
FROM alerts a
LEFT JOIN users ua ON ua.id = a.acknowledged_by
LEFT JOIN users uo ON uo.id = a.on_site_by
LEFT JOIN users uc ON uc.id = a.closed_by
"""
_EVENTS: Final = (
    "SELECT ae.id, ae.kind, ae.time, u.username AS actor, ae.details, e.seq AS ledger_seq "
    "FROM alert_events ae LEFT JOIN users u ON u.id = ae.actor_user_id "
    "LEFT JOIN ledger_entries e ON e.source_table = 'alert_events' "
    "AND e.source_id = ae.id WHERE ae.alert_id = %s ORDER BY ae.id"
)
NEWEST_FIRST: Final = Keyset("a.id", "bigint", descending=True)


def get_alert(conn: psycopg.Connection[Any], alert_id: int) -> dict[str, Any] | None:
    """One alert with the usernames of its workflow steps; None when it does not exist."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_ALERT_SELECT + " WHERE a.id = %s", (alert_id,)).fetchone()


def alert_history(conn: psycopg.Connection[Any], alert_id: int) -> list[dict[str, Any]]:
    """Every event of an alert in order, with its actor's username and its ledger seq."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_EVENTS, (alert_id,)).fetchall()


def list_alerts(
    conn: psycopg.Connection[Any],
    *,
    sites: Collection[str] | None,
    status: str | None = None,
    type: str | None = None,
    severity: str | None = None,
    site: str | None = None,
    elevator: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> KeysetPage[dict[str, Any]]:
    """Alerts newest first, below id `before_id`, limited to `sites` (None: all) and the
    filters given."""
    equal = (("a.status", status), ("a.type", type), ("a.severity", severity),
             ("a.site_id", site), ("a.elevator_id", elevator))  # fmt: skip
    return fetch_page(conn, _ALERT_SELECT, NEWEST_FIRST, after=before_id, limit=limit,
                      equal=equal, any_of=[("a.site_id", sites)])  # fmt: skip
