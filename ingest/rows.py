"""How a batch's messages become rows: telemetry by binary COPY, events, dead letters and
live status, each written in the caller's transaction (`ingest.writer` owns it).

Telemetry is COPYed straight into the hypertable inside a savepoint. A redelivered sample
collides with the unique index `(elevator_id, time, boot, seq)` and aborts that COPY; only then
is the same batch written again through a temporary table with `INSERT … ON CONFLICT DO
NOTHING`, so duplicates never become rows and the common case runs at full COPY speed
(docs/database.md). Events are inserted likewise, and each write returns only what became new
rows, so a redelivered message never reaches a detector twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from core.messages import Event, Rejected, Sample, Status

TELEMETRY_COLUMNS: Final = (
    "time", "received_at", "elevator_id", "boot", "seq", "floor", "pos_m", "speed_mps", "dir",
    "door", "door_zone", "door_lock", "safety_chain", "power", "load_kg", "occupied", "mode",
    "vib_mg", "motor_c", "brake_c", "level_mm", "extra",
)  # fmt: skip
TELEMETRY_TYPES: Final = (
    "timestamptz", "timestamptz", "text", "text", "int8", "int2", "float4", "float4", "text",
    "text", "bool", "bool", "bool", "text", "float4", "bool", "text",
    "float4", "float4", "float4", "float4", "jsonb",
)  # fmt: skip
_COLUMNS_SQL: Final = ", ".join(TELEMETRY_COLUMNS)
_COPY_TELEMETRY: Final = f"COPY telemetry ({_COLUMNS_SQL}) FROM STDIN (FORMAT BINARY)"
_COPY_STAGING: Final = f"COPY telemetry_staging ({_COLUMNS_SQL}) FROM STDIN (FORMAT BINARY)"
_STAGING_TABLE: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS telemetry_staging "
    "(LIKE telemetry INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_MERGE_STAGING: Final = (
    f"INSERT INTO telemetry ({_COLUMNS_SQL}) SELECT {_COLUMNS_SQL} FROM telemetry_staging "  # noqa: S608
    "ON CONFLICT DO NOTHING RETURNING elevator_id, boot, seq"
)
_INSERT_EVENTS: Final = """
INSERT INTO device_events (elevator_id, boot, seq, time, received_at, type, body)
SELECT * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::timestamptz[], %s::timestamptz[],
                     %s::text[], %s::jsonb[])
ON CONFLICT (elevator_id, boot, seq) DO NOTHING RETURNING elevator_id, boot, seq
"""
_INSERT_DEAD_LETTER: Final = (
    "INSERT INTO dead_letters "
    "(received_at, topic, payload, reason, detail, elevator_id, payload_size, payload_sha256) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# Live status never moves backwards: an older sample (a redelivery) does not overwrite it.
_UPSERT_SEEN: Final = """
INSERT INTO elevator_status (elevator_id, last_seen, floor, mode, boot, last_seq)
SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::int2[], %s::text[], %s::text[],
                     %s::int8[])
ON CONFLICT (elevator_id) DO UPDATE SET
    last_seen = excluded.last_seen, floor = excluded.floor, mode = excluded.mode,
    boot = excluded.boot, last_seq = excluded.last_seq
WHERE elevator_status.last_seen IS NULL OR elevator_status.last_seen <= excluded.last_seen
"""
_UPSERT_ONLINE: Final = """
INSERT INTO elevator_status (elevator_id, online, online_changed_at)
VALUES (%s, %s, %s)
ON CONFLICT (elevator_id) DO UPDATE SET
    online = excluded.online, online_changed_at = excluded.online_changed_at
WHERE elevator_status.online_changed_at IS NULL
   OR elevator_status.online_changed_at <= excluded.online_changed_at
