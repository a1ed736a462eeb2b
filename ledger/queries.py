"""Reading stored entries as people see them: one entry with its hashes, and an elevator's
entries page by page in ledger order. Reads only, in the caller's transaction.

A stored time Python cannot hold (infinity, year 10000) is read as NULL, not an error.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from core.pages import Keyset, KeysetPage, fetch_page

_CREATED_AT: Final = (
    "CASE WHEN created_at BETWEEN '0001-01-02' AND '9999-12-30' THEN created_at END AS created_at"
)
_ENTRY: Final = (
    "SELECT seq, kind, elevator_id, source_table, source_id, canonical, content_hash, "  # noqa: S608 - constant columns
    f"leaf_hash, {_CREATED_AT} FROM ledger_entries WHERE seq = %s"
)
_TRAIL: Final = f"SELECT seq, kind, canonical, {_CREATED_AT} FROM ledger_entries"  # noqa: S608 - constant columns
IN_LEDGER_ORDER: Final = Keyset("seq", "bigint")


def stored_entry(conn: psycopg.Connection[Any], seq: int) -> dict[str, Any] | None:
    """Entry `seq` as stored (canonical bytes, hashes, its source), or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_ENTRY, (seq,)).fetchone()


def elevator_entries(
    conn: psycopg.Connection[Any], elevator_id: str, *, after_seq: int | None, limit: int
) -> KeysetPage[dict[str, Any]]:
    """One page of the entries of `elevator_id` after `after_seq` (None: from the first), in
    ledger order: seq, kind, canonical bytes, created_at."""
    return fetch_page(
        conn, _TRAIL, IN_LEDGER_ORDER, after=after_seq, limit=limit,
        equal=[("elevator_id", elevator_id)],
    )  # fmt: skip
