"""Ledger entries: what gets appended to the global Merkle log, and how.

An entry is the RFC 8785 canonical JSON of a record (an alert event, a maintenance record)
with a random salt, so a short record cannot be guessed from its hash (SPEC §5).
`content_hash = keccak256(canonical)`; the log's leaf is the RFC 9162 §2.1.1 leaf hash of the
content hash, `SHA-256(0x00 || content_hash)` (`ledger.merkle.hash_leaf`). Every time in the
content is written by `entry_time`.

Each entry also carries `prev`, the leaf hash of the entry before it (empty for seq 0). The
Merkle roots on chain prove that nothing anchored changed; the `prev` links let an audit
name *which* seq was changed, removed, moved or inserted.

Appending is serialised by a transaction-level advisory lock, so `seq` is dense (no gaps from
rolled-back transactions) and entries become visible in `seq` order: a reader that has seen
seq N has seen everything before it, which the notifier and the anchorer rely on. The
database holds every writer to the same rule: a trigger (migration 0007) takes the same lock
and refuses an INSERT whose seq is not the next one, whose `prev` is not the previous leaf
hash, or whose leaf hash is not derived from its content hash.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import psycopg
from Crypto.Hash import keccak as _keccak

from ledger.canonical import canonical_json
from ledger.merkle import hash_leaf

ENTRY_VERSION: Final = 1
SALT_BYTES: Final = 16
# pg_advisory_xact_lock key of the ledger's single appender ("LEDGER" in ASCII).
LEDGER_LOCK_KEY: Final = 0x4C4544474552


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """A record to append: its kind, where it lives and its content (without salt)."""

    kind: str
    source_table: str
    source_id: int
    elevator_id: str | None
    content: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AppendedEntry:
    """An entry as stored."""

    seq: int
    kind: str
    canonical: bytes
    content_hash: bytes
    leaf_hash: bytes


def entry_bytes(kind: str, content: Mapping[str, Any], salt: str, *, prev: bytes) -> bytes:
    """The canonical bytes of an entry; `prev` is the leaf hash of the entry before it."""
    envelope = {"v": ENTRY_VERSION, "kind": kind, "salt": salt, "prev": prev.hex()}
    clashing = sorted(set(envelope) & set(content))
    if clashing:
        raise ValueError(f"entry content may not set {', '.join(clashing)}")
    return canonical_json({**envelope, **content})


def content_hash(canonical: bytes) -> bytes:
    """keccak256 of the canonical bytes (SPEC §5)."""
    return bytes(_keccak.new(data=canonical, digest_bits=256).digest())


def entry_time(moment: dt.datetime) -> str:
    """A moment as every time in entry content is written: UTC, ISO 8601, to the millisecond
    (truncated), with "Z": `2025-03-01T08:15:00.250Z`."""
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# `entry_time` in SQL (PostgreSQL `to_char` of a timestamptz at time zone UTC).
ENTRY_TIME_SQL_FORMAT: Final = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


def append_entries(
    conn: psycopg.Connection[Any], pending: Sequence[PendingEntry]
) -> list[AppendedEntry]:
    """Append `pending` in order inside the caller's transaction; returns them with seq."""
    if not pending:
        return []
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LEDGER_LOCK_KEY,))
        last = cur.execute(
            "SELECT seq, leaf_hash FROM ledger_entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        next_seq = int(last[0]) + 1 if last else 0
        previous = bytes(last[1]) if last else b""
        appended: list[AppendedEntry] = []
        rows = []
        for offset, item in enumerate(pending):
            salt = secrets.token_hex(SALT_BYTES)
            canonical = entry_bytes(item.kind, item.content, salt, prev=previous)
            digest = content_hash(canonical)
            entry = AppendedEntry(
                next_seq + offset, item.kind, canonical, digest, hash_leaf(digest)
            )
            previous = entry.leaf_hash
            appended.append(entry)
            rows.append(
                (entry.seq, item.kind, item.source_table, item.source_id, item.elevator_id,
                 canonical, digest, entry.leaf_hash)
            )  # fmt: skip
        cur.executemany(
            "INSERT INTO ledger_entries (seq, kind, source_table, source_id, elevator_id, "
            "canonical, content_hash, leaf_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    return appended
