"""Prometheus metrics of a collector (served on `--metrics-port`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    """Counters and histograms of one collector process, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter("liftledger_ingest_received", "MQTT messages received", registry=r)
        self.committed = Counter(
            "liftledger_ingest_committed",
            "messages committed to the database, by kind",
            ["kind"],
            registry=r,
        )
        self.alert_events = Counter(
            "liftledger_alert_events", "Alert events written by the detectors", registry=r
        )
        self.duplicates = Counter(
            "liftledger_ingest_duplicates", "redelivered samples that created no row", registry=r
        )
        self.dead_lettered = Counter(
            "liftledger_ingest_dead_lettered",
            "messages stored as dead letters, by reason",
            ["reason"],
            registry=r,
        )
        self.database_errors = Counter(
            "liftledger_ingest_database_errors",
            "batch commits that failed and were retried",
            registry=r,
        )
        self.batch_size = Histogram(
            "liftledger_ingest_batch_size",
            "messages per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "liftledger_ingest_commit_seconds",
            "time to write and commit one batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.lag_seconds = Histogram(
            "liftledger_ingest_lag_seconds",
            "from a sample's device time to its commit",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.queued = Gauge(
            "liftledger_ingest_queued", "received messages waiting for a batch", registry=r
        )
        self.connected = Gauge(
            "liftledger_ingest_broker_connected", "1 while connected to the broker", registry=r
        )
