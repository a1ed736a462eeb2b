"""No fault injected, no critical alert: 200 sample-registry elevators over a simulated day.

Each elevator runs in its own fleet (so idle hours are skipped) through the same detectors
the collector uses, with residential traffic and its morning and evening peaks. The two
machine cores share the elevators. Any critical raise fails the test with the elevator, the
type and the details, so a rule that misfires on normal traffic is found here.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import msgspec

from alerts.detector import AlertSignal, ElevatorDetector
from alerts.engine import reading_of
from alerts.rules import ElevatorLimits
from core.faults import Severity, resolve_thresholds
from core.protocol import DeviceEvent, TelemetrySample
from core.registry import SAMPLE_REGISTRY, ElevatorSpec, read_registry
from simulators.fleet import Fleet
from simulators.specs import specs_from_registry

ELEVATORS = 200
DAY_S = 86_400.0
START = dt.datetime(2026, 11, 28, 0, 0, tzinfo=dt.UTC)
HOUR_S = 3_600.0

_decode_sample = msgspec.json.Decoder(TelemetrySample).decode
_decode_event = msgspec.json.Decoder(DeviceEvent).decode
_decode_body = msgspec.json.Decoder(dict[str, Any]).decode


def _limits(spec: ElevatorSpec) -> ElevatorLimits:
    return ElevatorLimits(
        lowest_floor=spec.lowest_floor,
        highest_floor=spec.highest_floor,
        floor_height_m=spec.floor_height_m,
        rated_speed_mps=spec.rated_speed_mps,
        thresholds=resolve_thresholds(),
    )


def simulate_day(spec: ElevatorSpec) -> tuple[int, list[tuple[str, str, str, dict[str, Any]]]]:
    """Samples seen and every raise (elevator, type, severity, details) over one day."""
    fleet = Fleet([spec], seed=2026, start=START, traffic_scale=1.0)
    detector = ElevatorDetector(elevator=spec.elevator, site=spec.site, limits=_limits(spec))
    raised: list[AlertSignal] = []
    samples = 0
    t_s = 0.0
    while t_s < DAY_S:
        t_s = min(DAY_S, t_s + HOUR_S)
        for message in fleet.advance_to(t_s):
            received = START + dt.timedelta(seconds=message.t_s)
            if message.kind == "telemetry":
                sample = _decode_sample(message.payload)
                device_time = dt.datetime.fromisoformat(sample.ts)
                raised += detector.on_sample(reading_of(sample, device_time, received), received)
                samples += 1
            elif message.kind == "event":
                event = _decode_event(message.payload)
                body = _decode_body(message.payload)
                at_s = dt.datetime.fromisoformat(event.ts).timestamp()
                raised += detector.on_event(event.type, body, at_s, received)
    return samples, [
        (s.elevator, s.type, s.severity.value, dict(s.details))
        for s in raised
        if s.action == "raise"
    ]


def test_a_simulated_day_of_200_healthy_elevators_raises_no_critical_alert() -> None:
    specs = specs_from_registry(read_registry(SAMPLE_REGISTRY))[:ELEVATORS]
    assert len(specs) == ELEVATORS
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(simulate_day, specs, chunksize=4))
    samples = sum(count for count, _ in results)
    raises = [raise_ for _, found in results for raise_ in found]
    critical = [r for r in raises if r[2] == Severity.CRITICAL.value]
    assert samples > ELEVATORS * DAY_S / 10  # at least the idle heartbeat of every elevator
    assert critical == []
