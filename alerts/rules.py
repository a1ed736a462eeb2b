"""The detection rules of SPEC §4 as pure functions over one elevator's ordered stream.

Each `detect_*` function looks at the newest `Reading` and the elevator's `RuleMemory` (what
earlier samples left behind: when a condition started, whether the door was shut when the car
set off, the last stops' levelling) and returns a `Finding` while its rule holds, else None.
Durations are measured in device time between samples, so a backlog replayed after an outage
is judged as it happened. No I/O, no clock: `tests/alerts/test_rules.py` drives them with
hand-written sequences.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from core.faults import Severity, landing_count


@dataclass(frozen=True, slots=True)
class Reading:
    """One telemetry sample, reduced to what the rules read; `t_s` is device time."""

    t_s: float
    floor: int
    pos_m: float
    speed_mps: float
    door: str
    door_zone: bool
    door_lock: bool
    safety_chain: bool
    power: str
    occupied: bool
    mode: str
    vib_mg: float | None = None
    motor_c: float | None = None
    brake_c: float | None = None
    level_mm: float | None = None
    skew_s: float = 0.0  # device time minus receive time


@dataclass(frozen=True, slots=True)
class ElevatorLimits:
    """Registry facts and resolved thresholds (global, then site, then elevator)."""

    lowest_floor: int
    highest_floor: int
    floor_height_m: float
    rated_speed_mps: float
    thresholds: Mapping[str, float]

    @property
    def top_m(self) -> float:
        """Height of the top landing above the lowest one."""
        landings = landing_count(self.lowest_floor, self.highest_floor)
        return (landings - 1) * self.floor_height_m

    def __getitem__(self, name: str) -> float:
        return self.thresholds[name]


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that holds now, with the severity it holds at and what showed it."""

    type: str
    severity: Severity
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RuleMemory:
    """What the rules remember between samples of one elevator."""

    since_s: dict[str, float] = field(default_factory=dict)
    previous: Reading | None = None
    # Whether the door was closed and locked when the current movement began (None: at rest).
    set_off_closed: bool | None = None
    # Whether the door was not closed at the last sample at rest inside the door zone.
    open_in_zone: bool = False
    reopens_at_floor: int = 0
    trip_vibration_mg: list[float] = field(default_factory=list)
    last_trip_a95_mg: float | None = None
    stop_levels_mm: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    stop_recorded: bool = False

    def held_s(self, key: str, holds: bool, t_s: float) -> float:
        """How long `key` has held continuously up to `t_s` (-inf while it does not)."""
        if not holds:
            self.since_s.pop(key, None)
            return -math.inf
        return t_s - self.since_s.setdefault(key, t_s)


def stopped(r: Reading, limits: ElevatorLimits) -> bool:
    """The car stands still (below the stopped-speed threshold)."""
    return r.speed_mps < limits["stopped_speed_mps"]


def moving(r: Reading, limits: ElevatorLimits) -> bool:
    """The car moves (above the moving-speed threshold)."""
    return r.speed_mps > limits["moving_speed_mps"]


def door_shut(r: Reading) -> bool:
    """Door closed and its lock circuit made."""
    return r.door == "closed" and r.door_lock


# -- memory upkeep, run once per sample before the rules ----------------------------------------


def remember(mem: RuleMemory, r: Reading, limits: ElevatorLimits) -> None:
    """Update what the rules remember with reading `r` (before the rules read it)."""
    prev = mem.previous
    is_moving = moving(r, limits)
    if is_moving and mem.set_off_closed is None:
        # The car just set off: with the door shut now, or at the last sample at rest.
        before = prev if prev is not None and not moving(prev, limits) else r
        mem.set_off_closed = door_shut(r) or door_shut(before)
        if mem.set_off_closed:
            mem.open_in_zone = False
        mem.trip_vibration_mg.clear()
    elif stopped(r, limits) and mem.set_off_closed is not None:
        mem.set_off_closed = None
        _end_trip(mem)
    if is_moving:
        mem.reopens_at_floor = 0
        mem.stop_recorded = False
        if r.vib_mg is not None:
            mem.trip_vibration_mg.append(r.vib_mg)
    elif prev is not None and prev.door == "closing" and r.door in ("opening", "open"):
        mem.reopens_at_floor += 1
    if r.door_zone and stopped(r, limits):
        mem.open_in_zone = r.door != "closed"
    if r.level_mm is not None and stopped(r, limits) and r.door_zone and not mem.stop_recorded:
        mem.stop_levels_mm.append(r.level_mm)
        mem.stop_recorded = True


