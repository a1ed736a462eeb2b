"""Alert latency benchmark (SPEC §7): the sample that completes a rule → the alert notice.

    .venv/bin/python -m bench.alerts --elevators 2000 --seconds 120

A simulated fleet of N elevators publishes in real time through the local Mosquitto, one
MQTT identity per elevator, with faults injected at random times on random elevators.
`liftledger collector` and `liftledger notifier` run as separate processes on a fresh
database. For every alert that opens, the latency is the time from the moment the simulator
published the message that completed the rule (found by the device time the alert records)
to the moment the notice arrived

  - on the MQTT alert topic (a subscriber as `svc.alert-reader`), and
  - on the event stream the API serves as SSE (`notify.feed`: LISTEN/NOTIFY, then a read).

Prints p50 / p95 / p99 / max for both. Target: p99 ≤ 250 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import fresh_database, local_stack_settings
from core.credentials import (
    ALERT_READER_USERNAME,
    COLLECTOR_USERNAME,
    device_credentials,
    service_credentials,
)
from core.db import libpq_url
from core.registry import upsert_registry
from core.settings import Settings
from ingest.collector import topic_filters
from ledger.follow import latest_seq, listen, wait_for_entries
from liftledger import stack
from notify.feed import read_notices
from simulators.fleet import DeviceMessage, Fleet
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher
from simulators.runner import MqttSink, run_fleet
from simulators.scenario import ScheduledFault
from simulators.specs import specs_from_registry, synthetic_registry

REPO = Path(__file__).resolve().parents[1]
# Rules that complete on one sample or event, and two that need a duration to pass.
FAULTS = (
    "alarm_button", "power_failure", "safety_chain_open", "controller_fault",
    "door_lock_fault", "trapped_between_floors", "overspeed", "door_open_failure",
)  # fmt: skip
SETTLE_S = 10.0
CONNECT_TIMEOUT_S = 120.0


@dataclass
class Arrivals:
    """Notices received, with the wall time of arrival."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    notices: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def add(self, at: float, notice: dict[str, Any]) -> None:
        with self.lock:
            self.notices.append((at, notice))


class RecordingSink(MqttSink):
    """Publishes like the simulator does and remembers when each message went out."""

    def __init__(self, publisher: FleetPublisher) -> None:
        super().__init__(publisher)
        self.published_at: dict[tuple[str, float], float] = {}

    def send(self, message: DeviceMessage, *, speedup: float) -> None:
        if message.kind in ("telemetry", "event"):
            ts = json.loads(message.payload)["ts"]
            device_s = round(datetime.fromisoformat(ts).timestamp(), 3)
            self.published_at[(message.elevator, device_s)] = time.time()
        super().send(message, speedup=speedup)


def _fresh_database(settings: Settings, elevators: int) -> str:
    url = fresh_database(settings, "alerts_bench")
    with psycopg.connect(libpq_url(url)) as conn:
        upsert_registry(conn, synthetic_registry(elevators, seed=1))
    return url


def _spawn(command: list[str], database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "LIFTLEDGER_DATABASE_URL"}
    env["LIFTLEDGER_DATABASE_URL"] = database_url
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "liftledger", *command], env=env, cwd=REPO, stderr=out
        )


def _mqtt_client(settings: Settings, username: str, client_id: str) -> mqtt.Client:
    creds = service_credentials(settings.secret("mqtt_secret"), username)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(creds.username, creds.password)
    return client


def _open_collector_session(settings: Settings, client_id: str, sites: set[str]) -> None:
    client = _mqtt_client(settings, COLLECTOR_USERNAME, client_id)
    parts = urlsplit(settings.resolved_mqtt_url())
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 3600
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, properties=properties)
    client.loop_start()
    client.subscribe([(f, 1) for f in topic_filters(sites, 0, 1)])
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()


def _watch_mqtt(settings: Settings, arrivals: Arrivals) -> mqtt.Client:
    client = _mqtt_client(settings, ALERT_READER_USERNAME, f"bench-alerts-{os.getpid()}")
    client.on_message = lambda c, u, message: arrivals.add(time.time(), json.loads(message.payload))
    parts = urlsplit(settings.resolved_mqtt_url())
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.subscribe("lift/v1/+/+/alert", qos=1)
    client.loop_start()
    return client


