"""The batch writer: one transaction per batch, telemetry by binary COPY, idempotent.

Samples, events, dead letters and live status of a batch are written in one transaction
(`ingest.rows` writes each kind; a redelivered message becomes no new row). When the database
refuses a value that passed validation, the writer finds the message, dead-letters it and
commits the rest; an unexpected error in a batch is contained to its message by writing the
batch again one message at a time.

When a detection engine is attached (`alerts.engine`), it runs inside the same transaction
over exactly the samples and events that became new rows, so alerts commit with the telemetry
that caused them and a redelivered message, being no new row, never reaches a detector twice.

Connection failures raise `DatabaseUnavailable`; the caller retries the same batch later and
acknowledges nothing meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol, TypeVar

import psycopg

from core.messages import Batch, Event, Rejected, Sample
from ingest.rows import write_dead_letters, write_events, write_samples, write_status
from ingest.validate import unprocessable

log = logging.getLogger(__name__)

_Message = TypeVar("_Message", Sample, Event)

PURGE_CHUNK: Final = 10_000
_PURGE_DEAD_LETTERS: Final = f"""
DELETE FROM dead_letters WHERE id IN (
    SELECT id FROM dead_letters WHERE received_at < now() - make_interval(secs => %s)
    LIMIT {PURGE_CHUNK}
)
"""  # noqa: S608 - a constant


class DatabaseUnavailable(Exception):  # noqa: N818 - reads as a state
    """The database cannot be reached or lost the connection; retry the batch later."""


class Detection(Protocol):
    """What the writer needs from the detection engine (`alerts.engine.DetectionEngine`)."""

    def prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Rebuild in-memory state if needed, before this transaction writes anything."""

    def process(self, conn: psycopg.Connection[Any], batch: Batch) -> Sequence[object]:
        """Detect over a batch's new rows and write alerts; returns the alert events written."""

    def tick(self, conn: psycopg.Connection[Any]) -> Sequence[object]:
        """Run the time-driven checks; returns the alert events written."""

    def invalidate(self) -> None:
        """A transaction did not commit; in-memory state must be rebuilt."""

    def take_failures(self) -> Sequence[tuple[Sample | Event, Exception]]:
        """Messages a detector raised on during the last `process`, each with its error."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one committed batch changed."""

    samples_inserted: int
    samples_duplicate: int
    events_inserted: int
    dead_letters: Sequence[Rejected]  # including values the database itself refused
    alert_events: int = 0


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
            new_samples = write_samples(conn, samples)
            new_events = write_events(conn, batch.events)
            write_dead_letters(conn, batch.rejected)
            write_status(conn, samples, batch.statuses)
            alert_events: Sequence[object] = ()
            dead_letters: Sequence[Rejected] = batch.rejected
            if detection is not None:
                detection.take_failures()  # anything left from a batch that did not commit
                new_rows = Batch(
                    list(new_samples), list(new_events), batch.statuses, batch.rejected
                )
                alert_events = detection.process(conn, new_rows)
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
                    write_dead_letters(conn, failed)
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
            self._try_each(conn, batch.samples, write_samples, kept.samples, kept.rejected)
            self._try_each(conn, batch.events, write_events, kept.events, kept.rejected)
        return kept

    @classmethod
    def _try_each(
        cls,
        conn: psycopg.Connection[Any],
        items: Sequence[_Message],
        write: Callable[[psycopg.Connection[Any], Sequence[_Message]], object],
        kept: list[_Message],
        refused: list[Rejected],
    ) -> None:
        """Write each item alone: `kept` gets those the database takes, `refused` the others."""
        for item in items:
            problem = cls._refusal(conn, partial(write, conn, [item]))
            if problem is None:
                kept.append(item)
            else:
                refused.append(_refused(item, problem))

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
