"""Reading maintenance records as people see them: each with its elevator's site, the
username of who performed it and the ledger seq that anchors it; pages of them by filter.

Reads only, in the caller's transaction; filing a record is `maintenance.records`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from core.pages import Keyset, KeysetPage, fetch_page
from maintenance.records import MaintenanceRecordError

_SELECT: Final = """
SELECT m.id, m.elevator_id, e.site_id, m.kind, m.performed_at, u.username AS performed_by,
       m.summary, m.details, m.signed, m.signer_address, m.corrects_id, m.created_at,
       l.seq AS ledger_seq
FROM maintenance_records m
JOIN elevators e ON e.id = m.elevator_id
JOIN users u ON u.id = m.performed_by
LEFT JOIN ledger_entries l ON l.source_table = 'maintenance_records' AND l.source_id = m.id
"""
NEWEST_FIRST: Final = Keyset("m.id", "bigint", descending=True)


def get_record(conn: psycopg.Connection[Any], record_id: int) -> dict[str, Any] | None:
    """One record as people see it; None when it does not exist."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_SELECT + " WHERE m.id = %s", (record_id,)).fetchone()


def check_correction(conn: psycopg.Connection[Any], corrects_id: int, elevator_id: str) -> None:
    """Refuse (`bad_correction`) a correction of a record that does not exist or is a record
    of another elevator."""
    corrected = conn.execute(
        "SELECT elevator_id FROM maintenance_records WHERE id = %s", (corrects_id,)
    ).fetchone()
    if corrected is None or corrected[0] != elevator_id:
        raise MaintenanceRecordError(
            f"record {corrects_id} is not a record of {elevator_id}", code="bad_correction"
        )


def list_records(
    conn: psycopg.Connection[Any],
    *,
    sites: Collection[str] | None,
    elevator: str | None = None,
    site: str | None = None,
    kind: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> KeysetPage[dict[str, Any]]:
    """Records newest first, below id `before_id`, limited to `sites` (None: all) and the
    filters given."""
    equal = (("m.elevator_id", elevator), ("e.site_id", site), ("m.kind", kind))
    return fetch_page(conn, _SELECT, NEWEST_FIRST, after=before_id, limit=limit, equal=equal,
                      any_of=[("e.site_id", sites)])  # fmt: skip
