"""The fault taxonomy of SPEC §4: every alert type, its severity, what it is judged from, and
the default thresholds.

Chinese terms are those used by GB/T 24476 monitoring platforms. Each type is judged from one
source: an elevator's telemetry samples (one rule each in `alerts.rules`), its device events,
its status messages and silence, or the maintenance records (a periodic sweep); the detectors
take their sets of types from here. Thresholds resolve in three layers: these global
defaults, a site's overrides, then an elevator's overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal


class Severity(StrEnum):
    """How urgent an alert is; `critical` means people may be in danger."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    INFO = "info"


# What a fault is judged from: telemetry samples, device events (`alarm_button`,
# `fault_code`), status messages and silence, or the maintenance records.
FaultSource = Literal["telemetry", "event", "status", "records"]


@dataclass(frozen=True, slots=True)
class FaultType:
    """One row of the taxonomy."""

    name: str
    severity: Severity
    term_zh: str
    rule: str
    source: FaultSource = "telemetry"


_C, _MJ, _MN, _I = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.INFO

FAULT_TYPES: Final[tuple[FaultType, ...]] = (
    FaultType("trapped_between_floors", _C, "非平层关人", "occupied, stopped outside door zone"),
    FaultType("trapped_at_floor", _C, "平层关人", "occupied, stopped in door zone, door shut"),
    FaultType("door_open_while_running", _C, "运行中开门", "door leaves closed while moving"),
    FaultType("unintended_movement", _C, "开门走车", "car moves with the door not closed"),
    FaultType("overspeed", _C, "超速", "speed above 115 % of rated"),
    FaultType("overtravel_top", _C, "冲顶", "car beyond the top landing"),
    FaultType("overtravel_bottom", _C, "蹲底", "car beyond the bottom landing"),
    # Severity depends on motion: critical while moving, major otherwise.
    FaultType("safety_chain_open", _C, "安全回路断路", "safety chain open"),
    FaultType("door_lock_fault", _C, "门锁回路断路", "door lock not made"),
    FaultType("stopped_outside_door_zone", _MJ, "门区外停梯", "empty car stopped outside zone"),
    FaultType("door_open_failure", _MJ, "开门故障", "door stuck opening"),
    FaultType("door_close_failure", _MJ, "关门故障", "door stuck closing or reopening"),
    FaultType("power_failure", _MJ, "停电", "power not mains"),
    FaultType("offline", _MJ, "离线", "Last Will or silence", "status"),
    FaultType("alarm_button", _C, "报警按钮", "alarm button pressed", "event"),
    # Severity comes from the controller's fault code.
    FaultType("controller_fault", _MJ, "控制器故障", "fault_code event", "event"),
    FaultType("abnormal_vibration", _MN, "异常振动", "vibration above limit"),
    # minor at 85 °C, major at 110 °C.
    FaultType("motor_overheat", _MN, "电机过热", "motor temperature"),
    FaultType("brake_overheat", _MN, "制动器过热", "brake temperature"),
    FaultType("levelling_error", _MN, "平层误差", "levelling beyond tolerance"),
    FaultType("maintenance_overdue", _MN, "维保超期", "no maintenance for 15 days", "records"),
    FaultType("clock_skew", _I, "时钟偏差", "device clock off by more than 5 min"),
)

# The type names as a `Literal`, for schemas (OpenAPI enums); a test keeps it equal to the table.
FaultName = Literal[
    "trapped_between_floors", "trapped_at_floor", "door_open_while_running",
    "unintended_movement", "overspeed", "overtravel_top", "overtravel_bottom",
    "safety_chain_open", "door_lock_fault", "stopped_outside_door_zone", "door_open_failure",
    "door_close_failure", "power_failure", "offline", "alarm_button", "controller_fault",
    "abnormal_vibration", "motor_overheat", "brake_overheat", "levelling_error",
    "maintenance_overdue", "clock_skew",
]  # fmt: skip

FAULTS_BY_NAME: Final[Mapping[str, FaultType]] = {fault.name: fault for fault in FAULT_TYPES}


def fault_names(*sources: FaultSource) -> frozenset[str]:
    """The names of the fault types judged from any of `sources`."""
    return frozenset(fault.name for fault in FAULT_TYPES if fault.source in sources)


