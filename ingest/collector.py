"""The collector loop: take messages, validate, commit a batch, then acknowledge it.

A batch closes when it holds `batch_max` messages, `batch_interval_s` after its first
message, or as soon as no further message arrives for `linger_s`, whatever comes first; so
batches grow with the load (group commit) and a lone alarm is not held back. Nothing is
acknowledged before its batch is committed. While the database is down the loop retries the
same batch with back-off and acknowledges nothing, so the broker's receive window (MQTT 5
Receive Maximum) fills and the broker holds the rest in the collector's persistent session.
The loop never exits on a database error.

Scale-out is by topic partition: collector K of N subscribes to the sites whose id hashes to K
(CRC-32 mod N), so every elevator's messages reach exactly one collector, in order, which the
detectors rely on. With N = 1 the collector subscribes to the wildcards `lift/v1/+/+/…`
(docs/ingest.md explains why not MQTT shared subscriptions).
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from core.messages import Batch, Event, Rejected, Sample, Status
from core.protocol import DEVICE_TOPIC_KINDS, TOPIC_PREFIX
from ingest.metrics import CollectorMetrics
from ingest.subscriber import ReceivedMessage
from ingest.validate import DEFAULT_MAX_AGE_S, Outcome, unprocessable, validate
from ingest.writer import PURGE_CHUNK, DatabaseUnavailable, WriteResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Batching, partitioning and retry settings."""

    batch_max: int = 5000
    batch_interval_s: float = 0.05
    linger_s: float = 0.005
    partition: int = 0
    partitions: int = 1
    registry_refresh_s: float = 30.0
    unknown_refresh_s: float = 1.0
    retry_min_s: float = 0.2
    retry_max_s: float = 5.0
    tick_interval_s: float = 1.0
    silence_grace_s: float = 30.0
    max_age_s: float = DEFAULT_MAX_AGE_S  # older device times are `stale_timestamp`
    dead_letter_retention_s: float = 30 * 86_400.0
    retention_interval_s: float = 3_600.0


class MessageSource(Protocol):
    """What the loop needs from the subscriber."""

    def take(self, max_count: int, timeout_s: float) -> list[ReceivedMessage]:
        """Up to `max_count` messages, waiting up to `timeout_s` for the first."""

    def ack(self, messages: Sequence[ReceivedMessage]) -> int:
        """Acknowledge messages of the current connection."""

    def queued(self) -> int:
        """Messages waiting."""

    def wait(self, seconds: float) -> None:
        """Keep the broker connection alive for `seconds` while the loop waits."""


class BatchSink(Protocol):
    """What the loop needs from the writer."""

    def write(self, batch: Batch) -> WriteResult:
        """Commit a batch or raise `DatabaseUnavailable`."""

    def tick(self) -> int:
        """Run time-driven detection (silence); returns alert events written."""

    def purge_dead_letters(self, older_than_s: float) -> int:
        """Delete one chunk of dead letters received more than `older_than_s` ago; returns
        how many."""


def in_partition(site: str, partition: int, partitions: int) -> bool:
    """True when `site` belongs to collector `partition` of `partitions`."""
    return zlib.crc32(site.encode()) % partitions == partition


def topic_filters(sites: Iterable[str], partition: int, partitions: int) -> list[str]:
    """The subscriptions of one partition."""
    if partitions == 1:
        return [f"{TOPIC_PREFIX}/+/+/{kind}" for kind in DEVICE_TOPIC_KINDS]
    return [
        f"{TOPIC_PREFIX}/{site}/+/{kind}"
        for site in sorted(sites)
        if in_partition(site, partition, partitions)
        for kind in DEVICE_TOPIC_KINDS
    ]


