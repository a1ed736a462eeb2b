"""The batch writer: one transaction per batch, telemetry by binary COPY, idempotent.

Telemetry is COPYed straight into the hypertable inside a savepoint. A redelivered sample
collides with the unique index `(elevator_id, time, boot, seq)` and aborts that COPY; only then
is the same batch written again through a temporary table with `INSERT … ON CONFLICT DO
NOTHING`, so duplicates never become rows and the common case runs at full COPY speed
(docs/database.md). Events, dead letters and live status ride in the same transaction.

When a detection engine is attached (`alerts.engine`), it runs inside the same transaction
over exactly the samples and events that became new rows, so alerts commit with the telemetry
that caused them and a redelivered message, being no new row, never reaches a detector twice.

Connection failures raise `DatabaseUnavailable`; the caller retries the same batch later and
acknowledges nothing meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Protocol

import psycopg
from psycopg import errors
from psycopg.types.json import Jsonb

from core.messages import Event, Rejected, Sample, Status
from ingest.validate import unprocessable

log = logging.getLogger(__name__)

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
PURGE_CHUNK: Final = 10_000
_PURGE_DEAD_LETTERS: Final = f"""
DELETE FROM dead_letters WHERE id IN (
    SELECT id FROM dead_letters WHERE received_at < now() - make_interval(secs => %s)
    LIMIT {PURGE_CHUNK}
)
"""  # noqa: S608 - a constant
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


class DatabaseUnavailable(Exception):  # noqa: N818 - reads as a state
    """The database cannot be reached or lost the connection; retry the batch later."""


class Detection(Protocol):
    """What the writer needs from the detection engine (`alerts.engine.DetectionEngine`)."""

    def prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Rebuild in-memory state if needed, before this transaction writes anything."""

    def process(
        self,
        conn: psycopg.Connection[Any],
        samples: Sequence[Sample],
        events: Sequence[Event],
        statuses: Sequence[Status],
        rejected: Sequence[Rejected],
    ) -> Sequence[object]:
        """Detect over new rows and write alerts; returns the alert events written."""

    def tick(self, conn: psycopg.Connection[Any]) -> Sequence[object]:
        """Run the time-driven checks; returns the alert events written."""

    def invalidate(self) -> None:
        """A transaction did not commit; in-memory state must be rebuilt."""

    def take_failures(self) -> Sequence[tuple[Sample | Event, Exception]]:
        """Messages a detector raised on during the last `process`, each with its error."""


