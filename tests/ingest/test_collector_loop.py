"""The collector loop with a fake source and sink: acknowledge only what is committed."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

from core.messages import Batch
from core.protocol import topic_for
from ingest.collector import Collector, CollectorConfig, RegistryCache, in_partition, topic_filters
from ingest.metrics import CollectorMetrics
from ingest.subscriber import ReceivedMessage
from ingest.writer import PURGE_CHUNK, DatabaseUnavailable, WriteResult
from tests.factories import sample_payload

NOW = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)


def _message(seq: int, elevator: str = "e1") -> ReceivedMessage:
    payload = sample_payload(boot="b", seq=seq, ts="2026-11-28T09:29:59Z")
    return ReceivedMessage(topic_for("s1", elevator, "telemetry"), payload, seq, 1, NOW, 1)


class FakeSource:
    def __init__(self, messages: list[ReceivedMessage]) -> None:
        self.messages = list(messages)
        self.acked: list[int] = []
        self.waited = 0.0

    def take(self, max_count: int, timeout_s: float) -> list[ReceivedMessage]:
        taken, self.messages = self.messages[:max_count], self.messages[max_count:]
        return taken

    def ack(self, messages: Sequence[ReceivedMessage]) -> int:
        self.acked.extend(m.mid for m in messages)
        return len(messages)

    def queued(self) -> int:
        return len(self.messages)

    def wait(self, seconds: float) -> None:
        self.waited += seconds


class FlakySink:
    """Fails `failures` times, then commits; records what it committed."""

    def __init__(self, failures: int, source: FakeSource) -> None:
        self.failures = failures
        self.source = source
        self.committed: list[int] = []
        self.batch_sizes: list[int] = []
        self.acked_at_commit: list[int] = []

    def write(self, batch: Batch) -> WriteResult:
        if self.failures > 0:
            self.failures -= 1
            raise DatabaseUnavailable("connection refused")
        self.acked_at_commit.append(len(self.source.acked))
        self.committed.extend(s.data.seq for s in batch.samples)
        self.batch_sizes.append(len(batch.samples))
        return WriteResult(len(batch.samples), 0, 0, batch.rejected)

    def tick(self) -> int:
        return 0

    def purge_dead_letters(self, older_than_s: float) -> int:
        return 0


def _collector(source: FakeSource, sink: FlakySink, **config: float) -> Collector:
    registry = RegistryCache(lambda: {"e1": "s1"}, refresh_s=60, unknown_refresh_s=60)
    registry.load_first(threading.Event())
    settings = CollectorConfig(retry_min_s=0.001, retry_max_s=0.002, **config)  # type: ignore[arg-type]
    return Collector(sink=sink, registry=registry, metrics=CollectorMetrics(), config=settings)


def test_messages_are_acknowledged_only_after_their_batch_commits() -> None:
    source = FakeSource([_message(n) for n in range(10)])
    sink = FlakySink(failures=3, source=source)
    collector = _collector(source, sink, batch_max=4)
    stop = threading.Event()
    for _ in range(3):
        collector.commit(source, source.take(4, 0), stop)
    assert sink.committed == list(range(10))
    assert sink.acked_at_commit == [0, 4, 8]  # a batch is acked only after it committed
    assert source.acked == list(range(10))


def test_database_outage_is_retried_not_fatal() -> None:
    source = FakeSource([_message(n) for n in range(3)])
    sink = FlakySink(failures=5, source=source)
    collector = _collector(source, sink)
    assert collector.commit(source, source.take(10, 0), threading.Event())
    assert sink.committed == [0, 1, 2]
    assert source.acked == [0, 1, 2]
    assert source.waited > 0  # the broker connection was kept alive while retrying


def test_stopping_during_an_outage_acknowledges_nothing() -> None:
    source = FakeSource([_message(n) for n in range(3)])
    sink = FlakySink(failures=10**9, source=source)
    collector = _collector(source, sink)
    stop = threading.Event()
    stop.set()
    assert not collector.commit(source, source.take(10, 0), stop)
    assert source.acked == []


def test_run_batches_by_size_and_drains_on_stop() -> None:
    source = FakeSource([_message(n) for n in range(25)])
    sink = FlakySink(failures=0, source=source)
    collector = _collector(source, sink, batch_max=10, batch_interval_s=60.0)
    stop = threading.Event()

    def stop_when_drained() -> None:
        while source.messages:
            pass
        stop.set()

    watcher = threading.Thread(target=stop_when_drained)
    watcher.start()
    collector.run(source, stop)
    watcher.join()
    assert sink.batch_sizes == [10, 10, 5]
    assert sink.committed == list(range(25))
    assert sorted(source.acked) == list(range(25))


def test_bad_messages_become_dead_letters_in_the_same_batch() -> None:
    bad = ReceivedMessage(topic_for("s1", "e1", "telemetry"), b"{oops", 99, 1, NOW, 1)
    source = FakeSource([_message(1), bad, _message(2, elevator="ghost")])
    collector = _collector(source, FlakySink(0, source))
    batch = collector.validate(source.take(10, 0))
    assert [s.data.seq for s in batch.samples] == [1]
    assert sorted(r.reason for r in batch.rejected) == ["malformed_json", "unknown_elevator"]


def test_partitions_cover_every_site_exactly_once() -> None:
    sites = {f"nc{n:02d}" for n in range(1, 22)}
    owners = {site: [k for k in range(3) if in_partition(site, k, 3)] for site in sites}
    assert all(len(owner) == 1 for owner in owners.values())
    filters = [f for k in range(3) for f in topic_filters(sites, k, 3)]
    assert len(filters) == len(set(filters)) == 3 * len(sites)
    assert topic_filters(sites, 0, 1) == [
        "lift/v1/+/+/telemetry",
        "lift/v1/+/+/event",
        "lift/v1/+/+/status",
    ]


class PurgingSink(FlakySink):
    """Has `backlog` dead letters past retention and deletes them a chunk at a time."""

    def __init__(self, source: FakeSource, backlog: int) -> None:
        super().__init__(0, source)
        self.backlog = backlog
        self.purges_between_batches: list[int] = []

    def write(self, batch: Batch) -> WriteResult:
        self.purges_between_batches.append(0)
        return super().write(batch)

    def purge_dead_letters(self, older_than_s: float) -> int:
        deleted = min(self.backlog, PURGE_CHUNK)
        self.backlog -= deleted
        if self.purges_between_batches:
            self.purges_between_batches[-1] += 1
        return deleted


def test_a_large_dead_letter_backlog_is_purged_a_chunk_at_a_time_between_batches() -> None:
    now = [0.0]
    source = FakeSource([_message(n) for n in range(3)])
    sink = PurgingSink(source, backlog=3 * PURGE_CHUNK + 5)
    registry = RegistryCache(lambda: {"e1": "s1"}, refresh_s=1e9, unknown_refresh_s=1e9)
    registry.load_first(threading.Event())
    collector = Collector(
        sink=sink, registry=registry, metrics=CollectorMetrics(),
        config=CollectorConfig(batch_max=1, tick_interval_s=1e9), clock=lambda: now[0],
    )  # fmt: skip
    stop = threading.Event()

    class Ticking(FakeSource):
        takes = 0

        def take(self, max_count: int, timeout_s: float) -> list[ReceivedMessage]:
            now[0] += 1.5  # time passes while waiting for messages
            self.takes += 1
            if (sink.backlog == 0 and not self.messages) or self.takes > 50:
                stop.set()
            return super().take(max_count, timeout_s)

    ticking = Ticking(source.messages)
    sink.source = ticking
    collector.run(ticking, stop)
    assert sink.backlog == 0  # within 50 passes of ~1.5 s, not an hour per chunk
    assert sink.committed == [0, 1, 2]
    assert max(sink.purges_between_batches) <= 1  # one chunk between two batches at most
