"""Detection inside the collector's batch transaction.

The batch writer inserts a batch, then hands the engine exactly the samples and events that
became new rows (a redelivered message is a conflict, not a row, so it never reaches a
detector twice). The engine feeds them, per elevator and in device order, to that elevator's
`ElevatorDetector` and applies the resulting signals with `alerts.store` on the same
connection, so telemetry, alerts, alert events and ledger entries commit together.

Detector state lives in memory and is rebuilt, never trusted, after anything that may have
left it ahead of the database: at start, and after a transaction that did not commit. A
rebuild replays each elevator's last `REPLAY_WINDOW_S` of stored telemetry and events
without emitting, then adopts the alerts the database holds as active; so a restart neither
loses an active condition nor raises it twice (docs/alerts.md).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from alerts.detector import STREAM_TYPES, AlertSignal, ElevatorDetector
from alerts.rules import ElevatorLimits, Finding, Reading
from alerts.store import AlertEventRecord, apply_signal, record_in_ledger
from core.alerting import AlertCondition
from core.faults import DEFAULT_THRESHOLDS, Severity, resolve_thresholds
from core.messages import Batch, Event, Sample
from core.protocol import TelemetrySample
from core.stored_json import decode_object

log = logging.getLogger(__name__)

REPLAY_WINDOW_S: Final = 300.0
# Device clocks may run behind; the replay query reaches back this far to find the window.
REPLAY_LOOKBACK_S: Final = 1800.0

_LIMITS_QUERY: Final = """
SELECT e.id, e.site_id, e.lowest_floor, e.highest_floor, e.floor_height_m, e.rated_speed_mps,
       e.thresholds AS elevator_thresholds, s.thresholds AS site_thresholds
FROM elevators e JOIN sites s ON s.id = e.site_id
WHERE e.active
"""
# Each elevator's newest samples, walking the (elevator_id, time DESC) index: a bounded
# read however much telemetry the lookback window holds.
_REPLAY_SAMPLES: Final = """
SELECT t.* FROM unnest(%s::text[]) AS e(id) CROSS JOIN LATERAL (
    SELECT elevator_id, time, received_at, boot, seq, floor, pos_m, speed_mps, door, door_zone,
           door_lock, safety_chain, power, occupied, mode, vib_mg, motor_c, brake_c, level_mm
    FROM telemetry WHERE elevator_id = e.id AND time > %s ORDER BY time DESC LIMIT %s
) AS t
"""
_REPLAY_EVENTS: Final = """
SELECT t.* FROM unnest(%s::text[]) AS e(id) CROSS JOIN LATERAL (
    SELECT elevator_id, time, received_at, boot, seq, type, body::text AS body FROM device_events
    WHERE elevator_id = e.id AND time > %s ORDER BY time DESC, boot, seq LIMIT %s
) AS t
"""
# At 1 Hz this covers the replay window; idle elevators need far fewer.
REPLAY_MAX_SAMPLES: Final = 360
REPLAY_MAX_EVENTS: Final = 100
_ACTIVE_ALERTS: Final = """
SELECT DISTINCT ON (elevator_id, type) elevator_id, type, severity, condition,
       details ->> 'cause' AS cause
FROM alerts WHERE elevator_id = ANY(%s) ORDER BY elevator_id, type, opened_at DESC
"""
_LAST_SEEN: Final = "SELECT elevator_id, last_seen FROM elevator_status WHERE elevator_id = ANY(%s)"


def reading_of(data: TelemetrySample, time_: dt.datetime, received_at: dt.datetime) -> Reading:
    """The rules' view of a validated sample."""
    return Reading(
        t_s=time_.timestamp(),
        floor=data.floor,
        pos_m=data.pos_m,
        speed_mps=data.speed_mps,
        door=data.door,
        door_zone=data.door_zone,
        door_lock=data.door_lock,
        safety_chain=data.safety_chain,
        power=data.power,
        occupied=data.occupied,
        mode=data.mode,
        vib_mg=data.vib_mg,
        motor_c=data.motor_c,
        brake_c=data.brake_c,
        level_mm=data.level_mm,
        skew_s=(time_ - received_at).total_seconds(),
    )


def _reading_of_row(row: Mapping[str, Any]) -> Reading:
    return Reading(
        t_s=row["time"].timestamp(),
        floor=row["floor"],
        pos_m=row["pos_m"],
        speed_mps=row["speed_mps"],
        door=row["door"],
        door_zone=row["door_zone"],
        door_lock=row["door_lock"],
        safety_chain=row["safety_chain"],
        power=row["power"],
        occupied=row["occupied"],
        mode=row["mode"],
        vib_mg=row["vib_mg"],
        motor_c=row["motor_c"],
        brake_c=row["brake_c"],
        level_mm=row["level_mm"],
        skew_s=(row["time"] - row["received_at"]).total_seconds(),
    )


