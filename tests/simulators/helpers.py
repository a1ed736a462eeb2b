"""Run small simulated fleets and decode what they publish."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import msgspec

from core.registry import ElevatorSpec
from simulators.fleet import Fleet
from simulators.scenario import ScheduledFault

START = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)
TOWER = ElevatorSpec(
    site="s1",
    elevator="e1",
    lowest_floor=-1,
    highest_floor=18,
    floor_height_m=3.0,
    rated_speed_mps=1.75,
    rated_load_kg=1000.0,
    acceleration_mps2=0.8,
    jerk_mps3=1.2,
)
WALKUP = ElevatorSpec("s1", "e2", 1, 6, 2.9, 1.0, 630.0, 0.6, 1.0)


@dataclass(frozen=True, slots=True)
class Decoded:
    """One published message, decoded."""

    t_s: float
    elevator: str
    kind: str
    body: dict[str, Any]


def run(
    specs: list[ElevatorSpec],
    *,
    until_s: float,
    faults: list[ScheduledFault] | None = None,
    seed: int = 7,
    traffic_scale: float = 0.0,
    start: dt.datetime = START,
) -> list[Decoded]:
    """Simulate and decode every message."""
    fleet = Fleet(specs, seed=seed, start=start, faults=faults or [], traffic_scale=traffic_scale)
    return [
        Decoded(m.t_s, m.elevator, m.kind, msgspec.json.decode(m.payload))
        for m in fleet.advance_to(until_s)
    ]


def telemetry(messages: list[Decoded]) -> list[Decoded]:
    """Only the telemetry samples."""
    return [m for m in messages if m.kind == "telemetry"]


def events(messages: list[Decoded], kind: str) -> list[Decoded]:
    """Only events of one type."""
    return [m for m in messages if m.kind == "event" and m.body["type"] == kind]


def longest_run_s(samples: list[Decoded], condition: Any) -> float:
    """Longest time span of consecutive samples that all satisfy `condition`."""
    best, run_start = 0.0, None
    for sample in samples:
        if condition(sample.body):
            run_start = sample.t_s if run_start is None else run_start
            best = max(best, sample.t_s - run_start)
        else:
            run_start = None
    return best
