"""`liftledger simulate`: build a fleet from the options and run it to MQTT or a file."""

from __future__ import annotations

import datetime as dt
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from core.credentials import device_credentials
from core.errors import ConfigError, RegistryError
from core.protocol import parse_topic
from core.registry import ElevatorSpec, ParsedRegistry, read_registry
from core.settings import Settings
from simulators.bad_input import OWN_TOPIC_KINDS, BadMessage, bad_message
from simulators.fleet import Fleet
from simulators.mqtt_device import DeviceIdentity
from simulators.publisher import FleetPublisher
from simulators.runner import JsonLinesSink, MqttSink, Progress, replay, run_fleet
from simulators.scenario import ScenarioError, ScheduledFault, load_scenario, random_faults
from simulators.specs import synthetic_registry

CONNECT_TIMEOUT_S = 120.0
FLUSH_TIMEOUT_S = 60.0
_DURATION_RE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[smhd]?)$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `24h`, `2d` → seconds."""
    match = _DURATION_RE.match(text.strip())
    if match is None:
        raise ConfigError(f"duration {text!r} must look like 90s, 15m, 24h or 2d")
    return float(match["n"]) * _UNIT_S[match["unit"]]


@dataclass(frozen=True, slots=True)
class SimulateOptions:
    """What `liftledger simulate` was asked to do."""

    elevators: int | None
    registry: Path | None
    speedup: float | None
    seed: int
    faults: str | None
    fault_rate_per_day: float
    duration_s: float
    dry_run: Path | None
    start: dt.datetime | None
    traffic_scale: float
    idle_interval_s: float
    replay: Path | None
    bad_input: int


def registry_for(options: SimulateOptions) -> ParsedRegistry | None:
    """The registry the options name (`--registry`, `--elevators`), or None for the database's."""
    if options.registry is not None:
        return read_registry(options.registry)
    if options.elevators is not None:
        if options.elevators < 1:
            raise ConfigError("--elevators must be at least 1")
        return synthetic_registry(options.elevators, seed=options.seed)
    return None


def _faults(options: SimulateOptions, specs: list[ElevatorSpec]) -> list[ScheduledFault]:
    if options.faults is None:
        return []
    if options.faults == "random":
        return random_faults(
            [s.elevator for s in specs],
            duration_s=options.duration_s,
            faults_per_elevator_day=options.fault_rate_per_day,
            rng=random.Random(options.seed),
        )
    try:
        return load_scenario(Path(options.faults))
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {options.faults}: {exc.strerror}") from exc
    except ScenarioError as exc:
        raise ConfigError(str(exc)) from exc


def _say_progress(progress: Progress) -> None:
    sys.stderr.write("\r" + progress.line() + "   ")
    sys.stderr.flush()


def run_live(options: SimulateOptions, settings: Settings, specs: list[ElevatorSpec]) -> Progress:
    """Publish the fleet (or a recording) through one MQTT identity per elevator."""
    if not specs:
        raise RegistryError("no elevators to simulate: import a registry or pass --elevators")
    secret = settings.secret("mqtt_secret")
    identities = []
    for spec in specs:
        creds = device_credentials(secret, spec.elevator)
        identities.append(DeviceIdentity(spec.site, spec.elevator, creds.username, creds.password))
    publisher = FleetPublisher(mqtt_url=settings.resolved_mqtt_url(), devices=identities)
    try:
        publisher.start()
        connected = publisher.wait_connected(CONNECT_TIMEOUT_S)
        sys.stderr.write(f"{connected} of {len(specs)} elevators connected\n")
        if options.replay is not None:
            sent = replay(
                options.replay,
                publisher,
                elevator_of=lambda topic: t.elevator if (t := parse_topic(topic)) else None,
                speedup=options.speedup,
            )
            publisher.flush(FLUSH_TIMEOUT_S)
            return Progress(sent=sent)
        fleet = _fleet(options, specs)
        progress = run_fleet(
            fleet,
            MqttSink(publisher),
            duration_s=options.duration_s,
            speedup=options.speedup if options.speedup is not None else 1.0,
            on_progress=_say_progress,
        )
        for bad in _bad_input(options, specs, dt.datetime.now(dt.UTC)):
            elevator = specs[0].elevator if (t := parse_topic(bad.topic)) is None else t.elevator
            publisher.publish_raw(elevator, bad.topic, bad.payload)
            publisher.pump(0.0)
            progress.sent += 1
        publisher.flush(FLUSH_TIMEOUT_S)
        return progress
    finally:
        publisher.close()


def _fleet(options: SimulateOptions, specs: list[ElevatorSpec]) -> Fleet:
    start = options.start or dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        return Fleet(
            specs,
            seed=options.seed,
            start=start,
            faults=_faults(options, specs),
            traffic_scale=options.traffic_scale,
            idle_interval_s=options.idle_interval_s,
        )
    except ValueError as exc:  # a scenario naming an elevator that is not simulated
        raise ConfigError(str(exc)) from exc


def _bad_input(
    options: SimulateOptions, specs: list[ElevatorSpec], now: dt.datetime
) -> list[BadMessage]:
    """`--bad-input N`: N messages of each kind a device can send, spread over the fleet."""
    rng = random.Random(options.seed)
    messages = []
    for index in range(options.bad_input * len(OWN_TOPIC_KINDS)):
        spec = specs[index % len(specs)]
        kind = OWN_TOPIC_KINDS[index % len(OWN_TOPIC_KINDS)]
        messages.append(bad_message(kind, site=spec.site, elevator=spec.elevator, now=now, rng=rng))
    return messages


def dry_run(options: SimulateOptions, specs: list[ElevatorSpec], path: Path) -> Progress:
    """Write the fleet's messages as JSON lines instead of publishing them."""
    fleet = _fleet(options, specs)
    with path.open("w", encoding="utf-8") as handle:
        sink = JsonLinesSink(handle)
        for message in fleet.online_messages():
            sink.send(message, speedup=0.0)
        progress = run_fleet(
            fleet,
            sink,
            duration_s=options.duration_s,
            speedup=options.speedup,
            on_progress=_say_progress,
        )
        end = dt.datetime.fromisoformat(fleet.timestamp(fleet.t_s).replace("Z", "+00:00"))
        for bad in _bad_input(options, specs, end):
            sink.write(fleet.t_s, bad.topic, bad.payload, retain=False)
            progress.sent += 1
    return progress
