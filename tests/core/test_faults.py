from __future__ import annotations

import pytest

from core.faults import (
    DEFAULT_THRESHOLDS,
    FAULTS_BY_NAME,
    Severity,
    resolve_thresholds,
    unknown_threshold_names,
)

SPEC_TYPES = {
    "trapped_between_floors": "critical",
    "trapped_at_floor": "critical",
    "door_open_while_running": "critical",
    "unintended_movement": "critical",
    "overspeed": "critical",
    "overtravel_top": "critical",
    "overtravel_bottom": "critical",
    "safety_chain_open": "critical",
    "door_lock_fault": "critical",
    "stopped_outside_door_zone": "major",
    "door_open_failure": "major",
    "door_close_failure": "major",
    "power_failure": "major",
    "offline": "major",
    "alarm_button": "critical",
    "controller_fault": "major",
    "abnormal_vibration": "minor",
    "motor_overheat": "minor",
    "brake_overheat": "minor",
    "levelling_error": "minor",
    "maintenance_overdue": "minor",
    "clock_skew": "info",
}


@pytest.mark.parametrize(("name", "severity"), sorted(SPEC_TYPES.items()))
def test_every_spec_fault_type_has_its_base_severity(name: str, severity: str) -> None:
    assert FAULTS_BY_NAME[name].severity == Severity(severity)


def test_taxonomy_has_nothing_beyond_the_spec() -> None:
    assert set(FAULTS_BY_NAME) == set(SPEC_TYPES)


def test_spec_default_thresholds() -> None:
    assert DEFAULT_THRESHOLDS["trapped_s"] == 20
    assert DEFAULT_THRESHOLDS["overspeed_ratio"] == 1.15
    assert DEFAULT_THRESHOLDS["maintenance_interval_days"] == 15
    assert DEFAULT_THRESHOLDS["escalate_ack_s"] == 300
    assert DEFAULT_THRESHOLDS["escalate_on_site_s"] == 1800


def test_elevator_overrides_beat_site_overrides_beat_defaults() -> None:
    merged = resolve_thresholds({"trapped_s": 30, "door_opening_s": 12}, {"trapped_s": 25})
    assert merged["trapped_s"] == 25
    assert merged["door_opening_s"] == 12
    assert merged["overspeed_s"] == DEFAULT_THRESHOLDS["overspeed_s"]


def test_unknown_threshold_names_are_reported() -> None:
    assert unknown_threshold_names({"traped_s": 1, "trapped_s": 2}) == ["traped_s"]


def test_fault_name_literal_lists_every_fault_type_in_table_order() -> None:
    from typing import get_args  # noqa: PLC0415

    from core.faults import FAULT_TYPES, FaultName  # noqa: PLC0415

    assert get_args(FaultName) == tuple(fault.name for fault in FAULT_TYPES)


def test_every_default_threshold_lies_within_its_documented_range() -> None:
    from core.faults import DEFAULT_THRESHOLDS, THRESHOLD_RANGES  # noqa: PLC0415

    assert set(THRESHOLD_RANGES) == set(DEFAULT_THRESHOLDS)
    for name, value in DEFAULT_THRESHOLDS.items():
        low, high = THRESHOLD_RANGES[name]
        assert low <= value <= high, name


@pytest.mark.parametrize("value", [1e18, -1.0, float("nan"), float("inf"), True, "300"])
def test_an_escalation_threshold_outside_its_range_is_named(value: object) -> None:
    from core.faults import threshold_out_of_range  # noqa: PLC0415

    found = threshold_out_of_range({"escalate_ack_s": value})
    assert found is not None
    assert found[0] == "escalate_ack_s"
