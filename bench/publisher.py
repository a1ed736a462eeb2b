"""Fleet publisher benchmark: N simulated elevators at 1 msg/s each through one thread.

    .venv/bin/python -m bench.publisher --devices 5000 --seconds 20

Registers N synthetic device accounts (site `bench`) in the local broker's password file and
ACL next to the registry's own elevators, connects them all through one `FleetPublisher`,
and publishes a ~400-byte telemetry sample per device per second, paced by the wall clock.
It prints the connect time, the sustained publish and acknowledge rates against the target
(N msg/s), the process CPU seconds spent per wall second, and a baseline from the same run:
one bare paho client publishing the same payload at QoS 1 as fast as it can. The broker's
accounts are restored on exit. Needs the local stack (`liftledger stack up`).

The baseline drives paho directly, on purpose: it measures the library and the broker
without the publisher in between, as SPEC §7 asks of every baseline.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.credentials import device_credentials
from core.protocol import topic_for
from core.settings import Settings, load_settings
from liftledger import stack
from liftledger.stack.mosquitto import LocalMosquitto
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher

SITE = "bench"
BASELINE_ELEVATOR = "bench-baseline"
# Unacknowledged messages the baseline keeps queued in paho so the socket never idles.
BASELINE_WINDOW = 1_000
CONNECT_TIMEOUT_S = 120.0
FLUSH_TIMEOUT_S = 60.0
RESERVED_FDS = 256
_PAYLOAD_HEAD = (
    b'{"v": 1, "boot": "b7e2c1d09a4f4e3b8c2d5e6f7a8b9c0d", "ts": "2026-11-28T09:30:00.120Z", '
    b'"floor": 5, "pos_m": 12.04, "speed_mps": 1.48, "dir": "up", "door": "closed", '
    b'"door_zone": false, "door_lock": true, "safety_chain": true, "power": "mains", '
    b'"load_kg": 320.0, "occupied": true, "mode": "normal", "vib_mg": 12.5, '
    b'"motor_c": 45.1, "brake_c": 40.2, "level_mm": null, "seq": '
)


def telemetry_payload(seq: int) -> bytes:
    """A realistic telemetry sample (SPEC §3) of about 400 bytes with sequence number `seq`."""
    return _PAYLOAD_HEAD + str(seq).encode() + b"}"


@dataclass(frozen=True, slots=True)
class FleetResult:
    """What one paced fleet run achieved."""

    devices: int
    connect_s: float
    window_s: float
    published: int
    acknowledged_in_window: int
    acknowledged: int
    refused: int
    max_lag_s: float
    cpu_s_per_s: float
    flush_s: float


@dataclass(frozen=True, slots=True)
class BaselineResult:
    """What one bare paho client achieved."""

    window_s: float
    acknowledged: int


def raise_file_limit(needed: int) -> int:
    """Raise this process's soft open-file limit to `needed` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return int(soft)


def broker_file_limit(settings: Settings) -> int | None:
    """The running local broker's soft open-file limit, when it can be read."""
    pid = LocalMosquitto(settings).pid()
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            value = line.split()[3]
            return None if value == "unlimited" else int(value)
    return None