@dataclass(slots=True)
class Batch:
    """Validated messages to commit together."""

    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch changed."""

    samples_inserted: int
    samples_duplicate: int
    events_inserted: int
    dead_letters: Sequence[Rejected]  # including values the database itself refused
    alert_events: int = 0


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


def _lost(conn: psycopg.Connection[Any]) -> bool:
    """True when the connection is gone (so an error means the database, not the data)."""
    return bool(conn.closed or conn.broken)


def _size(batch: Batch) -> int:
    return len(batch.samples) + len(batch.events) + len(batch.statuses) + len(batch.rejected)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _refused(item: Sample | Event, problem: str) -> Rejected:
    return Rejected(
        item.topic, item.payload, "rejected_by_database", problem, item.elevator, item.received_at
    )


class BatchWriter:
    """Writes batches over one psycopg connection, reconnecting when it is lost."""

    def __init__(
        self, conninfo: str, *, connect_timeout_s: int = 5, detection: Detection | None = None
    ) -> None:
        self._conninfo = conninfo
        self._connect_timeout_s = connect_timeout_s
        self._detection = detection
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self._conninfo, connect_timeout=self._connect_timeout_s
                )
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(str(exc).strip().splitlines()[0]) from exc
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, batch: Batch) -> WriteResult:
        """Commit `batch` in one transaction; raises `DatabaseUnavailable` to be retried."""
        try:
            return self._write_or_isolate(batch)
        except BaseException:
            # Detectors may have seen part of a batch that did not commit.
            if self._detection is not None:
                self._detection.invalidate()
            raise

    def tick(self) -> int:
        """Run the detection engine's time-driven checks in their own transaction."""
        if self._detection is None:
            return 0
        conn = self._connection()
        try:
            with conn.transaction():
                return len(self._detection.tick(conn))
        except psycopg.Error as exc:
            self._detection.invalidate()
            if (
                conn.closed
                or conn.broken
                or isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
            ):
                self.close()
                raise DatabaseUnavailable(_first_line(exc)) from exc
            raise

    def purge_dead_letters(self, older_than_s: float) -> int:
        """Delete at most one chunk (10,000) of dead letters older than `older_than_s`, in one
        short transaction; returns how many. The caller comes back for the next chunk between
        batches, so a large backlog never holds up ingestion."""
        conn = self._connection()
        try:
            with conn.transaction():
                return conn.execute(_PURGE_DEAD_LETTERS, (older_than_s,)).rowcount
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self.close()
            raise DatabaseUnavailable(_first_line(exc)) from exc

    def _write_or_isolate(self, batch: Batch) -> WriteResult:
        conn = self._connection()
        try:
            return self._write(conn, batch)
        except Exception as exc:
            self._raise_if_unavailable(conn, exc)
            if self._detection is not None:
                self._detection.invalidate()
            if not isinstance(exc, psycopg.Error):
                # Not the database's refusal but an error in our own handling of some message
                # (a bug a hostile payload found): contain it to that message.
                log.exception(
                    "a batch of %d messages failed; writing them one by one", _size(batch)
                )
                return self._write_each(conn, batch)
        # The database refused a value that passed validation: find it, dead-letter it, and
        # commit the rest, so one bad row never blocks the stream.
        try:
            return self._write(conn, self._isolate_refused(conn, batch))
        except Exception as exc:
            self._raise_if_unavailable(conn, exc)
            log.exception("an isolated batch still failed; writing it one by one")
            if self._detection is not None:
                self._detection.invalidate()
            return self._write_each(conn, batch)

    def _raise_if_unavailable(self, conn: psycopg.Connection[Any], exc: Exception) -> None:
        """Raise `DatabaseUnavailable` when `exc` means the database, not the data, failed."""
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) or _lost(conn):
            self.close()
            raise DatabaseUnavailable(_first_line(exc)) from exc

    def _write_each(self, conn: psycopg.Connection[Any], batch: Batch) -> WriteResult:
        """The slow path after an unexpected error: each message in its own transaction.

        A message whose storage or detection still raises is dead-lettered as `unprocessable`
        with the error named; every other message is committed as usual, in order.
        """
        rejected = list(batch.rejected)
        recorded: list[Rejected] = []
        samples_inserted = samples_duplicate = events_inserted = alert_events = 0
        singles = [Batch(samples=[s]) for s in batch.samples]
        singles += [Batch(events=[e]) for e in batch.events]
        for single in singles:
            item: Sample | Event = single.samples[0] if single.samples else single.events[0]
            try:
                result = self._write(conn, single)
            except Exception as exc:
                self._raise_if_unavailable(conn, exc)
                if self._detection is not None:
                    self._detection.invalidate()
                log.warning(
                    "message on %s dead-lettered: %s: %s", item.topic, type(exc).__name__, exc
                )
                rejected.append(
                    unprocessable(item.topic, item.payload, item.received_at, exc, item.elevator)
                )
                continue
            samples_inserted += result.samples_inserted
            samples_duplicate += result.samples_duplicate
            events_inserted += result.events_inserted
            alert_events += result.alert_events
            recorded += result.dead_letters  # `detection_failed`, already stored beside it
        rest = Batch(statuses=batch.statuses, rejected=rejected)
        try:
            alert_events += self._write(conn, rest).alert_events
        except Exception as exc:
            self._raise_if_unavailable(conn, exc)
            log.exception("detection over statuses and dead letters failed; stored without it")
            if self._detection is not None:
                self._detection.invalidate()
            self._write_rest_one_by_one(conn, rest)
        return WriteResult(
            samples_inserted=samples_inserted,
            samples_duplicate=samples_duplicate,
            events_inserted=events_inserted,
            dead_letters=[*rejected, *recorded],
            alert_events=alert_events,
        )

    def _write_rest_one_by_one(self, conn: psycopg.Connection[Any], rest: Batch) -> None:
        """Statuses and dead letters without detection, each alone; one that still fails is
        logged and left out (a dead letter cannot itself be dead-lettered), so the batch is
        acknowledged and the collector goes on."""
        singles = [Batch(statuses=[s]) for s in rest.statuses]
        singles += [Batch(rejected=[r]) for r in rest.rejected]
        for single in singles:
            try:
                self._write(conn, single, detect=False)
            except Exception as exc:
                self._raise_if_unavailable(conn, exc)
                log.exception("could not store %s; left out", single)

    def _write(
        self, conn: psycopg.Connection[Any], batch: Batch, *, detect: bool = True
    ) -> WriteResult:
        detection = self._detection if detect else None
        with conn.transaction():
            if detection is not None:
                # A rebuild must read the database as it was before this batch.
                detection.prepare(conn)
            # A repeat inside the batch fails the COPY like any redelivery and is absorbed by
            # the fallback's ON CONFLICT DO NOTHING.
            samples = batch.samples
            new_samples = self._write_samples(conn, samples)
            new_events = self._write_events(conn, batch.events)
            self._write_dead_letters(conn, batch.rejected)
            self._write_status(conn, samples, batch.statuses)
            alert_events: Sequence[object] = ()
            dead_letters: Sequence[Rejected] = batch.rejected
            if detection is not None:
                detection.take_failures()  # anything left from a batch that did not commit
                alert_events = detection.process(
                    conn, new_samples, new_events, batch.statuses, batch.rejected
                )
                # A message a detector raised on is stored, and recorded beside it, so the
                # failure is counted and visible, never silent.
                failed = [
                    unprocessable(
                        item.topic, item.payload, item.received_at, exc, item.elevator,
                        reason="detection_failed",
                    )
                    for item, exc in detection.take_failures()
                ]  # fmt: skip
                if failed:
                    self._write_dead_letters(conn, failed)
                    dead_letters = [*batch.rejected, *failed]
        return WriteResult(
            samples_inserted=len(new_samples),
            samples_duplicate=len(batch.samples) - len(new_samples),
            events_inserted=len(new_events),
            dead_letters=dead_letters,
            alert_events=len(alert_events),
        )

    def _isolate_refused(self, conn: psycopg.Connection[Any], batch: Batch) -> Batch:
        """Try each sample and event alone (rolled back); move refused ones to dead letters."""
        kept = Batch(statuses=batch.statuses, rejected=list(batch.rejected))
        with conn.transaction(force_rollback=True):
            for sample in batch.samples:
                problem = self._refusal(conn, partial(self._write_samples, conn, [sample]))
                if problem is None:
                    kept.samples.append(sample)
                else:
                    kept.rejected.append(_refused(sample, problem))
            for event in batch.events:
                problem = self._refusal(conn, partial(self._write_events, conn, [event]))
                if problem is None:
                    kept.events.append(event)
                else:
                    kept.rejected.append(_refused(event, problem))
        return kept

    @staticmethod
    def _refusal(conn: psycopg.Connection[Any], attempt: Callable[[], object]) -> str | None:
        try:
            with conn.transaction():
                attempt()
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            return _first_line(exc)
        return None

    def _write_samples(
        self, conn: psycopg.Connection[Any], samples: Sequence[Sample]
    ) -> Sequence[Sample]:
        """Store `samples`; returns those that became new rows (not redeliveries)."""
        if not samples:
            return ()
        try:
            with conn.transaction(), conn.cursor() as cur:
                self._copy(cur, _COPY_TELEMETRY, samples)
            return samples
        except errors.UniqueViolation:
            pass
        with conn.cursor() as cur:
            cur.execute(_STAGING_TABLE)
            self._copy(cur, _COPY_STAGING, samples)
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

    @staticmethod
    def _copy(cur: psycopg.Cursor[Any], statement: str, samples: Sequence[Sample]) -> None:
        with cur.copy(statement) as copy:
            copy.set_types(list(TELEMETRY_TYPES))
            for sample in samples:
                copy.write_row(_row(sample))

    @staticmethod
    def _write_events(conn: psycopg.Connection[Any], events: Sequence[Event]) -> Sequence[Event]:
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

    @staticmethod
    def _write_dead_letters(conn: psycopg.Connection[Any], rejected: Sequence[Rejected]) -> None:
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

    @staticmethod
    def _write_status(
        conn: psycopg.Connection[Any], samples: Sequence[Sample], statuses: Sequence[Status]
    ) -> None:
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
