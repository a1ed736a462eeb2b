"""The collector's metrics are not exposed to the network unless asked (docs/security.md)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.settings import Settings
from tests.integration.cli_helpers import REPO, clean_environment, free_port
from tests.integration.databases import migrated_database

LISTEN = "0A"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if int(hex_port, 16) == port and fields[3] == LISTEN:
                found.add(address)
    return found


def _collector(partition: str, metrics_port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`liftledger collector --partition K/N` with its metrics on `metrics_port`."""
    return subprocess.Popen(
        [sys.executable, "-m", "liftledger", "collector", "--partition", partition,
         "--metrics-port", str(metrics_port)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_collector_metrics_listen_on_loopback_by_default(
    stack_settings: Settings, test_database_url: str
) -> None:
    port = free_port()
    env = clean_environment(
        LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir), LIFTLEDGER_DATABASE_URL=test_database_url
    )
    # Partition 7 of 8: an account no other test uses, so no session is disturbed.
    process = _collector("7/8", port, env)
    try:
        deadline = time.monotonic() + 30
        while not _listening_addresses(port):
            assert process.poll() is None, "the collector exited"
            assert time.monotonic() < deadline, "metrics never listened"
            time.sleep(0.2)
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "liftledger_ingest_received_total" in body
    finally:
        process.terminate()
        process.wait(30)


def test_a_partition_that_holds_no_site_yet_connects_and_stays_up(
    stack_settings: Settings,
) -> None:
    """A collector whose partition holds no registered site (a new fleet, a fleet smaller than
    the partition count) subscribes to nothing and waits; it neither crashes nor exits."""
    port = free_port()
    with migrated_database(stack_settings, "empty_partition") as database_url:
        env = clean_environment(
            LIFTLEDGER_DATA_DIR=str(stack_settings.data_dir), LIFTLEDGER_DATABASE_URL=database_url
        )
        # Partition 6 of 8, an account no other test uses; the database registers no site.
        process = _collector("6/8", port, env)
        try:
            deadline = time.monotonic() + 30
            connected = False
            while not connected:
                assert process.poll() is None, "the collector exited"
                assert time.monotonic() < deadline, "the collector never reported connected"
                time.sleep(0.2)
                try:
                    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                except httpx.TransportError:
                    continue
                connected = "liftledger_ingest_broker_connected 1.0" in body
            time.sleep(2)  # a crash in the connect callback would show within this
            assert process.poll() is None, "the collector exited after connecting"
        finally:
            process.terminate()
            process.wait(30)
