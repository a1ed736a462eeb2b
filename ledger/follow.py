"""Following the ledger: the newest seq, and waiting for entries as they are committed.

Each committed entry sends a notification on `LEDGER_CHANNEL` (migration 0002's trigger);
a follower `LISTEN`s on an autocommit connection and wakes when one arrives.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

LEDGER_CHANNEL: Final = "liftledger_ledger"


def latest_seq(conn: psycopg.Connection[Any]) -> int:
    """The newest ledger seq, or -1 for an empty ledger."""
    row = conn.execute("SELECT coalesce(max(seq), -1) FROM ledger_entries").fetchone()
    return int(row[0]) if row else -1


def listen(conn: psycopg.Connection[Any]) -> None:
    """Subscribe an autocommit connection to new-entry notifications."""
    conn.execute(f"LISTEN {LEDGER_CHANNEL}")


def wait_for_entries(conn: psycopg.Connection[Any], timeout_s: float) -> bool:
    """Block until a new ledger entry is committed or `timeout_s` passes; True if one was."""
    woke = False
    for _ in conn.notifies(timeout=timeout_s, stop_after=1):
        woke = True
    if woke:  # drain notifications that arrived together
        for _ in conn.notifies(timeout=0):
            pass
    return woke
