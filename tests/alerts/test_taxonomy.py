"""The detectors take their fault types from the taxonomy (core.faults): every type has
exactly one way of being judged, and every telemetry type exactly one sample rule."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.detector import EVENT_TYPES, STREAM_TYPES, ElevatorDetector
from alerts.rules import SAMPLE_RULES, ElevatorLimits, Reading, RuleMemory, remember
from core.faults import FAULT_TYPES, FAULTS_BY_NAME, fault_names, resolve_thresholds

LIMITS = ElevatorLimits(
    lowest_floor=1, highest_floor=10, floor_height_m=3.0, rated_speed_mps=1.0,
    thresholds=resolve_thresholds(),
)  # fmt: skip
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _rule_type(rule: object) -> str:
    return str(getattr(rule, "__name__", "")).removeprefix("detect_")


def test_every_telemetry_fault_type_has_exactly_one_sample_rule() -> None:
    counts = Counter(_rule_type(rule) for rule in SAMPLE_RULES)
    assert set(counts) == fault_names("telemetry")
    assert set(counts.values()) == {1}


def test_every_fault_type_is_judged_from_the_stream_or_swept_from_the_records() -> None:
    swept = fault_names("records")
    assert swept == {"maintenance_overdue"}
    assert STREAM_TYPES.isdisjoint(swept)
    assert STREAM_TYPES | swept == set(FAULTS_BY_NAME)
    assert len(FAULT_TYPES) == len(FAULTS_BY_NAME)  # no type listed twice


def test_the_event_types_are_the_ones_device_events_raise() -> None:
    detector = ElevatorDetector(elevator="e1", site="s1", limits=LIMITS)
    raised = {
        signal.type
        for kind, body in (("alarm_button", {}), ("fault_code", {"code": 1}))
        for signal in detector.on_event(kind, body, 0.0, T0)
    }
    assert raised == EVENT_TYPES == fault_names("event")


def test_offline_is_the_status_type() -> None:
    detector = ElevatorDetector(elevator="e1", site="s1", limits=LIMITS)
    assert {signal.type for signal in detector.on_status(False, T0)} == fault_names("status")


readings = st.builds(
    Reading,
    t_s=st.floats(0, 1e6),
    floor=st.integers(-5, 15),
    pos_m=st.floats(-5, 40),
    speed_mps=st.floats(0, 3),
    door=st.sampled_from(["closed", "opening", "open", "closing"]),
    door_zone=st.booleans(),
    door_lock=st.booleans(),
    safety_chain=st.booleans(),
    power=st.sampled_from(["mains", "battery", "off"]),
    occupied=st.booleans(),
    mode=st.sampled_from(["normal", "inspection"]),
    vib_mg=st.none() | st.floats(0, 100),
    motor_c=st.none() | st.floats(0, 150),
    brake_c=st.none() | st.floats(0, 150),
    level_mm=st.none() | st.floats(-50, 50),
    skew_s=st.floats(-1000, 1000),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(readings, min_size=1, max_size=30))
def test_a_sample_rule_finds_only_its_own_fault_type(sequence: list[Reading]) -> None:
    memory = RuleMemory()
    for reading in sorted(sequence, key=lambda r: r.t_s):
        remember(memory, reading, LIMITS)
        for rule in SAMPLE_RULES:
            finding = rule(reading, memory, LIMITS)
            assert finding is None or finding.type == _rule_type(rule)
        memory.previous = reading
