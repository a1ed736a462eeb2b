"""Build a collector from the settings and run it (`liftledger collector`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from prometheus_client import start_http_server

from alerts.engine import DetectionEngine
from core.credentials import collector_username
from core.db import CONNECT_TIMEOUT_S, libpq_url
from core.registry import elevator_topics
from core.settings import Settings
from ingest.collector import (
    Collector,
    CollectorConfig,
    RegistryCache,
    in_partition,
    topic_filters,
)
from ingest.metrics import CollectorMetrics
from ingest.subscriber import CollectorSubscriber
from ingest.writer import BatchWriter
from liftledger.services.common import as_service, broker_login

log = logging.getLogger(__name__)


def client_id(config: CollectorConfig) -> str:
    """The MQTT account and client id (the broker binds one to the other) of a partition."""
    return collector_username(config.partition, config.partitions)


class RegistryReader:
    """Reads elevator → site over one connection of its own, kept between reads and opened
    again when the database dropped it."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection[Any] | None = None

    def __call__(self) -> dict[str, str]:
        """Every active elevator's site."""
        try:
            return self._read()
        except psycopg.OperationalError:
            if self._conn is None or not (self._conn.closed or self._conn.broken):
                raise
            self.close()  # the server closed it (a restart): one new connection, once
            return self._read()

    def _read(self) -> dict[str, str]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        return {elevator: site for site, elevator in elevator_topics(self._conn)}

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run_collector(
    settings: Settings,
    config: CollectorConfig,
    *,
    stop: threading.Event,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Run one collector until `stop` is set, connected as the collector's database role.

    Every thread it starts (the metrics server's) is stopped before it returns.
    """
    settings = as_service(settings, "collector", stop=stop)
    conninfo = libpq_url(settings.resolved_database_url())
    metrics = CollectorMetrics()
    metrics_server = None
    if metrics_port is not None:
        metrics_server = start_http_server(
            metrics_port, addr=metrics_host, registry=metrics.registry
        )
    load_registry = RegistryReader(conninfo)
    writer: BatchWriter | None = None
    subscriber: CollectorSubscriber | None = None
    try:
        registry = RegistryCache(
            load_registry,
            refresh_s=config.registry_refresh_s,
            unknown_refresh_s=config.unknown_refresh_s,
        )
        if not registry.load_first(stop):
            return
        detection = DetectionEngine(
            owns_site=lambda site: in_partition(site, config.partition, config.partitions)
        )

        def on_connection_change(up: bool) -> None:
            metrics.connected.set(1 if up else 0)
            if up:
                # Messages held by the broker while we were away arrive now; let them land
                # before any elevator is judged silent.
                detection.defer_silence(config.silence_grace_s)

        mqtt_client_id = client_id(config)
        subscriber = CollectorSubscriber(
            **broker_login(settings, mqtt_client_id),
            client_id=mqtt_client_id,
            topic_filters=topic_filters(
                set(registry.sites_by_elevator.values()), config.partition, config.partitions
            ),
            on_connection_change=on_connection_change,
        )
        writer = BatchWriter(conninfo, detection=detection)
        collector = Collector(sink=writer, registry=registry, metrics=metrics, config=config)
        log.info(
            "collector %s: %d elevators registered, broker %s",
            mqtt_client_id,
            len(registry.sites_by_elevator),
            settings.resolved_mqtt_url(),
        )
        subscriber.start()
        collector.run(subscriber, stop)
    finally:
        if subscriber is not None:
            subscriber.stop()
        if writer is not None:
            writer.close()
        load_registry.close()
        if metrics_server is not None:
            server, thread = metrics_server
            server.shutdown()
            server.server_close()
            thread.join()
