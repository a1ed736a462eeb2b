"""Scripted fault scenarios: at time T, elevator E, fault F, duration D.

A scenario file is CSV with the header `at_s,elevator,fault,duration_s`; `at_s` counts
simulated seconds from the start, `duration_s` may be empty for the fault's default, and `fault`
is a SPEC §4 type or `mode:<mode>` to switch an operating mode (fire, inspection, …) for the
duration. Lines starting with `#` are comments.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, get_args

from core.protocol import Mode
from simulators.faults import SIMULATED_FAULTS

# How long each fault lasts when the scenario (or the random injector) does not say.
DEFAULT_DURATION_S: Final[dict[str, float]] = {
    "trapped_between_floors": 120.0,
    "trapped_at_floor": 90.0,
    "stopped_outside_door_zone": 90.0,
    "door_open_while_running": 60.0,
    "unintended_movement": 60.0,
    "overspeed": 60.0,
    "overtravel_top": 90.0,
    "overtravel_bottom": 90.0,
    "door_open_failure": 30.0,
    "door_close_failure": 40.0,
    "safety_chain_open": 60.0,
    "door_lock_fault": 60.0,
    "power_failure": 120.0,
    "offline": 120.0,
    "abnormal_vibration": 1800.0,
    "motor_overheat": 3600.0,
    "brake_overheat": 3600.0,
    "levelling_error": 3600.0,
    "maintenance_overdue": 20 * 86_400.0,
    "clock_skew": 900.0,
    "alarm_button": 0.0,
    "controller_fault": 0.0,
}
# Faults the random injector draws from (maintenance_overdue needs weeks, so only scripts).
RANDOM_FAULTS: Final = tuple(sorted(SIMULATED_FAULTS - {"maintenance_overdue"}))
MODES: Final = frozenset(get_args(Mode))


class ScenarioError(ValueError):
    """A scenario file line that cannot be used."""


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """One fault (or mode period) to start at `at_s` on `elevator`."""

    at_s: float
    elevator: str
    fault: str
    duration_s: float


def _validate_fault(name: str) -> None:
    if name.startswith("mode:"):
        if name.removeprefix("mode:") not in MODES:
            raise ScenarioError(f"unknown mode in {name!r}")
    elif name not in SIMULATED_FAULTS:
        raise ScenarioError(f"unknown fault {name!r}")


def parse_scenario(lines: Iterable[str], *, source: str) -> list[ScheduledFault]:
    """Read a scenario CSV; raise `ScenarioError` naming the first bad line."""
    rows = (line for line in lines if not line.lstrip().startswith("#"))
    reader = csv.DictReader(rows)
    required = {"at_s", "elevator", "fault"}
    if not required <= set(reader.fieldnames or []):
        raise ScenarioError(f"{source}: needs the columns at_s,elevator,fault[,duration_s]")
    faults = []
    for row in reader:
        try:
            name = (row["fault"] or "").strip()
            _validate_fault(name)
            at_s = float(row["at_s"])
            raw_duration = (row.get("duration_s") or "").strip()
            duration = float(raw_duration) if raw_duration else DEFAULT_DURATION_S.get(name, 60.0)
            if at_s < 0 or duration < 0:
                raise ScenarioError("times must not be negative")
        except (ValueError, TypeError) as exc:
            raise ScenarioError(f"{source} line {reader.line_num}: {exc}") from None
        faults.append(ScheduledFault(at_s, (row["elevator"] or "").strip(), name, duration))
    return sorted(faults, key=lambda f: f.at_s)


def load_scenario(path: Path) -> list[ScheduledFault]:
    """Read a scenario file."""
    with path.open(encoding="utf-8", newline="") as handle:
        return parse_scenario(handle, source=str(path))


def random_faults(
    elevators: Sequence[str],
    *,
    duration_s: float,
    faults_per_elevator_day: float,
    rng: random.Random,
) -> list[ScheduledFault]:
    """Faults at random times: a Poisson process per elevator, types drawn uniformly."""
    if faults_per_elevator_day <= 0:
        return []
    rate_per_s = faults_per_elevator_day / 86_400.0
    scheduled = []
    for elevator in elevators:
        t = rng.expovariate(rate_per_s)
        while t < duration_s:
            name = rng.choice(RANDOM_FAULTS)
            scheduled.append(ScheduledFault(t, elevator, name, DEFAULT_DURATION_S[name]))
            t += rng.expovariate(rate_per_s)
    return sorted(scheduled, key=lambda f: (f.at_s, f.elevator))