DEFAULT_THRESHOLDS: Final[Mapping[str, float]] = {
    "stopped_speed_mps": 0.05,
    "moving_speed_mps": 0.1,
    "trapped_s": 20.0,
    "overspeed_ratio": 1.15,
    "overspeed_s": 0.5,
    "overtravel_m": 0.1,
    "door_lock_closed_s": 5.0,
    "stopped_outside_zone_s": 45.0,
    "door_opening_s": 10.0,
    "door_closing_s": 15.0,
    "door_reopen_cycles": 5.0,
    "offline_intervals": 3.0,
    "idle_interval_s": 10.0,
    "vibration_mg": 30.0,
    "vibration_sustained_s": 3.0,
    "vibration_a95_mg": 25.0,
    "overheat_minor_c": 85.0,
    "overheat_major_c": 110.0,
    "levelling_mm": 10.0,
    "levelling_stops": 5.0,
    "levelling_bad_stops": 3.0,
    "maintenance_interval_days": 15.0,
    "clock_skew_s": 300.0,
    "hysteresis_s": 120.0,
    "offline_grace_s": 30.0,
    "escalate_ack_s": 300.0,
    "escalate_on_site_s": 1800.0,
}


# The values each threshold may take (inclusive), wide enough for any real installation and
# narrow enough that no value can break the detectors or the escalation timers (an
# `escalate_ack_s` of 1e18 overflows a datetime). docs/api.md lists them.
THRESHOLD_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "stopped_speed_mps": (0.001, 1.0),
    "moving_speed_mps": (0.01, 2.0),
    "trapped_s": (1.0, 3600.0),
    "overspeed_ratio": (1.0, 2.0),
    "overspeed_s": (0.05, 60.0),
    "overtravel_m": (0.01, 5.0),
    "door_lock_closed_s": (0.5, 600.0),
    "stopped_outside_zone_s": (1.0, 3600.0),
    "door_opening_s": (1.0, 600.0),
    "door_closing_s": (1.0, 600.0),
    "door_reopen_cycles": (1.0, 100.0),
    "offline_intervals": (1.0, 100.0),
    "idle_interval_s": (1.0, 3600.0),
    "vibration_mg": (1.0, 10_000.0),
    "vibration_sustained_s": (0.1, 3600.0),
    "vibration_a95_mg": (1.0, 10_000.0),
    "overheat_minor_c": (20.0, 250.0),
    "overheat_major_c": (20.0, 250.0),
    "levelling_mm": (1.0, 500.0),
    "levelling_stops": (1.0, 1000.0),
    "levelling_bad_stops": (1.0, 1000.0),
    "maintenance_interval_days": (1.0, 366.0),
    # Compared with the measured skew only: a huge value (1e9) turns the check off, which
    # replays and simulations of other days need.
    "clock_skew_s": (1.0, 1e10),
    "hysteresis_s": (0.0, 86_400.0),
    "offline_grace_s": (0.0, 86_400.0),
    "escalate_ack_s": (10.0, 86_400.0),
    "escalate_on_site_s": (60.0, 7 * 86_400.0),
}


def threshold_out_of_range(overrides: Mapping[str, object]) -> tuple[str, str] | None:
    """The first known threshold in `overrides` that is not a finite number within its
    range, with why: `(name, message)`; None when all are."""
    for name in sorted(overrides):
        if name not in THRESHOLD_RANGES:
            continue
        value = overrides[name]
        low, high = THRESHOLD_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return name, f"threshold {name} must be a number"
        if not low <= value <= high:  # NaN fails this too
            return name, f"threshold {name} must lie between {low:g} and {high:g}"
    return None


def unknown_threshold_names(overrides: Mapping[str, object]) -> list[str]:
    """Names in `overrides` that are not thresholds, so a typo is caught at import."""
    return sorted(set(overrides) - set(DEFAULT_THRESHOLDS))


def resolve_thresholds(
    site_overrides: Mapping[str, float] | None = None,
    elevator_overrides: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Global defaults, then the site's overrides, then the elevator's."""
    merged = dict(DEFAULT_THRESHOLDS)
    merged.update(site_overrides or {})
    merged.update(elevator_overrides or {})
    return merged


# Controller fault codes (GB/T 24476 numbering) that put people at risk; others are major.
CRITICAL_CONTROLLER_CODES: Final[frozenset[int]] = frozenset({1, 2, 3, 4, 5})
SEVERITY_RANK: Final[Mapping[Severity, int]] = {
    Severity.INFO: 0,
    Severity.MINOR: 1,
    Severity.MAJOR: 2,
    Severity.CRITICAL: 3,
}


def controller_fault_severity(code: object) -> Severity:
    """Severity of a controller fault code: critical for the codes in the safety set."""
    return Severity.CRITICAL if code in CRITICAL_CONTROLLER_CODES else Severity.MAJOR


def landing_count(lowest_floor: int, highest_floor: int) -> int:
    """Landings served; a building with basements has no floor 0 (B1 is followed by 1)."""
    count = highest_floor - lowest_floor + 1
    return count - 1 if lowest_floor < 0 <= highest_floor else count
