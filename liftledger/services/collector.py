"""Build a collector from the settings and run it (`liftledger collector`)."""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from prometheus_client import start_http_server

from alerts.engine import DetectionEngine
from core.credentials import collector_username, service_credentials
from core.db import create_engine_from_url, libpq_url, session_factory
from core.db_roles import check_service_connection, service_settings
from core.models import Elevator
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

log = logging.getLogger(__name__)


def client_id(config: CollectorConfig) -> str:
    """The MQTT account and client id (the broker binds one to the other) of a partition."""
    return collector_username(config.partition, config.partitions)


def run_collector(
    settings: Settings,
    config: CollectorConfig,
    *,
    stop: threading.Event,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Run one collector until `stop` is set, connected as the collector's database role."""
    settings = service_settings(settings, "collector")
    check_service_connection(
        settings.resolved_database_url(), "collector", production=settings.env == "production",
        stop=stop,
    )  # fmt: skip
    engine = create_engine_from_url(settings.resolved_database_url(), pool_size=1)
    sessions = session_factory(engine)

    def load_registry() -> dict[str, str]:
        with sessions() as session:
            rows = session.execute(sa.select(Elevator.id, Elevator.site_id).where(Elevator.active))
            return {elevator: site for elevator, site in rows}

    metrics = CollectorMetrics()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
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
    creds = service_credentials(settings.secret("mqtt_secret"), mqtt_client_id)
    subscriber = CollectorSubscriber(
        mqtt_url=settings.resolved_mqtt_url(),
        username=creds.username,
        password=creds.password,
        client_id=mqtt_client_id,
        topic_filters=topic_filters(
            set(registry.sites_by_elevator.values()), config.partition, config.partitions
        ),
        on_connection_change=on_connection_change,
    )
    writer = BatchWriter(libpq_url(settings.resolved_database_url()), detection=detection)
    collector = Collector(sink=writer, registry=registry, metrics=metrics, config=config)
    log.info(
        "collector %s: %d elevators registered, broker %s",
        mqtt_client_id,
        len(registry.sites_by_elevator),
        settings.resolved_mqtt_url(),
    )
    subscriber.start()
    try:
        collector.run(subscriber, stop)
    finally:
        subscriber.stop()
        writer.close()
        engine.dispose()
