"""Ingest benchmark (SPEC §7): the collector against a bare subscriber and a naive collector.

    .venv/bin/python -m bench.ingest --messages 100000

Three consumers drain the same N telemetry messages, queued at QoS 1 for each consumer's
persistent session on the local broker, one consumer at a time:

  (a) a bare paho 2.x subscriber (MQTT 5, QoS 1, automatic PUBACK) that only counts;
  (b) a naive collector: decode, one INSERT and one COMMIT per message, then PUBACK;
  (c) `liftledger collector` (a separate process): QoS 1, PUBACK only after the batch commit.

Each rate is messages divided by the time from the consumer's connect to its last message
(for (c), from its first committed batch to the last committed row, so that the
interpreter's start-up is not counted). Targets: (c) ≥ 0.75 of (a) and (c) ≥ 5 times (b). The naive
collector is measured over a tenth of the messages (it is slow; its rate does not depend on
N). Writes go to a database of their own, `<name>_bench`, created fresh.

The broker binds client ids to accounts, so the consumers use the `svc.monitor`,
`svc.collector.1-of-2` and `svc.collector` accounts and their sessions: run it on a stack
where no collector or monitor is connected (it starts and discards those sessions).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bench.common import broker_accounts, fresh_database, local_stack_settings, parse_options
from core.credentials import (
    COLLECTOR_USERNAME,
    MONITOR_USERNAME,
    collector_username,
    device_credentials,
    service_credentials,
)
from core.db import libpq_url
from core.settings import Settings
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher

SITE = "bench-ingest"
DEVICES = [f"bench-ing-{n:03d}" for n in range(100)]
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600.0
FILTERS = ["lift/v1/+/+/telemetry"]


def _sample(seq: int, ts: str) -> bytes:
    body = {
        "v": 1, "boot": "bench", "seq": seq, "ts": ts, "floor": 5, "pos_m": 12.04,
        "speed_mps": 1.48, "dir": "up", "door": "closed", "door_zone": False, "door_lock": True,
        "safety_chain": True, "power": "mains", "load_kg": 320.0, "occupied": True,
        "mode": "normal", "vib_mg": 12.5, "motor_c": 45.1, "brake_c": 40.2, "level_mm": None,
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def _client(settings: Settings, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    # The broker binds client ids to accounts: each consumer's id is its account.
    creds = service_credentials(settings.secret("mqtt_secret"), client_id)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )  # fmt: skip
    client.username_pw_set(creds.username, creds.password)
    return client


def _connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 20_000
    return props


def _run_session(
    settings: Settings,
    client: mqtt.Client,
    done: threading.Event,
    *,
    clean_start: bool,
    timeout_s: float,
    failure: Callable[[], str],
) -> float:
    """Connect with the consumer's session, wait for `done`, disconnect; the seconds from the
    connect to `done`. Exits with `failure()` when `done` is not set within `timeout_s`."""
    parts = urlsplit(settings.resolved_mqtt_url())
    started = time.perf_counter()
    client.connect(
        parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=clean_start,
        properties=_connect_properties(),
    )  # fmt: skip
    client.loop_start()
    if not done.wait(timeout_s):
        raise SystemExit(failure())
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def _open_session(settings: Settings, client_id: str) -> None:
    """Create a persistent session subscribed to telemetry, then leave it to queue."""
    client = _client(settings, client_id)
    done = threading.Event()
    client.on_subscribe = lambda *args: done.set()
    client.on_connect = lambda c, *args: c.subscribe([(f, 1) for f in FILTERS])
    _run_session(
        settings,
        client,
        done,
        clean_start=True,
        timeout_s=10,
        failure=lambda: f"{client_id}: no SUBACK",
    )


def _publish(settings: Settings, count: int) -> None:
    secret = settings.secret("mqtt_secret")
    identities = []
    for elevator in DEVICES:
        creds = device_credentials(secret, elevator)
        identities.append(DeviceIdentity(SITE, elevator, creds.username, creds.password))
    ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=identities) as fleet:
        fleet.start()
        fleet.wait_connected(60)
        for seq in range(count // len(DEVICES)):
            for elevator in DEVICES:
                fleet.publish(elevator, "telemetry", _sample(seq, ts))
            fleet.pump(0.0)
        if not fleet.flush(TIMEOUT_S):
            raise SystemExit("could not publish the messages")
        for elevator in DEVICES:
            fleet.clear_status(elevator)
        fleet.flush(60)


def _drain(
    settings: Settings,
    client: mqtt.Client,
    expected: int,
    take: Callable[[mqtt.Client, mqtt.MQTTMessage], bool],
    what: str,
) -> float:
    """Resume the consumer's session and hand its queued messages to `take`, which says
    whether one counts, until `expected` have counted; returns msg/s."""
    received = [0]
    done = threading.Event()

    def on_message(c: mqtt.Client, u: Any, message: mqtt.MQTTMessage) -> None:
        if done.is_set() or not take(c, message):
            return
        received[0] += 1
        if received[0] >= expected:
            done.set()

    client.on_message = on_message
    elapsed = _run_session(
        settings,
        client,
        done,
        clean_start=False,
        timeout_s=TIMEOUT_S,
        failure=lambda: f"{what} {received[0]} of {expected}",
    )
    return expected / elapsed


def bare_subscriber(settings: Settings, client_id: str, expected: int) -> float:
    """(a) count messages, automatic PUBACK; returns msg/s."""

    def take(c: mqtt.Client, message: mqtt.MQTTMessage) -> bool:
        return message.topic.startswith(f"lift/v1/{SITE}/")

    return _drain(settings, _client(settings, client_id), expected, take, "bare subscriber got")


def naive_collector(settings: Settings, client_id: str, database_url: str, expected: int) -> float:
    """(b) decode, INSERT, COMMIT, then PUBACK, one message at a time; returns msg/s."""
    client = _client(settings, client_id, manual_ack=True)
    conn = psycopg.connect(libpq_url(database_url))
    insert = (
        "INSERT INTO telemetry (time, received_at, elevator_id, boot, seq, floor, pos_m, "
        "speed_mps, dir, door, door_zone, door_lock, safety_chain, power, load_kg, occupied, "
        "mode, vib_mg, motor_c, brake_c, level_mm) VALUES (%s, now(), %s, %s, %s, %s, %s, %s, "
        "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
    )

    def take(c: mqtt.Client, message: mqtt.MQTTMessage) -> bool:
        b = json.loads(message.payload)
        elevator = message.topic.split("/")[3]
        conn.execute(
            insert,
            (b["ts"], elevator, b["boot"], b["seq"], b["floor"], b["pos_m"], b["speed_mps"],
             b["dir"], b["door"], b["door_zone"], b["door_lock"], b["safety_chain"], b["power"],
             b["load_kg"], b["occupied"], b["mode"], b["vib_mg"], b["motor_c"], b["brake_c"],
             b["level_mm"]),
        )  # fmt: skip
        conn.commit()
        c.ack(message.mid, message.qos)
        return True

    rate = _drain(settings, client, expected, take, "naive collector stored")
    conn.close()
    return rate


def liftledger_collector(
    settings: Settings, client_id: str, database_url: str, expected: int
) -> float:
    """(c) the real collector process; returns committed msg/s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIFTLEDGER_DATABASE_URL")}
    env["LIFTLEDGER_DATABASE_URL"] = database_url
    if client_id != COLLECTOR_USERNAME:
        raise SystemExit("the collector process uses its partition's account")
    command = [sys.executable, "-m", "liftledger", "collector"]
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        process = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
        launched = time.perf_counter()
        first: tuple[float, int] | None = None  # when rows first appeared, and how many
        try:
            while True:
                row = conn.execute("SELECT count(*) FROM telemetry").fetchone()
                rows = int(row[0]) if row else 0
                now = time.perf_counter()
                if first is None and rows > 0:
                    first = (now, rows)
                if rows >= expected:
                    break
                if now - launched > TIMEOUT_S or process.poll() is not None:
                    raise SystemExit(f"collector stored {rows} of {expected}")
                time.sleep(0.01)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    if first is None:
        raise SystemExit("the collector committed nothing")
    # From its first commit on: the process start (interpreter, imports) is not ingest.
    return (expected - first[1]) / (now - first[0])