"""


def _row(sample: Sample) -> tuple[Any, ...]:
    d = sample.data
    return (
        sample.time, sample.received_at, sample.elevator, d.boot, d.seq, d.floor, d.pos_m,
        d.speed_mps, d.dir, d.door, d.door_zone, d.door_lock, d.safety_chain, d.power,
        d.load_kg, d.occupied, d.mode, d.vib_mg, d.motor_c, d.brake_c, d.level_mm,
        Jsonb(sample.extra) if sample.extra is not None else None,
    )  # fmt: skip


def _text(value: str) -> str:
    """`value` as PostgreSQL text can hold it: no NUL and no lone surrogate (an error message
    may quote part of a payload)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")


def write_samples(conn: psycopg.Connection[Any], samples: Sequence[Sample]) -> Sequence[Sample]:
    """Store `samples`; returns those that became new rows (not redeliveries)."""
    if not samples:
        return ()
    try:
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, _COPY_TELEMETRY, samples)
        return samples
    except errors.UniqueViolation:
        pass
    with conn.cursor() as cur:
        cur.execute(_STAGING_TABLE)
        _copy(cur, _COPY_STAGING, samples)
        cur.execute(_MERGE_STAGING)
        inserted = set(cur.fetchall())
        cur.execute("TRUNCATE telemetry_staging")
    new: list[Sample] = []
    for sample in samples:
        key = (sample.elevator, sample.data.boot, sample.data.seq)
        if key in inserted:
            inserted.discard(key)  # a repeat inside the batch counts once
            new.append(sample)
    return new


def _copy(cur: psycopg.Cursor[Any], statement: str, samples: Sequence[Sample]) -> None:
    with cur.copy(statement) as copy:
        copy.set_types(list(TELEMETRY_TYPES))
        for sample in samples:
            copy.write_row(_row(sample))


def write_events(conn: psycopg.Connection[Any], events: Sequence[Event]) -> Sequence[Event]:
    """Store `events`; returns those that became new rows (not redeliveries)."""
    if not events:
        return ()
    with conn.cursor() as cur:
        cur.execute(
            _INSERT_EVENTS,
            (
                [e.elevator for e in events],
                [e.boot for e in events],
                [e.seq for e in events],
                [e.time for e in events],
                [e.received_at for e in events],
                [e.type for e in events],
                [Jsonb(e.body) for e in events],
            ),
        )
        inserted = set(cur.fetchall())
    new: list[Event] = []
    for event in events:
        key = (event.elevator, event.boot, event.seq)
        if key in inserted:
            inserted.discard(key)
            new.append(event)
    return new


def write_dead_letters(conn: psycopg.Connection[Any], rejected: Sequence[Rejected]) -> None:
    """Store refused messages as dead letters, topic and detail made storable as text."""
    if not rejected:
        return
    with conn.cursor() as cur:
        cur.executemany(
            _INSERT_DEAD_LETTER,
            [
                (
                    r.received_at,
                    _text(r.topic),
                    r.payload,
                    r.reason,
                    _text(r.detail),
                    r.elevator,
                    r.size,
                    r.sha256,
                )
                for r in rejected
            ],
        )


def write_status(
    conn: psycopg.Connection[Any], samples: Sequence[Sample], statuses: Sequence[Status]
) -> None:
    """Move each elevator's live status forward: last seen from `samples`, online from
    `statuses`."""
    # Samples arrive in order per elevator, so the last one seen is the latest.
    latest = {sample.elevator: sample for sample in samples}
    with conn.cursor() as cur:
        if latest:
            rows = list(latest.values())
            cur.execute(
                _UPSERT_SEEN,
                (
                    [s.elevator for s in rows],
                    [s.received_at for s in rows],
                    [s.data.floor for s in rows],
                    [s.data.mode for s in rows],
                    [s.data.boot for s in rows],
                    [s.data.seq for s in rows],
                ),
            )
        if statuses:
            cur.executemany(
                _UPSERT_ONLINE,
                [(s.elevator, s.online, s.received_at) for s in statuses],
            )
