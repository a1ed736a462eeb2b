"""A collector run in-process ends every thread it started (its metrics server's too)."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import psycopg
import pytest

from core.credentials import service_credentials
from core.db import libpq_url
from core.registry import ParsedRegistry, upsert_registry
from core.settings import Settings
from ingest.collector import CollectorConfig, in_partition, topic_filters
from liftledger.services.collector import client_id, run_collector
from tests.integration.cli_helpers import free_port
from tests.integration.mqtt_helpers import open_session

# Partition 5 of 8: an account no other test uses, so no session is disturbed.
CONFIG = CollectorConfig(partition=5, partitions=8)


def _site_in_partition() -> str:
    """A new site id whose messages this partition's collector takes."""
    for _ in range(1000):
        site = f"thr-{uuid.uuid4().hex[:8]}"
        if in_partition(site, CONFIG.partition, CONFIG.partitions):
            return site
    raise AssertionError("no site id hashed to the partition")


def _register(database_url: str, site: str) -> None:
    registry = ParsedRegistry()
    registry.sites[site] = {"id": site, "name": "Threads", "district": None}
    registry.elevators.append(
        {"id": f"{site}-e1", "site_id": site, "building": "B", "lowest_floor": 1,
         "highest_floor": 9, "rated_speed_mps": 1.0, "rated_load_kg": 800.0,
         "registration_code": None, "manufacturer": None, "installed_on": None,
         "thresholds": {}}
    )  # fmt: skip
    with psycopg.connect(libpq_url(database_url)) as conn:
        upsert_registry(conn, registry)


def _new_threads(before: set[threading.Thread], timeout_s: float = 3.0) -> set[threading.Thread]:
    """Threads started since `before` that are still alive after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = {t for t in threading.enumerate() if t not in before and t.is_alive()}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def test_a_stopped_collector_leaves_no_thread_of_its_own_behind(
    stack_settings: Settings, test_database_url: str
) -> None:
    site = _site_in_partition()
    _register(test_database_url, site)
    account = client_id(CONFIG)
    creds = service_credentials(stack_settings.secret("mqtt_secret"), account)
    # Start the partition's session afresh: nothing an earlier run left is delivered now.
    open_session(stack_settings.resolved_mqtt_url(), creds.username, creds.password, account,
                 topic_filters([site], CONFIG.partition, CONFIG.partitions))  # fmt: skip
    settings = stack_settings.model_copy(update={"database_url": test_database_url})
    port = free_port()
    before = set(threading.enumerate())
    stop = threading.Event()
    runner = threading.Thread(
        target=run_collector, args=(settings, CONFIG),
        kwargs={"stop": stop, "metrics_port": port},
    )  # fmt: skip
    runner.start()
    try:
        deadline = time.monotonic() + 30
        connected = False
        while not connected and time.monotonic() < deadline and runner.is_alive():
            try:
                metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                metrics = ""
            connected = "liftledger_ingest_broker_connected 1.0" in metrics
            time.sleep(0.1)
        assert connected, "the collector never reported its broker connection"
    finally:
        stop.set()
        runner.join(30)
    assert not runner.is_alive()
    assert _new_threads(before) == set()
    with pytest.raises(httpx.TransportError):  # the metrics server is closed, not only idle
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