def _watch_feed(database_url: str, arrivals: Arrivals, stop: threading.Event) -> None:
    url = libpq_url(database_url)
    with (
        psycopg.connect(url, autocommit=True) as waker,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        listen(waker)
        cursor = latest_seq(conn)
        while not stop.is_set():
            wait_for_entries(waker, 0.5)
            notices = read_notices(conn, after_seq=cursor)
            now = time.time()
            for notice in notices:
                arrivals.add(now, {"seq": notice.seq, **notice.body})
            if notices:
                cursor = notices[-1].seq


def _latencies_ms(arrivals: Arrivals, published_at: dict[tuple[str, float], float]) -> list[float]:
    out = []
    for at, notice in arrivals.notices:
        device_s = notice.get("details", {}).get("device_time_s")
        if notice.get("event") != "opened" or device_s is None:
            continue
        sent = published_at.get((notice["elevator"], round(device_s, 3)))
        if sent is not None:
            out.append((at - sent) * 1000.0)
    return out


def _report(label: str, values: list[float]) -> float:
    if len(values) < 2:
        print(f"{label:<28} too few alerts ({len(values)})")
        return float("inf")
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    p50, p95, p99 = cuts[49], cuts[94], cuts[98]
    print(
        f"{label:<28} n={len(values):>5}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
        f"p99 {p99:7.1f} ms  max {max(values):7.1f} ms"
    )
    return p99


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 - one linear script
    """Run the fleet, the collector and the notifier; print the latency percentiles."""
    parser = argparse.ArgumentParser(prog="python -m bench.alerts", description=__doc__)
    parser.add_argument("--elevators", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--faults", type=int, default=400, help="faults injected in the run")
    parser.add_argument("--traffic-scale", type=float, default=3.0, help="passenger traffic")
    args = parser.parse_args(argv)

    settings = local_stack_settings()
    print(f"preparing {args.elevators} elevators…", flush=True)
    database_url = _fresh_database(settings, args.elevators)
    specs = specs_from_registry(synthetic_registry(args.elevators, seed=1))
    registered = stack.registered_elevators(settings)
    stack.sync_broker_auth(settings, [*registered, *((s.site, s.elevator) for s in specs)])
    time.sleep(1.0)
    collector_id = COLLECTOR_USERNAME  # the broker binds client id to account
    _open_collector_session(settings, collector_id, {s.site for s in specs})
    logs = Path(os.environ.get("TMPDIR", "/tmp"))  # noqa: S108 - logs for a failing run
    collector_log = logs / "bench-alerts-collector.log"
    collector = _spawn(["collector"], database_url, collector_log)
    notifier = _spawn(["notifier"], database_url, logs / "bench-alerts-notifier.log")
    mqtt_arrivals, feed_arrivals = Arrivals(), Arrivals()
    watcher = _watch_mqtt(settings, mqtt_arrivals)
    stop = threading.Event()
    feed = threading.Thread(target=_watch_feed, args=(database_url, feed_arrivals, stop))
    feed.start()
    faults = _random_faults(specs, args.faults, args.seconds)
    secret = settings.secret("mqtt_secret")
    devices = [DeviceIdentity(s.site, s.elevator, *_creds(secret, s.elevator)) for s in specs]
    try:
        time.sleep(5.0)  # collector and notifier start-up (imports, detector rebuild)
        with FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=devices) as publisher:
            publisher.start()
            connected = publisher.wait_connected(CONNECT_TIMEOUT_S)
            print(f"{connected} elevators connected; running {args.seconds:.0f} s…", flush=True)
            fleet = Fleet(
                specs,
                seed=1,
                start=datetime.now(UTC),
                faults=faults,
                traffic_scale=args.traffic_scale,
            )
            sink = RecordingSink(publisher)
            progress = run_fleet(fleet, sink, duration_s=args.seconds, speedup=1.0)
            publisher.flush(60.0)
            time.sleep(SETTLE_S)
            for spec in specs:
                publisher.clear_status(spec.elevator)
            publisher.flush(60.0)
        rate = progress.sent / progress.wall_s
        print(
            f"published {progress.sent:,} messages ({rate:,.0f}/s), {fleet.faults_injected} faults"
        )
    finally:
        stop.set()
        feed.join(10)
        watcher.disconnect()
        watcher.loop_stop()
        for process in (collector, notifier):
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        discard = _mqtt_client(settings, COLLECTOR_USERNAME, collector_id)
        parts = urlsplit(settings.resolved_mqtt_url())
        discard.connect(parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=True)
        discard.disconnect()
        stack.sync_broker_auth(settings, registered)
    p99_mqtt = _report("MQTT alert topic", _latencies_ms(mqtt_arrivals, sink.published_at))
    p99_feed = _report("event stream (SSE source)", _latencies_ms(feed_arrivals, sink.published_at))
    worst = max(p99_mqtt, p99_feed)
    print(f"p99 {worst:.1f} ms; target ≤ 250 ms: {'met' if worst <= 250 else 'NOT met'}")
    return 0


def _random_faults(specs: Sequence[Any], count: int, seconds: float) -> list[ScheduledFault]:
    rng = random.Random(7)
    faults = [
        ScheduledFault(
            rng.uniform(15.0, seconds - 30.0), rng.choice(specs).elevator, rng.choice(FAULTS), 40.0
        )
        for _ in range(count)
    ]
    return sorted(faults, key=lambda f: f.at_s)


def _creds(secret: str, elevator: str) -> tuple[str, str]:
    creds = device_credentials(secret, elevator)
    return creds.username, creds.password


if __name__ == "__main__":
    raise SystemExit(main())