def limits_of(row: Mapping[str, Any]) -> ElevatorLimits:
    """An elevator's limits from its registry row and its site's thresholds."""
    return ElevatorLimits(
        lowest_floor=row["lowest_floor"],
        highest_floor=row["highest_floor"],
        floor_height_m=row["floor_height_m"],
        rated_speed_mps=row["rated_speed_mps"],
        thresholds=resolve_thresholds(row["site_thresholds"], row["elevator_thresholds"]),
    )


class DetectionEngine:
    """The detectors of one collector's elevators, run inside its write transactions."""

    def __init__(
        self,
        *,
        owns_site: Callable[[str], bool] = lambda site: True,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        limits_refresh_s: float = 30.0,
    ) -> None:
        self._owns_site = owns_site
        self._clock = clock
        self._limits_refresh_s = limits_refresh_s
        self._limits_loaded = -float("inf")
        self.detectors: dict[str, ElevatorDetector] = {}
        self.ready = False
        self.silence_quiet_until = dt.datetime.min.replace(tzinfo=dt.UTC)
        # Stored messages a detector raised on, since `take_failures` was last called.
        self.failures: list[tuple[Sample | Event, Exception]] = []

    # -- state ----------------------------------------------------------------------------------

    def prepare(self, conn: psycopg.Connection[Any]) -> None:
        """Called at the start of each write transaction: rebuild first if needed."""
        if not self.ready:
            self.rebuild(conn)

    def invalidate(self) -> None:
        """The last transaction did not commit: rebuild before detecting again."""
        self.ready = False

    def take_failures(self) -> list[tuple[Sample | Event, Exception]]:
        """The messages a detector raised on since the last call (they are stored; the
        writer records each as a `detection_failed` dead letter beside it)."""
        failures, self.failures = self.failures, []
        return failures

    def defer_silence(self, seconds: float) -> None:
        """Judge no elevator silent for `seconds` (after a reconnect or an outage)."""
        until = self._clock() + dt.timedelta(seconds=seconds)
        self.silence_quiet_until = max(self.silence_quiet_until, until)

    def rebuild(self, conn: psycopg.Connection[Any]) -> None:
        """Recreate every detector from the database (replay, then adopt active alerts)."""
        started = time.monotonic()
        self.detectors = {}
        self._load_limits(conn)
        elevators = list(self.detectors)
        since = self._clock() - dt.timedelta(seconds=REPLAY_LOOKBACK_S)
        with conn.cursor(row_factory=dict_row) as cur:
            samples = cur.execute(
                _REPLAY_SAMPLES, (elevators, since, REPLAY_MAX_SAMPLES)
            ).fetchall()
            events = cur.execute(_REPLAY_EVENTS, (elevators, since, REPLAY_MAX_EVENTS)).fetchall()
            active = cur.execute(_ACTIVE_ALERTS, (elevators,)).fetchall()
            last_seen: dict[str, dt.datetime | None] = {}
            for row in cur.execute(_LAST_SEEN, (elevators,)).fetchall():
                last_seen[row["elevator_id"]] = row["last_seen"]
        self._replay(samples, events)
        raised: dict[str, dict[str, Severity]] = defaultdict(dict)
        for row in active:
            if row["condition"] == AlertCondition.ACTIVE and row["type"] in STREAM_TYPES:
                raised[row["elevator_id"]][row["type"]] = Severity(row["severity"])
                if row["type"] == "offline":
                    detector = self.detectors.get(row["elevator_id"])
                    if detector is not None:
                        detector.online = False
                        cause = {"cause": row["cause"] or "last_will"}
                        detector.holding["offline"] = Finding("offline", Severity.MAJOR, cause)
        for elevator, detector in self.detectors.items():
            seen = last_seen.get(elevator)
            if seen is not None and (
                detector.last_received is None or seen > detector.last_received
            ):
                detector.last_received = seen
            detector.adopt_raised(raised.get(elevator, {}))
        self.ready = True
        window = max((d.limits["offline_intervals"] * d.limits["idle_interval_s"]
                      for d in self.detectors.values()), default=30.0)  # fmt: skip
        self.defer_silence(window)
        log.info(
            "detectors rebuilt for %d elevators from %d samples and %d events in %.2f s",
            len(self.detectors), len(samples), len(events), time.monotonic() - started,
        )  # fmt: skip

    def _replay(
        self, samples: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
    ) -> None:
        latest: dict[str, float] = {}
        for row in samples:
            t_s = row["time"].timestamp()
            latest[row["elevator_id"]] = max(t_s, latest.get(row["elevator_id"], t_s))
        merged: list[tuple[float, int, Mapping[str, Any]]] = [
            (row["time"].timestamp(), 0, row) for row in samples
        ] + [(row["time"].timestamp(), 1, row) for row in events]
        merged.sort(
            key=lambda item: (item[2]["elevator_id"], item[0], item[2]["boot"], item[2]["seq"])
        )
        for t_s, kind, row in merged:
            detector = self.detectors.get(row["elevator_id"])
            end = latest.get(row["elevator_id"], t_s)
            if detector is None or t_s < end - REPLAY_WINDOW_S:
                continue
            try:
                if kind == 0:
                    detector.on_sample(_reading_of_row(row), row["received_at"])
                else:
                    # Decoded here, per row and bounded: a stored body is not trusted.
                    body = decode_object(row["body"])
                    detector.on_event(row["type"], body, t_s, row["received_at"])
            except Exception:  # a stored row a detector cannot take must not stop the rebuild
                log.exception("replay skipped a stored message of %s", row["elevator_id"])

    def _load_limits(self, conn: psycopg.Connection[Any]) -> None:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(_LIMITS_QUERY).fetchall()
        for row in rows:
            if not self._owns_site(row["site_id"]):
                continue
            limits = limits_of(row)
            detector = self.detectors.get(row["id"])
            if detector is None:
                self.detectors[row["id"]] = ElevatorDetector(
                    elevator=row["id"], site=row["site_id"], limits=limits
                )
            else:
                detector.limits = limits
        self._limits_loaded = time.monotonic()

    def _detector(self, conn: psycopg.Connection[Any], elevator: str) -> ElevatorDetector | None:
        detector = self.detectors.get(elevator)
        if detector is None:
            # Registered after the last load: the batch writer only passes known elevators.
            self._load_limits(conn)
            detector = self.detectors.get(elevator)
        return detector

    # -- the hot path ---------------------------------------------------------------------------

    def process(  # noqa: PLR0912 - one branch per message kind, kept in one place
        self, conn: psycopg.Connection[Any], batch: Batch
    ) -> list[AlertEventRecord]:
        """Detect over a batch's new rows and apply the alerts, in the caller's transaction."""
        if not self.ready:
            self.rebuild(conn)
        elif time.monotonic() - self._limits_loaded >= self._limits_refresh_s:
            self._load_limits(conn)
        signals: list[AlertSignal] = []
        for elevator, items in _by_elevator(batch.samples, batch.events):
            detector = self._detector(conn, elevator)
            if detector is None:
                continue
            for item in items:
                try:
                    if isinstance(item, Sample):
                        reading = reading_of(item.data, item.time, item.received_at)
                        signals += detector.on_sample(reading, item.received_at)
                    else:
                        signals += detector.on_event(
                            item.type, item.body, item.time.timestamp(), item.received_at
                        )
                except Exception as exc:  # one odd message must not stop detection for all
                    log.exception("detection failed on a message of %s; skipped", elevator)
                    self.failures.append((item, exc))
        for status in batch.statuses:
            detector = self._detector(conn, status.elevator)
            if detector is not None:
                signals += detector.on_status(status.online, status.received_at)
        for refused in batch.rejected:
            if refused.reason == "future_timestamp" and refused.elevator is not None:
                detector = self._detector(conn, refused.elevator)
                if detector is not None:
                    signals += detector.on_future_timestamp(refused.received_at)
        return self._apply(conn, signals)

    def tick(self, conn: psycopg.Connection[Any]) -> list[AlertEventRecord]:
        """Raise `offline` for elevators that went silent; runs without new telemetry."""
        if not self.ready:
            self.rebuild(conn)
        now = self._clock()
        signals: list[AlertSignal] = []
        for detector in self.detectors.values():
            signals += detector.on_silence(now, self.silence_quiet_until)
        return self._apply(conn, signals)

    def _apply(
        self, conn: psycopg.Connection[Any], signals: Iterable[AlertSignal]
    ) -> list[AlertEventRecord]:
        events: list[AlertEventRecord] = []
        for signal in signals:
            thresholds = self.detectors[signal.elevator].limits.thresholds
            try:
                with conn.transaction():  # a savepoint: a failed signal leaves nothing behind
                    event = apply_signal(conn, signal, thresholds)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                raise
            except Exception:
                # A stored threshold this code cannot use (say a deadline past year 9999) must
                # not swallow the alarm: raise it with the default thresholds instead.
                log.exception(
                    "alert %s of %s failed with its thresholds; applied with the defaults",
                    signal.type,
                    signal.elevator,
                )
                with conn.transaction():
                    event = apply_signal(conn, signal, DEFAULT_THRESHOLDS)
            if event is not None:
                events.append(event)
        record_in_ledger(conn, events)
        return events


def _by_elevator(
    samples: Sequence[Sample], events: Sequence[Event]
) -> Iterable[tuple[str, list[Sample | Event]]]:
    """Each elevator's samples and events, in device-time order (sequence within a boot)."""
    grouped: dict[str, list[Sample | Event]] = defaultdict(list)
    for sample in samples:
        grouped[sample.elevator].append(sample)
    for event in events:
        grouped[event.elevator].append(event)
    for elevator, items in grouped.items():
        if len(items) > 1:
            items.sort(key=lambda item: (item.time, item.data.seq if isinstance(item, Sample)
                                         else item.seq))  # fmt: skip
        yield elevator, items