def _end_trip(mem: RuleMemory) -> None:
    samples = sorted(mem.trip_vibration_mg)
    if len(samples) >= 3:
        # Nearest-rank 95th percentile of the trip's vibration (ISO 18738-1 uses A95 per trip).
        mem.last_trip_a95_mg = samples[min(len(samples) - 1, math.ceil(0.95 * len(samples)) - 1)]
    mem.trip_vibration_mg.clear()


def count_reopens(mem: RuleMemory, reopens: int) -> None:
    """A `door_cycle` event reported `reopens` reopenings at the current floor."""
    mem.reopens_at_floor = max(mem.reopens_at_floor, reopens)


# -- the rules (SPEC §4, one function per type) --------------------------------------------------

_C, _MJ, _MN = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR


def detect_trapped_between_floors(
    r: Reading, mem: RuleMemory, limits: ElevatorLimits
) -> Finding | None:
    """Occupied, stopped outside the door zone for `trapped_s` (非平层关人)."""
    holds = r.occupied and stopped(r, limits) and not r.door_zone
    held = mem.held_s("trapped_between_floors", holds, r.t_s)
    if held >= limits["trapped_s"]:
        return Finding("trapped_between_floors", _C, {"floor": r.floor, "stopped_s": held})
    return None


def detect_trapped_at_floor(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Occupied, stopped in the door zone with the door closed for `trapped_s` (平层关人)."""
    holds = r.occupied and stopped(r, limits) and r.door_zone and r.door == "closed"
    held = mem.held_s("trapped_at_floor", holds, r.t_s)
    if held >= limits["trapped_s"]:
        return Finding("trapped_at_floor", _C, {"floor": r.floor, "door_closed_s": held})
    return None


def detect_door_open_while_running(
    r: Reading, mem: RuleMemory, limits: ElevatorLimits
) -> Finding | None:
    """The car set off with the door shut, then the door left closed while moving (运行中开门)."""
    if mem.set_off_closed and moving(r, limits) and not door_shut(r):
        return Finding(
            "door_open_while_running",
            _C,
            {"door": r.door, "door_lock": r.door_lock, "speed_mps": r.speed_mps},
        )
    return None


def detect_unintended_movement(
    r: Reading, mem: RuleMemory, limits: ElevatorLimits
) -> Finding | None:
    """The door was not shut first, then the car moves or leaves the door zone (开门走车)."""
    if r.door == "closed":
        return None
    set_off_open = moving(r, limits) and mem.set_off_closed is False
    left_zone_open = not r.door_zone and mem.open_in_zone and mem.set_off_closed is not True
    if set_off_open or left_zone_open:
        return Finding(
            "unintended_movement",
            _C,
            {"door": r.door, "speed_mps": r.speed_mps, "door_zone": r.door_zone},
        )
    return None


def detect_overspeed(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Speed above `overspeed_ratio` times rated for `overspeed_s` (超速)."""
    limit = limits["overspeed_ratio"] * limits.rated_speed_mps
    held = mem.held_s("overspeed", r.speed_mps > limit, r.t_s)
    # A single sample above the limit cannot show a duration; two in a row can.
    if held >= limits["overspeed_s"]:
        return Finding("overspeed", _C, {"speed_mps": r.speed_mps, "limit_mps": limit})
    return None


def detect_overtravel_top(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Car beyond the top landing (冲顶)."""
    if r.pos_m > limits.top_m + limits["overtravel_m"] or r.floor > limits.highest_floor:
        return Finding("overtravel_top", _C, {"pos_m": r.pos_m, "top_m": limits.top_m})
    return None


def detect_overtravel_bottom(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Car below the bottom landing (蹲底)."""
    if r.pos_m < -limits["overtravel_m"] or r.floor < limits.lowest_floor:
        return Finding("overtravel_bottom", _C, {"pos_m": r.pos_m})
    return None


def detect_safety_chain_open(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Safety circuit open: critical while moving, major at rest (安全回路断路)."""
    if r.safety_chain:
        return None
    severity = _C if not stopped(r, limits) else _MJ
    return Finding("safety_chain_open", severity, {"speed_mps": r.speed_mps})


def detect_door_lock_fault(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Lock not made while moving, or door closed without its lock for `door_lock_closed_s`."""
    shut_unlocked = r.door == "closed" and not r.door_lock
    held = mem.held_s("door_lock_fault", shut_unlocked, r.t_s)
    if (moving(r, limits) and not r.door_lock) or held >= limits["door_lock_closed_s"]:
        return Finding("door_lock_fault", _C, {"door": r.door, "speed_mps": r.speed_mps})
    return None


def detect_stopped_outside_door_zone(
    r: Reading, mem: RuleMemory, limits: ElevatorLimits
) -> Finding | None:
    """Empty car stopped outside the door zone for `stopped_outside_zone_s` (门区外停梯)."""
    holds = not r.occupied and stopped(r, limits) and not r.door_zone
    held = mem.held_s("stopped_outside_door_zone", holds, r.t_s)
    if held >= limits["stopped_outside_zone_s"]:
        return Finding("stopped_outside_door_zone", _MJ, {"floor": r.floor, "stopped_s": held})
    return None


def detect_door_open_failure(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Door `opening` for `door_opening_s` (开门故障)."""
    held = mem.held_s("door_open_failure", r.door == "opening", r.t_s)
    if held >= limits["door_opening_s"]:
        return Finding("door_open_failure", _MJ, {"floor": r.floor, "opening_s": held})
    return None


def detect_door_close_failure(
    r: Reading, mem: RuleMemory, limits: ElevatorLimits
) -> Finding | None:
    """Door `closing` for `door_closing_s`, or too many reopenings at one floor (关门故障)."""
    held = mem.held_s("door_close_failure", r.door == "closing", r.t_s)
    if held >= limits["door_closing_s"] or mem.reopens_at_floor >= limits["door_reopen_cycles"]:
        return Finding(
            "door_close_failure",
            _MJ,
            {"floor": r.floor, "closing_s": max(held, 0.0), "reopens": mem.reopens_at_floor},
        )
    return None


def detect_power_failure(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Power not from the mains (停电)."""
    if r.power != "mains":
        return Finding("power_failure", _MJ, {"power": r.power})
    return None


def detect_abnormal_vibration(
    r: Reading, mem: RuleMemory, limits: ElevatorLimits
) -> Finding | None:
    """Vibration above `vibration_mg` while moving for a while, or the last trip's A95 high."""
    over = r.vib_mg is not None and moving(r, limits) and r.vib_mg > limits["vibration_mg"]
    held = mem.held_s("abnormal_vibration", over, r.t_s)
    if held >= limits["vibration_sustained_s"]:
        return Finding("abnormal_vibration", _MN, {"vib_mg": r.vib_mg})
    a95 = mem.last_trip_a95_mg
    if a95 is not None and a95 > limits["vibration_a95_mg"]:
        return Finding("abnormal_vibration", _MN, {"trip_a95_mg": a95})
    return None


def _overheat(kind: str, celsius: float | None, limits: ElevatorLimits) -> Finding | None:
    if celsius is None or celsius < limits["overheat_minor_c"]:
        return None
    severity = _MJ if celsius >= limits["overheat_major_c"] else _MN
    return Finding(kind, severity, {"celsius": celsius})


def detect_motor_overheat(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Motor at or above 85 °C (minor) or 110 °C (major)."""
    return _overheat("motor_overheat", r.motor_c, limits)


def detect_brake_overheat(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Brake at or above 85 °C (minor) or 110 °C (major)."""
    return _overheat("brake_overheat", r.brake_c, limits)


def detect_levelling_error(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Levelling beyond ±`levelling_mm` at 3 of the last 5 stops."""
    window = list(mem.stop_levels_mm)[-int(limits["levelling_stops"]) :]
    bad = [level for level in window if abs(level) > limits["levelling_mm"]]
    if len(bad) >= limits["levelling_bad_stops"]:
        return Finding("levelling_error", _MN, {"stops_mm": window})
    return None


def detect_clock_skew(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> Finding | None:
    """Device time more than `clock_skew_s` away from the receive time."""
    if abs(r.skew_s) > limits["clock_skew_s"]:
        return Finding("clock_skew", Severity.INFO, {"skew_s": round(r.skew_s, 1)})
    return None


Rule = Callable[[Reading, RuleMemory, ElevatorLimits], Finding | None]

# One rule per fault type judged from telemetry (`core.faults`), named `detect_<type>`;
# tests/alerts/test_taxonomy.py ties the two.
SAMPLE_RULES: Final[tuple[Rule, ...]] = (
    detect_trapped_between_floors,
    detect_trapped_at_floor,
    detect_door_open_while_running,
    detect_unintended_movement,
    detect_overspeed,
    detect_overtravel_top,
    detect_overtravel_bottom,
    detect_safety_chain_open,
    detect_door_lock_fault,
    detect_stopped_outside_door_zone,
    detect_door_open_failure,
    detect_door_close_failure,
    detect_power_failure,
    detect_abnormal_vibration,
    detect_motor_overheat,
    detect_brake_overheat,
    detect_levelling_error,
    detect_clock_skew,
)


def evaluate(r: Reading, mem: RuleMemory, limits: ElevatorLimits) -> dict[str, Finding]:
    """Every sample rule that holds after reading `r`, by type."""
    remember(mem, r, limits)
    findings: dict[str, Finding] = {}
    for rule in SAMPLE_RULES:
        finding = rule(r, mem, limits)
        if finding is not None:
            findings[finding.type] = finding
    mem.previous = r
    return findings