class RegistryCache:
    """Elevator → site, reloaded periodically and, rate-limited, when an id is unknown."""

    def __init__(
        self,
        load: Callable[[], Mapping[str, str]],
        *,
        refresh_s: float,
        unknown_refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh_s = refresh_s
        self._unknown_refresh_s = unknown_refresh_s
        self._clock = clock
        self.sites_by_elevator: Mapping[str, str] = {}
        self._loaded_at = -float("inf")

    def load_first(self, stop: threading.Event, *, retry_s: float = 2.0) -> bool:
        """Load the registry, waiting for the database if needed; False if stopped first."""
        while not stop.is_set():
            try:
                self.sites_by_elevator = self._load()
            except Exception as exc:  # the database may not be up yet
                log.warning("cannot read the elevator registry yet (%s); retrying", exc)
                stop.wait(retry_s)
                continue
            self._loaded_at = self._clock()
            return True
        return False

    def refresh_if_stale(self) -> None:
        """Reload when the periodic refresh is due."""
        if self._clock() - self._loaded_at >= self._refresh_s:
            self._reload()

    def refresh_for_unknown(self) -> bool:
        """Reload because an id was unknown, at most every `unknown_refresh_s`."""
        if self._clock() - self._loaded_at < self._unknown_refresh_s:
            return False
        self._reload()
        return True

    def _reload(self) -> None:
        try:
            self.sites_by_elevator = self._load()
        except Exception:  # a registry read failing must not stop ingestion
            log.exception("could not reload the elevator registry; keeping the old one")
        self._loaded_at = self._clock()


class Collector:
    """One collector process's loop."""

    def __init__(
        self,
        *,
        sink: BatchSink,
        registry: RegistryCache,
        metrics: CollectorMetrics,
        config: CollectorConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._registry = registry
        self._metrics = metrics
        self._config = config
        self._clock = clock

    def run(self, source: MessageSource, stop: threading.Event) -> None:
        """Collect until `stop` is set; each batch is committed, then acknowledged."""
        config = self._config
        next_tick = self._clock() + config.tick_interval_s
        next_purge = self._clock()
        while not stop.is_set():
            self._registry.refresh_if_stale()
            self._metrics.queued.set(source.queued())
            if self._clock() >= next_tick:
                self._tick()
                next_tick = self._clock() + config.tick_interval_s
            if self._clock() >= next_purge:
                # A full chunk means more is due: come back after a second, between batches.
                backlog = self._purge() >= PURGE_CHUNK
                next_purge = self._clock() + (1.0 if backlog else config.retention_interval_s)
            pending = source.take(config.batch_max, config.batch_interval_s)
            if not pending:
                continue
            closes_at = self._clock() + config.batch_interval_s
            # Keep filling while messages keep coming; a pause of `linger_s` means the broker
            # has nothing more right now (or our receive window is full), so commit.
            while len(pending) < config.batch_max and self._clock() < closes_at:
                more = source.take(config.batch_max - len(pending), config.linger_s)
                if not more:
                    break
                pending.extend(more)
            self._metrics.received.inc(len(pending))
            self.commit(source, pending, stop)

    def _tick(self) -> None:
        # Silence is judged only between batches: a backlog is drained before it counts.
        try:
            self._metrics.alert_events.inc(self._sink.tick())
        except DatabaseUnavailable as exc:
            log.debug("time-driven detection skipped: %s", exc)
        except Exception:  # a failing check must not stop ingestion; it is retried next tick
            log.exception("time-driven detection failed")

    def _purge(self) -> int:
        try:
            purged = self._sink.purge_dead_letters(self._config.dead_letter_retention_s)
        except DatabaseUnavailable as exc:
            log.debug("dead-letter retention skipped: %s", exc)
            return 0
        except Exception:  # retention must not stop ingestion; it runs again next interval
            log.exception("dead-letter retention failed")
            return 0
        if purged:
            log.info("deleted %d dead letters past their retention", purged)
        return purged

    def _validate_one(self, message: ReceivedMessage) -> Outcome:
        try:
            return validate(
                message.topic,
                message.payload,
                received_at=message.received_at,
                sites_by_elevator=self._registry.sites_by_elevator,
                max_age_s=self._config.max_age_s,
            )
        except Exception as exc:  # validation is meant never to raise; if it does, contain it
            log.exception("validation raised on a message on %s", message.topic[:200])
            return unprocessable(message.topic, message.payload, message.received_at, exc, None)

    def validate(self, messages: Sequence[ReceivedMessage]) -> Batch:
        """Sort messages into samples, events, statuses and dead letters."""
        batch = Batch()
        for message in messages:
            outcome = self._validate_one(message)
            if (
                isinstance(outcome, Rejected)
                and outcome.reason == "unknown_elevator"
                and self._registry.refresh_for_unknown()
            ):
                outcome = self._validate_one(message)
            if isinstance(outcome, Sample):
                batch.samples.append(outcome)
            elif isinstance(outcome, Event):
                batch.events.append(outcome)
            elif isinstance(outcome, Status):
                batch.statuses.append(outcome)
            elif isinstance(outcome, Rejected):
                batch.rejected.append(outcome)
        return batch

    def commit(
        self, source: MessageSource, messages: Sequence[ReceivedMessage], stop: threading.Event
    ) -> bool:
        """Write the batch, retrying until it commits; acknowledge it; False if stopped first."""
        batch = self.validate(messages)
        delay_s = self._config.retry_min_s
        while True:
            started = self._clock()
            try:
                result = self._sink.write(batch)
            except DatabaseUnavailable as exc:
                self._metrics.database_errors.inc()
                log.warning("database unavailable (%s); retrying in %.1f s", exc, delay_s)
                source.wait(delay_s)
                if stop.is_set():
                    return False
                delay_s = min(self._config.retry_max_s, delay_s * 2)
                continue
            break
        self._metrics.commit_seconds.observe(self._clock() - started)
        source.ack(messages)
        self._record(batch, result, len(messages))
        return True

    def _record(self, batch: Batch, result: WriteResult, size: int) -> None:
        metrics = self._metrics
        metrics.batch_size.observe(size)
        metrics.committed.labels("telemetry").inc(result.samples_inserted)
        metrics.committed.labels("event").inc(result.events_inserted)
        metrics.committed.labels("status").inc(len(batch.statuses))
        metrics.duplicates.inc(result.samples_duplicate)
        metrics.alert_events.inc(result.alert_events)
        for rejected in result.dead_letters:
            metrics.dead_lettered.labels(rejected.reason).inc()
        if batch.samples:
            now = time.time()
            for sample in batch.samples[:: max(1, len(batch.samples) // 50)]:
                metrics.lag_seconds.observe(max(0.0, now - sample.time.timestamp()))