def run_fleet(settings: Settings, elevators: Sequence[str], seconds: float) -> FleetResult:
    """Connect every elevator and publish 1 msg/s per device for `seconds` of wall time."""
    secret = settings.secret("mqtt_secret")
    identities = []
    for elevator in elevators:
        creds = device_credentials(secret, elevator)
        identities.append(DeviceIdentity(SITE, elevator, creds.username, creds.password))
    n = len(elevators)
    with FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=identities) as fleet:
        started = time.perf_counter()
        fleet.start()
        connected = fleet.wait_connected(CONNECT_TIMEOUT_S)
        connect_s = time.perf_counter() - started
        if connected < n:
            raise SystemExit(f"only {connected} of {n} devices connected in {connect_s:.1f} s")
        fleet.flush(FLUSH_TIMEOUT_S)  # the online statuses are out of the way
        base = fleet.stats()

        total = int(seconds * n)
        sent = 0
        max_lag_s = 0.0
        cpu_start = time.process_time()
        t0 = time.monotonic()
        while sent < total:
            now = time.monotonic()
            due = min(total, int((now - t0) * n) + 1)
            if due > sent:
                # Message k was due at t0 + k/n: how late the oldest unsent one goes out.
                max_lag_s = max(max_lag_s, now - (t0 + sent / n))
            while sent < due:
                fleet.publish(elevators[sent % n], "telemetry", telemetry_payload(sent // n))
                sent += 1
            fleet.pump(max(0.0, min(0.005, t0 + sent / n - time.monotonic())))
        window_s = time.monotonic() - t0
        cpu_s = time.process_time() - cpu_start
        in_window = fleet.stats().acknowledged - base.acknowledged

        flush_started = time.perf_counter()
        fleet.flush(FLUSH_TIMEOUT_S)
        flush_s = time.perf_counter() - flush_started
        stats = fleet.stats()
        for elevator in elevators:  # invented devices leave no retained status behind
            fleet.clear_status(elevator)
        fleet.flush(FLUSH_TIMEOUT_S)
    return FleetResult(
        devices=n,
        connect_s=connect_s,
        window_s=window_s,
        published=stats.published - base.published,
        acknowledged_in_window=in_window,
        acknowledged=stats.acknowledged - base.acknowledged,
        refused=stats.refused - base.refused,
        max_lag_s=max_lag_s,
        cpu_s_per_s=cpu_s / window_s,
        flush_s=flush_s,
    )


def run_baseline(settings: Settings, seconds: float) -> BaselineResult:
    """One bare paho client publishing the same payload at QoS 1 as fast as it can."""
    parts = urlsplit(settings.resolved_mqtt_url())
    creds = device_credentials(settings.secret("mqtt_secret"), BASELINE_ELEVATOR)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=BASELINE_ELEVATOR, protocol=mqtt.MQTTv5
    )
    client.username_pw_set(creds.username, creds.password)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    acked = [0]

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, p: Any) -> None:
        acked[0] += 1

    client.on_publish = on_publish
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    deadline = time.monotonic() + 10
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise SystemExit("the baseline client got no CONNACK")
        client.loop(0.1)
    topic = topic_for(SITE, BASELINE_ELEVATOR, "telemetry")
    published = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            while published - acked[0] < BASELINE_WINDOW:
                client.publish(topic, telemetry_payload(published), qos=1)
                published += 1
            client.loop(0.01)
        window_s = time.monotonic() - t0
        in_window = acked[0]
        deadline = time.monotonic() + FLUSH_TIMEOUT_S
        while acked[0] < published and time.monotonic() < deadline:
            client.loop(0.01)
    finally:
        client.disconnect()
        client.loop(0.1)
    return BaselineResult(window_s=window_s, acknowledged=in_window)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.publisher", description=__doc__)
    parser.add_argument("--devices", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    devices: int = args.devices

    settings = load_settings()
    if not settings.local_mqtt:
        raise SystemExit("this benchmark registers accounts in the local broker: use the stack")
    fd_limit = raise_file_limit(devices + RESERVED_FDS)
    if fd_limit < devices + RESERVED_FDS:
        raise SystemExit(f"open-file limit {fd_limit} is too low for {devices} connections")
    broker_limit = broker_file_limit(settings)
    if broker_limit is not None and broker_limit < devices + RESERVED_FDS:
        raise SystemExit(
            f"the broker may open only {broker_limit} files, too few for {devices} connections"
        )

    elevators = [f"bench-{index:05d}" for index in range(devices)]
    registered = stack.registered_elevators(settings)
    accounts = [(SITE, elevator) for elevator in [*elevators, BASELINE_ELEVATOR]]
    stack.sync_broker_auth(settings, [*registered, *accounts])
    time.sleep(1.0)  # SIGHUP reload is asynchronous
    try:
        baseline = run_baseline(settings, args.baseline_seconds)
        fleet = run_fleet(settings, elevators, args.seconds)
    finally:
        stack.sync_broker_auth(settings, registered)

    baseline_rate = baseline.acknowledged / baseline.window_s
    publish_rate = fleet.published / fleet.window_s
    ack_rate = fleet.acknowledged_in_window / fleet.window_s
    print(f"payload                     {len(telemetry_payload(fleet.devices))} bytes, QoS 1")
    print(f"devices                     {fleet.devices} (one MQTT 5 connection each)")
    print(f"connect time                {fleet.connect_s:.2f} s")
    print(f"target rate                 {fleet.devices} msg/s (1 msg/s per device)")
    print(f"published                   {publish_rate:,.0f} msg/s over {fleet.window_s:.1f} s")
    print(f"acknowledged in the window  {ack_rate:,.0f} msg/s")
    print(f"achieved / target           {ack_rate / fleet.devices:.3f}")
    print(f"max pacing lag              {fleet.max_lag_s * 1000:.1f} ms")
    print(f"publisher CPU               {fleet.cpu_s_per_s:.3f} s per s (one thread)")
    print(
        f"acknowledged in total       {fleet.acknowledged} of {fleet.published} "
        f"({fleet.refused} refused), flush {fleet.flush_s:.2f} s"
    )
    print(f"baseline: one paho client   {baseline_rate:,.0f} msg/s at QoS 1 as fast as possible")
    print(f"fleet / baseline            {ack_rate / baseline_rate:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
