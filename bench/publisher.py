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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import (
    broker_accounts,
    local_stack_settings,
    parse_options,
    print_figures,
    require_file_limits,
)
from core.credentials import device_credentials
from core.protocol import topic_for
from core.settings import Settings
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher

SITE = "bench"
BASELINE_ELEVATOR = "bench-baseline"
# Unacknowledged messages the baseline keeps queued in paho so the socket never idles.
BASELINE_WINDOW = 1_000
CONNECT_TIMEOUT_S = 120.0
FLUSH_TIMEOUT_S = 60.0
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


def baseline_figure(rate: float) -> tuple[str, str]:
    """The baseline's line in the printed figures."""
    return "baseline: one paho client", f"{rate:,.0f} msg/s at QoS 1 as fast as possible"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    args = parse_options("publisher", __doc__, argv, devices=5000, seconds=20.0,
                         baseline_seconds=5.0)  # fmt: skip
    settings = local_stack_settings()
    require_file_limits(settings, args.devices)
    elevators = [f"bench-{index:05d}" for index in range(args.devices)]
    with broker_accounts(settings, [(SITE, e) for e in [*elevators, BASELINE_ELEVATOR]]):
        baseline = run_baseline(settings, args.baseline_seconds)
        fleet = run_fleet(settings, elevators, args.seconds)

    baseline_rate = baseline.acknowledged / baseline.window_s
    publish_rate = fleet.published / fleet.window_s
    ack_rate = fleet.acknowledged_in_window / fleet.window_s
    print_figures(
        [
            ("payload", f"{len(telemetry_payload(fleet.devices))} bytes, QoS 1"),
            ("devices", f"{fleet.devices} (one MQTT 5 connection each)"),
            ("connect time", f"{fleet.connect_s:.2f} s"),
            ("target rate", f"{fleet.devices} msg/s (1 msg/s per device)"),
            ("published", f"{publish_rate:,.0f} msg/s over {fleet.window_s:.1f} s"),
            ("acknowledged in the window", f"{ack_rate:,.0f} msg/s"),
            ("achieved / target", f"{ack_rate / fleet.devices:.3f}"),
            ("max pacing lag", f"{fleet.max_lag_s * 1000:.1f} ms"),
            ("publisher CPU", f"{fleet.cpu_s_per_s:.3f} s per s (one thread)"),
            (
                "acknowledged in total",
                f"{fleet.acknowledged} of {fleet.published} ({fleet.refused} refused), "
                f"flush {fleet.flush_s:.2f} s",
            ),
            baseline_figure(baseline_rate),
            ("fleet / baseline", f"{ack_rate / baseline_rate:.3f}"),
        ]
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