def _bench_database(settings: Settings) -> str:
    url = fresh_database(settings, "bench")
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO sites (id, name) VALUES (%s, %s)", (SITE, SITE))
        for elevator in DEVICES:
            conn.execute(
                "INSERT INTO elevators (id, site_id, building, lowest_floor, highest_floor, "
                "rated_speed_mps, rated_load_kg) VALUES (%s, %s, %s, 1, 20, 1.75, 1000)",
                (elevator, SITE, elevator),
            )
    return url


def _discard(settings: Settings, client_id: str) -> None:
    client = _client(settings, client_id)
    parts = urlsplit(settings.resolved_mqtt_url())
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, clean_start=True)
    client.disconnect()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three consumers and print the rates and ratios."""
    args = parse_options("ingest", __doc__, argv, messages=100_000)
    total = args.messages - args.messages % len(DEVICES)
    naive_total = max(len(DEVICES), total // 10 - (total // 10) % len(DEVICES))

    settings = local_stack_settings()
    database_url = _bench_database(settings)
    # Three reading accounts, each with its own queued session; the naive consumer borrows a
    # collector account of a layout that is not running.
    ids = {
        "bare": MONITOR_USERNAME,
        "naive": collector_username(1, 2),
        "collector": COLLECTOR_USERNAME,
    }
    with broker_accounts(settings, [(SITE, e) for e in DEVICES]):
        try:
            for client_id in ids.values():
                _open_session(settings, client_id)
            print(f"queueing {total:,} messages for each consumer…", flush=True)
            _publish(settings, total)
            bare = bare_subscriber(settings, ids["bare"], total)
            print(f"(a) bare paho subscriber      {bare:>10,.0f} msg/s", flush=True)
            ours = liftledger_collector(settings, ids["collector"], database_url, total)
            print(f"(c) liftledger collector      {ours:>10,.0f} msg/s", flush=True)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("TRUNCATE telemetry")
            naive = naive_collector(settings, ids["naive"], database_url, naive_total)
            print(
                f"(b) naive INSERT+COMMIT       {naive:>10,.0f} msg/s  ({naive_total:,} messages)"
            )
        finally:
            for client_id in ids.values():
                _discard(settings, client_id)
    print(f"(c) / (a)                     {ours / bare:>10.2f}   target ≥ 0.75")
    print(f"(c) / (b)                     {ours / naive:>10.1f}   target ≥ 5")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
