"""Simulator benchmark: how many elevators one simulator process keeps up with in real time.

    .venv/bin/python -m bench.simulator --elevators 5000 --seconds 30

Runs the whole simulator — elevator models, traffic, message encoding and one MQTT identity
per elevator through `FleetPublisher` — paced at real time (speed-up 1) against the local
broker, twice: at 1 Hz for every elevator (idle samples every second, the SPEC §7 goal of
≥ 5,000 elevators at 1 Hz on one core) and at the default rates (1 Hz moving, 10 s idle).
For each it prints the publish rate, whether the simulation kept pace with the wall clock,
the CPU seconds the process used per wall second, and the number of elevators one core would
sustain at that cost. The baseline in the same run is one bare paho client publishing a
telemetry sample at QoS 1 as fast as it can. Needs the local stack (`liftledger stack up`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.common import (
    broker_accounts,
    local_stack_settings,
    parse_options,
    print_figures,
    require_file_limits,
)
from bench.publisher import (
    BASELINE_ELEVATOR,
    CONNECT_TIMEOUT_S,
    FLUSH_TIMEOUT_S,
    SITE,
    baseline_figure,
    run_baseline,
)
from core.credentials import device_credentials
from core.registry import ElevatorSpec
from core.settings import Settings
from simulators.fleet import Fleet
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher
from simulators.runner import MqttSink, run_fleet
from simulators.specs import specs_from_registry, synthetic_registry

START = dt.datetime(2026, 11, 28, 7, 30, tzinfo=dt.UTC)  # inside the morning peak


@dataclass(frozen=True, slots=True)
class SimulatorResult:
    """One paced run of the whole simulator."""

    label: str
    elevators: int
    sim_s: float
    wall_s: float
    sent: int
    acknowledged: int
    cpu_s_per_s: float

    @property
    def rate(self) -> float:
        """Messages published per wall second."""
        return self.sent / self.wall_s

    @property
    def pace(self) -> float:
        """Simulated seconds per wall second; 1.0 means it kept up."""
        return self.sim_s / self.wall_s

    @property
    def sustainable_elevators(self) -> float:
        """Elevators one fully used core would carry at this cost per elevator."""
        return self.elevators / self.cpu_s_per_s


def run_simulator(
    settings: Settings,
    specs: Sequence[ElevatorSpec],
    *,
    seconds: float,
    idle_interval_s: float,
    label: str,
) -> SimulatorResult:
    """Simulate `specs` in real time for `seconds` and publish everything."""
    secret = settings.secret("mqtt_secret")
    identities = []
    for spec in specs:
        creds = device_credentials(secret, spec.elevator)
        identities.append(DeviceIdentity(spec.site, spec.elevator, creds.username, creds.password))
    fleet = Fleet(specs, seed=1, start=START, idle_interval_s=idle_interval_s)
    with FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=identities) as publisher:
        publisher.start()
        connected = publisher.wait_connected(CONNECT_TIMEOUT_S)
        if connected < len(specs):
            raise SystemExit(f"only {connected} of {len(specs)} elevators connected")
        publisher.flush(FLUSH_TIMEOUT_S)
        base = publisher.stats()
        cpu_start = time.process_time()
        progress = run_fleet(fleet, MqttSink(publisher), duration_s=seconds, speedup=1.0)
        cpu_s = time.process_time() - cpu_start
        publisher.flush(FLUSH_TIMEOUT_S)
        acknowledged = publisher.stats().acknowledged - base.acknowledged
        for spec in specs:  # invented devices leave no retained status behind
            publisher.clear_status(spec.elevator)
        publisher.flush(FLUSH_TIMEOUT_S)
    return SimulatorResult(
        label=label,
        elevators=len(specs),
        sim_s=fleet.t_s,
        wall_s=progress.wall_s,
        sent=progress.sent,
        acknowledged=acknowledged,
        cpu_s_per_s=cpu_s / progress.wall_s,
    )


def _report(result: SimulatorResult, baseline_rate: float) -> None:
    print(f"-- {result.label}")
    print_figures(
        [
            ("elevators", f"{result.elevators}"),
            ("published", f"{result.rate:,.0f} msg/s over {result.wall_s:.1f} s"),
            ("acknowledged", f"{result.acknowledged} of {result.sent}"),
            ("pace (sim s per wall s)", f"{result.pace:.3f}"),
            ("process CPU", f"{result.cpu_s_per_s:.3f} s per s"),
            ("sustainable on one core", f"≈ {result.sustainable_elevators:,.0f} elevators"),
            ("publish rate / baseline", f"{result.rate / baseline_rate:.3f}"),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    args = parse_options("simulator", __doc__, argv, elevators=5000, seconds=30.0,
                         baseline_seconds=5.0)  # fmt: skip
    settings = local_stack_settings()
    require_file_limits(settings, args.elevators)
    specs = specs_from_registry(synthetic_registry(args.elevators, seed=1))
    accounts = [(s.site, s.elevator) for s in specs] + [(SITE, BASELINE_ELEVATOR)]
    with broker_accounts(settings, accounts):
        baseline = run_baseline(settings, args.baseline_seconds)
        at_1hz = run_simulator(
            settings,
            specs,
            seconds=args.seconds,
            idle_interval_s=1.0,
            label="every elevator at 1 Hz",
        )
        default = run_simulator(
            settings,
            specs,
            seconds=args.seconds,
            idle_interval_s=10.0,
            label="default rates (1 Hz moving, 10 s idle), morning peak",
        )
    baseline_rate = baseline.acknowledged / baseline.window_s
    print_figures([baseline_figure(baseline_rate)])
    for result in (at_1hz, default):
        _report(result, baseline_rate)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
