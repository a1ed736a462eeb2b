"""The SPEC §4 sample rules, driven by hand-written sequences of readings in device time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from alerts.rules import (
    SAMPLE_RULES,
    ElevatorLimits,
    Finding,
    Reading,
    RuleMemory,
    count_reopens,
    evaluate,
)
from core.faults import Severity, resolve_thresholds
from tests.factories import reading

# Floors 1..10, 3 m apart, so the top landing is 27 m above the bottom one.
LIMITS = ElevatorLimits(
    lowest_floor=1,
    highest_floor=10,
    floor_height_m=3.0,
    rated_speed_mps=1.0,
    thresholds=resolve_thresholds(),
)
# One basement (B1 = -1, then 1: there is no floor 0), so -1..5 is six landings, top at 15 m.
BASEMENT_LIMITS = dataclasses.replace(LIMITS, lowest_floor=-1, highest_floor=5)

COVERED_TYPES = {
    "trapped_between_floors",
    "trapped_at_floor",
    "door_open_while_running",
    "unintended_movement",
    "overspeed",
    "overtravel_top",
    "overtravel_bottom",
    "safety_chain_open",
    "door_lock_fault",
    "stopped_outside_door_zone",
    "door_open_failure",
    "door_close_failure",
    "power_failure",
    "abnormal_vibration",
    "motor_overheat",
    "brake_overheat",
    "levelling_error",
    "clock_skew",
}


def run(
    readings: Iterable[Reading], limits: ElevatorLimits = LIMITS, memory: RuleMemory | None = None
) -> list[dict[str, Finding]]:
    """The findings after each reading, fed in order through one memory."""
    mem = RuleMemory() if memory is None else memory
    return [evaluate(r, mem, limits) for r in readings]


def fired(kind: str, readings: Iterable[Reading], limits: ElevatorLimits = LIMITS) -> list[bool]:
    """Whether rule `kind` held after each reading."""
    return [kind in findings for findings in run(readings, limits)]


def test_every_sample_rule_has_its_tests_here() -> None:
    names = {rule.__name__.removeprefix("detect_") for rule in SAMPLE_RULES}
    assert names == COVERED_TYPES


def test_a_healthy_idle_car_holds_no_rule() -> None:
    assert run([reading(t) for t in (0.0, 10.0, 60.0, 600.0)]) == [{}, {}, {}, {}]


# -- trapped passengers ---------------------------------------------------------------------


def test_trapped_between_floors_fires_at_twenty_seconds_not_before() -> None:
    stuck = {"occupied": True, "door_zone": False, "floor": 3, "pos_m": 7.4}
    times = (0.0, 10.0, 19.9, 20.0, 30.0)
    assert fired("trapped_between_floors", [reading(t, **stuck) for t in times]) == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_trapped_between_floors_is_critical_and_reports_how_long() -> None:
    stuck = {"occupied": True, "door_zone": False, "floor": 3, "pos_m": 7.4}
    last = run([reading(5.0, **stuck), reading(27.0, **stuck)])[-1]
    assert last["trapped_between_floors"].severity is Severity.CRITICAL
    assert last["trapped_between_floors"].details == {"floor": 3, "stopped_s": 22.0}


def test_trapped_between_floors_clears_when_the_car_moves_on() -> None:
    stuck = {"occupied": True, "door_zone": False, "floor": 3, "pos_m": 7.4}
    seq = [reading(0.0, **stuck), reading(20.0, **stuck), reading(21.0, **stuck, speed_mps=0.4)]
    assert fired("trapped_between_floors", seq) == [False, True, False]


def test_trapped_between_floors_needs_the_car_below_the_stopped_speed() -> None:
    creeping = {"occupied": True, "door_zone": False, "pos_m": 7.4, "speed_mps": 0.05}
    crawling = {"occupied": True, "door_zone": False, "pos_m": 7.4, "speed_mps": 0.049}
    assert fired("trapped_between_floors", [reading(t, **creeping) for t in (0.0, 30.0)]) == [
        False,
        False,
    ]
    assert fired("trapped_between_floors", [reading(t, **crawling) for t in (0.0, 30.0)]) == [
        False,
        True,
    ]


def test_an_empty_car_between_floors_is_not_a_trapped_passenger() -> None:
    empty = {"occupied": False, "door_zone": False, "pos_m": 7.4}
    assert fired("trapped_between_floors", [reading(t, **empty) for t in (0.0, 60.0)]) == [
        False,
        False,
    ]


def test_trapped_at_floor_fires_at_twenty_seconds_not_before() -> None:
    inside = {"occupied": True, "floor": 4, "pos_m": 9.0}
    times = (0.0, 19.9, 20.0)
    assert fired("trapped_at_floor", [reading(t, **inside) for t in times]) == [False, False, True]


def test_trapped_at_floor_clears_when_the_door_opens() -> None:
    inside = {"occupied": True, "floor": 4, "pos_m": 9.0}
    seq = [reading(0.0, **inside), reading(20.0, **inside), reading(21.0, **inside, door="open")]
    assert fired("trapped_at_floor", seq) == [False, True, False]


def test_trapped_at_floor_counts_again_from_the_last_time_the_door_was_open() -> None:
    inside = {"occupied": True, "floor": 4, "pos_m": 9.0}
    seq = [
        reading(0.0, **inside),
        reading(15.0, **inside, door="open"),
        reading(16.0, **inside),
        reading(35.9, **inside),
        reading(36.0, **inside),
    ]
    assert fired("trapped_at_floor", seq) == [False, False, False, False, True]


# -- door open while running vs unintended movement ------------------------------------------


def test_door_opening_on_a_car_that_set_off_shut_is_door_open_while_running_only() -> None:
    seq = [
        reading(0.0),
        reading(1.0, speed_mps=0.4),
        reading(2.0, speed_mps=1.0, door_zone=False, pos_m=1.0),
        reading(3.0, speed_mps=1.0, door_zone=False, pos_m=2.0, door="opening", door_lock=False),
    ]
    results = run(seq)
    assert ["door_open_while_running" in f for f in results] == [False, False, False, True]
    assert ["unintended_movement" in f for f in results] == [False, False, False, False]
    assert results[-1]["door_open_while_running"].severity is Severity.CRITICAL


def test_door_lock_lost_while_running_is_door_open_while_running() -> None:
    seq = [
        reading(0.0),
        reading(1.0, speed_mps=1.0, door_zone=False, pos_m=1.0),
        reading(2.0, speed_mps=1.0, door_zone=False, pos_m=2.0, door_lock=False),
    ]
    assert fired("door_open_while_running", seq) == [False, False, True]


def test_door_open_while_running_needs_the_car_above_the_moving_speed() -> None:
    seq = [
        reading(0.0),
        reading(1.0, speed_mps=1.0, door_zone=False, pos_m=1.0),
        reading(2.0, speed_mps=0.1, door_zone=False, pos_m=1.5, door="opening", door_lock=False),
        reading(3.0, speed_mps=0.11, door_zone=False, pos_m=1.6, door="opening", door_lock=False),
    ]
    assert fired("door_open_while_running", seq) == [False, False, False, True]


def test_door_open_while_running_clears_when_the_car_stops() -> None:
    seq = [
        reading(0.0),
        reading(1.0, speed_mps=1.0, door_zone=False, pos_m=1.0),
        reading(2.0, speed_mps=1.0, door_zone=False, pos_m=2.0, door="open", door_lock=False),
        reading(3.0, speed_mps=0.0, door_zone=False, pos_m=2.5, door="open", door_lock=False),
    ]
    assert fired("door_open_while_running", seq) == [False, False, True, False]


def test_door_opening_in_the_door_zone_after_a_shut_set_off_is_not_unintended_movement() -> None:
    # The car set off shut and the door opened while it still ran through the door zone: the
    # door was shut first, so this is door_open_while_running, however far the car then goes.
    seq = [
        reading(0.0),
        reading(1.0, speed_mps=0.3, pos_m=0.05),
        reading(2.0, speed_mps=0.4, pos_m=0.1, door="opening", door_lock=False),
        reading(3.0, speed_mps=0.5, pos_m=0.6, door_zone=False, door="open", door_lock=False),
    ]
    results = run(seq)
    assert ["door_open_while_running" in f for f in results] == [False, False, True, True]
    assert ["unintended_movement" in f for f in results] == [False, False, False, False]


def test_a_door_open_at_the_previous_landing_does_not_make_a_later_opening_unintended() -> None:
    # Idle samples come every 10 s, so the door's closing at the landing may go unseen; the car
    # is seen next already running shut outside the zone, and then its door opens.
    seq = [
        reading(0.0, door="open", door_lock=False),
        reading(10.0, speed_mps=1.0, door_zone=False, pos_m=1.5),
        reading(11.0, speed_mps=1.0, door_zone=False, pos_m=2.5, door="opening", door_lock=False),
    ]
    results = run(seq)
    assert ["door_open_while_running" in f for f in results] == [False, False, True]
    assert ["unintended_movement" in f for f in results] == [False, False, False]


def test_car_moving_off_with_the_door_open_is_unintended_movement_only() -> None:
    seq = [
        reading(0.0, door="open", door_lock=False),
        reading(1.0, door="open", door_lock=False, speed_mps=0.1),
        reading(2.0, door="open", door_lock=False, speed_mps=0.11, pos_m=0.02),
    ]
    results = run(seq)
    assert ["unintended_movement" in f for f in results] == [False, False, True]
    assert ["door_open_while_running" in f for f in results] == [False, False, False]
    assert results[-1]["unintended_movement"].severity is Severity.CRITICAL


def test_car_leaving_the_door_zone_with_the_door_open_is_unintended_movement() -> None:
    seq = [
        reading(0.0, door="open", door_lock=False),
        reading(1.0, door="open", door_lock=False, speed_mps=0.04, pos_m=0.04),
        reading(2.0, door="open", door_lock=False, speed_mps=0.04, pos_m=0.25, door_zone=False),
    ]
    results = run(seq)
    assert ["unintended_movement" in f for f in results] == [False, False, True]
    assert ["door_open_while_running" in f for f in results] == [False, False, False]


def test_unintended_movement_clears_once_the_door_is_closed() -> None:
    seq = [
        reading(0.0, door="open", door_lock=False),
        reading(1.0, door="open", door_lock=False, speed_mps=0.5, pos_m=0.3, door_zone=False),
        reading(2.0, door="closed", speed_mps=0.0, pos_m=0.6, door_zone=False),
    ]
    assert fired("unintended_movement", seq) == [False, True, False]


def test_a_normal_trip_door_closed_before_set_off_fires_neither_door_rule() -> None:
    seq = [
        reading(0.0, door="open", door_lock=False, occupied=True),
        reading(5.0, door="closing", door_lock=False, occupied=True),
        reading(8.0, occupied=True),
        reading(9.0, speed_mps=0.6, pos_m=0.3, door_zone=False, occupied=True),
        reading(12.0, speed_mps=1.0, pos_m=3.0, floor=2, door_zone=False, occupied=True),
        reading(15.0, floor=3, pos_m=6.0, occupied=True),
        reading(16.0, floor=3, pos_m=6.0, door="opening", door_lock=False, occupied=True),
    ]
    results = run(seq)
    assert all(
        "door_open_while_running" not in f and "unintended_movement" not in f for f in results
    )


# -- speed and travel ------------------------------------------------------------------------


def test_overspeed_fires_after_half_a_second_above_115_percent_not_before() -> None:
    times = (10.0, 10.25, 10.49, 10.5, 11.0)
    seq = [reading(t, speed_mps=1.2, door_zone=False, pos_m=5.0) for t in times]
    assert fired("overspeed", seq) == [False, False, False, True, True]


def test_overspeed_finding_is_critical_with_the_limit() -> None:
    seq = [reading(t, speed_mps=1.2, door_zone=False, pos_m=5.0) for t in (0.0, 0.5)]
    finding = run(seq)[-1]["overspeed"]
    assert finding.severity is Severity.CRITICAL
    assert finding.details == {"speed_mps": 1.2, "limit_mps": pytest.approx(1.15)}


def test_overspeed_at_exactly_115_percent_does_not_fire() -> None:
    seq = [reading(t, speed_mps=1.15, door_zone=False, pos_m=5.0) for t in (0.0, 1.0, 5.0)]
    assert fired("overspeed", seq) == [False, False, False]


def test_overspeed_clears_when_speed_drops_and_a_dip_restarts_the_half_second() -> None:
    moving = {"door_zone": False, "pos_m": 5.0}
    seq = [
        reading(0.0, speed_mps=1.2, **moving),
        reading(0.5, speed_mps=1.2, **moving),
        reading(0.75, speed_mps=1.0, **moving),
        reading(1.0, speed_mps=1.2, **moving),
        reading(1.25, speed_mps=1.2, **moving),
        reading(1.5, speed_mps=1.2, **moving),
    ]
    assert fired("overspeed", seq) == [False, True, False, False, False, True]


def test_overspeed_scales_with_the_rated_speed() -> None:
    fast = dataclasses.replace(LIMITS, rated_speed_mps=2.5)
    seq = [reading(t, speed_mps=2.8, door_zone=False, pos_m=5.0) for t in (0.0, 1.0)]
    assert fired("overspeed", seq, fast) == [False, False]
    faster = [reading(t, speed_mps=2.9, door_zone=False, pos_m=5.0) for t in (0.0, 1.0)]
    assert fired("overspeed", faster, fast) == [False, True]


def test_overtravel_top_fires_by_position_beyond_the_top_landing() -> None:
    assert LIMITS.top_m == 27.0
    seq = [
        reading(0.0, floor=10, pos_m=27.0),
        reading(1.0, floor=10, pos_m=27.1, door_zone=False),
        reading(2.0, floor=10, pos_m=27.11, door_zone=False),
        reading(3.0, floor=10, pos_m=27.0),
    ]
    results = run(seq)
    assert ["overtravel_top" in f for f in results] == [False, False, True, False]
    assert results[2]["overtravel_top"].severity is Severity.CRITICAL


def test_overtravel_top_fires_by_a_floor_above_the_highest_served() -> None:
    seq = [reading(0.0, floor=10, pos_m=27.0), reading(1.0, floor=11, pos_m=27.0)]
    assert fired("overtravel_top", seq) == [False, True]


def test_overtravel_top_with_basements_uses_the_landing_count_without_floor_zero() -> None:
    assert BASEMENT_LIMITS.top_m == 15.0
    seq = [
        reading(0.0, floor=5, pos_m=15.0),
        reading(1.0, floor=5, pos_m=15.1, door_zone=False),
        reading(2.0, floor=5, pos_m=15.5, door_zone=False),
        reading(3.0, floor=6, pos_m=15.0),
        reading(4.0, floor=5, pos_m=15.0),
    ]
    assert fired("overtravel_top", seq, BASEMENT_LIMITS) == [False, False, True, True, False]


def test_overtravel_bottom_fires_by_position_below_the_bottom_landing() -> None:
    seq = [
        reading(0.0, pos_m=0.0),
        reading(1.0, pos_m=-0.1, door_zone=False),
        reading(2.0, pos_m=-0.11, door_zone=False),
        reading(3.0, pos_m=0.0),
    ]
    results = run(seq)
    assert ["overtravel_bottom" in f for f in results] == [False, False, True, False]
    assert results[2]["overtravel_bottom"].severity is Severity.CRITICAL


def test_overtravel_bottom_fires_by_a_floor_below_the_lowest_basement() -> None:
    seq = [
        reading(0.0, floor=-1, pos_m=0.0),
        reading(1.0, floor=-2, pos_m=0.0),
        reading(2.0, floor=-1, pos_m=0.0),
    ]
    assert fired("overtravel_bottom", seq, BASEMENT_LIMITS) == [False, True, False]


def test_floor_one_above_a_basement_is_not_overtravel() -> None:
    seq = [reading(0.0, floor=1, pos_m=3.0), reading(1.0, floor=-1, pos_m=0.0)]
    results = run(seq, BASEMENT_LIMITS)
    assert all("overtravel_top" not in f and "overtravel_bottom" not in f for f in results)


# -- circuits and power ----------------------------------------------------------------------


def test_safety_chain_open_is_major_at_rest_and_critical_while_moving() -> None:
    seq = [
        reading(0.0),
        reading(1.0, safety_chain=False),
        reading(2.0, safety_chain=False, speed_mps=1.0, door_zone=False, pos_m=1.0),
        reading(3.0, safety_chain=True, speed_mps=1.0, door_zone=False, pos_m=2.0),
    ]
    results = run(seq)
    assert "safety_chain_open" not in results[0]
    assert results[1]["safety_chain_open"].severity is Severity.MAJOR
    assert results[2]["safety_chain_open"].severity is Severity.CRITICAL
    assert "safety_chain_open" not in results[3]


def test_door_lock_fault_fires_after_five_seconds_closed_without_the_lock_not_before() -> None:
    seq = [
        reading(0.0, door_lock=False),
        reading(4.9, door_lock=False),
        reading(5.0, door_lock=False),
        reading(6.0, door_lock=True),
    ]
    results = run(seq)
    assert ["door_lock_fault" in f for f in results] == [False, False, True, False]
    assert results[2]["door_lock_fault"].severity is Severity.CRITICAL


def test_door_lock_fault_fires_at_once_while_moving_above_the_moving_speed() -> None:
    at_limit = evaluate(reading(0.0, door_lock=False, speed_mps=0.1), RuleMemory(), LIMITS)
    above = evaluate(reading(0.0, door_lock=False, speed_mps=0.11), RuleMemory(), LIMITS)
    assert "door_lock_fault" not in at_limit
    assert "door_lock_fault" in above


def test_an_open_door_without_its_lock_is_not_a_door_lock_fault() -> None:
    seq = [reading(t, door="open", door_lock=False) for t in (0.0, 30.0)]
    assert fired("door_lock_fault", seq) == [False, False]


@pytest.mark.parametrize("power", ["battery", "off"])
def test_power_failure_holds_while_power_is_not_mains(power: str) -> None:
    seq = [reading(0.0), reading(1.0, power=power), reading(2.0)]
    results = run(seq)
    assert ["power_failure" in f for f in results] == [False, True, False]
    assert results[1]["power_failure"].severity is Severity.MAJOR
    assert results[1]["power_failure"].details == {"power": power}


# -- stopping and doors ----------------------------------------------------------------------


def test_empty_car_stopped_outside_door_zone_fires_at_45_seconds_not_before() -> None:
    out = {"door_zone": False, "pos_m": 4.4}
    seq = [
        reading(0.0, **out),
        reading(44.9, **out),
        reading(45.0, **out),
        reading(46.0, **out, speed_mps=0.5),
    ]
    results = run(seq)
    assert ["stopped_outside_door_zone" in f for f in results] == [False, False, True, False]
    assert results[2]["stopped_outside_door_zone"].severity is Severity.MAJOR


def test_door_open_failure_fires_after_ten_seconds_opening_not_before() -> None:
    seq = [
        reading(0.0, door="opening", door_lock=False),
        reading(9.9, door="opening", door_lock=False),
        reading(10.0, door="opening", door_lock=False),
        reading(11.0, door="open", door_lock=False),
    ]
    results = run(seq)
    assert ["door_open_failure" in f for f in results] == [False, False, True, False]
    assert results[2]["door_open_failure"].severity is Severity.MAJOR


def test_door_close_failure_fires_after_fifteen_seconds_closing_not_before() -> None:
    seq = [
        reading(0.0, door="closing", door_lock=False),
        reading(14.9, door="closing", door_lock=False),
        reading(15.0, door="closing", door_lock=False),
        reading(16.0),
    ]
    results = run(seq)
    assert ["door_close_failure" in f for f in results] == [False, False, True, False]
    assert results[2]["door_close_failure"].severity is Severity.MAJOR


def reopen_cycles(start_s: float, cycles: int) -> list[Reading]:
    """`cycles` times: the door starts closing, then reopens (closing → opening) at rest."""
    seq: list[Reading] = []
    for i in range(cycles):
        t = start_s + 4.0 * i
        seq += [
            reading(t, door="open", door_lock=False),
            reading(t + 1.0, door="closing", door_lock=False),
            reading(t + 2.0, door="opening", door_lock=False),
        ]
    return seq


def test_door_close_failure_fires_at_the_fifth_reopen_not_the_fourth() -> None:
    results = run(reopen_cycles(0.0, 5))
    holds = ["door_close_failure" in f for f in results]
    assert holds[:-1] == [False] * 14
    assert holds[-1]
    assert results[-1]["door_close_failure"].details["reopens"] == 5


def test_door_close_failure_from_reopens_holds_until_the_car_moves() -> None:
    seq = [
        *reopen_cycles(0.0, 5),
        reading(30.0, door="open", door_lock=False),
        reading(40.0),
        reading(41.0, speed_mps=0.5, door_zone=False, pos_m=0.4),
        reading(45.0, floor=2, pos_m=3.0),
    ]
    assert fired("door_close_failure", seq)[-4:] == [True, True, False, False]


def test_reopens_at_one_floor_do_not_carry_over_to_the_next_floor() -> None:
    seq = [
        *reopen_cycles(0.0, 4),
        reading(20.0),
        reading(21.0, speed_mps=1.0, door_zone=False, pos_m=1.5),
        reading(24.0, floor=2, pos_m=3.0),
        *[dataclasses.replace(r, floor=2, pos_m=3.0) for r in reopen_cycles(25.0, 1)],
    ]
    assert not any(fired("door_close_failure", seq))


def test_door_cycle_reopens_count_towards_door_close_failure() -> None:
    mem = RuleMemory()
    count_reopens(mem, 4)
    assert "door_close_failure" not in evaluate(reading(0.0), mem, LIMITS)
    count_reopens(mem, 5)
    assert "door_close_failure" in evaluate(reading(1.0), mem, LIMITS)
    moved = evaluate(reading(2.0, speed_mps=0.5, door_zone=False, pos_m=0.5), mem, LIMITS)
    assert "door_close_failure" not in moved


def test_a_lower_door_cycle_reopen_count_does_not_lower_the_observed_count() -> None:
    mem = RuleMemory()
    run(reopen_cycles(0.0, 5), memory=mem)
    count_reopens(mem, 1)
    assert "door_close_failure" in evaluate(reading(30.0), mem, LIMITS)


# -- vibration, temperatures, levelling, clock ------------------------------------------------


def test_abnormal_vibration_fires_when_sustained_three_seconds_not_before() -> None:
    moving = {"speed_mps": 1.0, "door_zone": False, "pos_m": 5.0}
    seq = [
        reading(0.0, vib_mg=35.0, **moving),
        reading(1.0, vib_mg=35.0, **moving),
        reading(2.9, vib_mg=35.0, **moving),
        reading(3.0, vib_mg=35.0, **moving),
        reading(4.0, vib_mg=12.0, **moving),
    ]
    results = run(seq)
    assert ["abnormal_vibration" in f for f in results] == [False, False, False, True, False]
    assert results[3]["abnormal_vibration"].severity is Severity.MINOR


def test_vibration_at_exactly_the_limit_is_not_abnormal() -> None:
    moving = {"speed_mps": 1.0, "door_zone": False, "pos_m": 5.0}
    seq = [reading(t, vib_mg=30.0, **moving) for t in (0.0, 2.0, 4.0, 10.0)]
    assert fired("abnormal_vibration", seq) == [False, False, False, False]


def trip(start_s: float, vib_mg: list[float]) -> list[Reading]:
    """A trip: at rest, one moving sample per second with these vibrations, then a stop."""
    moving = [
        reading(start_s + 1.0 + i, speed_mps=1.0, door_zone=False, pos_m=1.0 + i, vib_mg=v)
        for i, v in enumerate(vib_mg)
    ]
    end_s = start_s + len(vib_mg) + 1.0
    return [reading(start_s), *moving, reading(end_s, floor=2, pos_m=3.0)]


def test_abnormal_vibration_fires_at_the_end_of_a_trip_whose_a95_is_over_25_mg() -> None:
    # 20 samples: the nearest-rank 95th percentile is the 19th, so two peaks make it 28 mg.
    results = run(trip(0.0, [10.0] * 18 + [28.0] * 2))
    holds = ["abnormal_vibration" in f for f in results]
    assert holds == [False] * 21 + [True]
    assert results[-1]["abnormal_vibration"].details == {"trip_a95_mg": 28.0}


def test_one_vibration_peak_in_twenty_does_not_raise_the_trip_a95() -> None:
    assert not any(fired("abnormal_vibration", trip(0.0, [10.0] * 19 + [28.0])))


def test_a_trip_a95_of_exactly_25_mg_is_not_abnormal() -> None:
    assert not any(fired("abnormal_vibration", trip(0.0, [25.0] * 20)))


def test_a_rough_trips_vibration_finding_clears_after_a_smooth_trip() -> None:
    seq = [*trip(0.0, [26.0] * 10), reading(30.0, floor=2, pos_m=3.0)]
    seq += [dataclasses.replace(r, t_s=r.t_s + 40.0) for r in trip(0.0, [8.0] * 10)]
    holds = fired("abnormal_vibration", seq)
    assert holds[11:13] == [True, True]
    assert holds[-1] is False


@pytest.mark.parametrize(
    ("field", "kind"), [("motor_c", "motor_overheat"), ("brake_c", "brake_overheat")]
)
def test_overheat_is_minor_from_85_and_major_from_110_degrees(field: str, kind: str) -> None:
    temps = (84.9, 85.0, 109.9, 110.0, 84.0)
    results = run([reading(float(i), **{field: c}) for i, c in enumerate(temps)])
    severities = [f[kind].severity if kind in f else None for f in results]
    assert severities == [None, Severity.MINOR, Severity.MINOR, Severity.MAJOR, None]


def stops(start_s: float, levels_mm: list[float]) -> list[Reading]:
    """One short trip per level: moving, then stopped in a door zone with that levelling error."""
    seq: list[Reading] = []
    for i, level in enumerate(levels_mm):
        t = start_s + 10.0 * i
        seq += [
            reading(t, speed_mps=1.0, door_zone=False, pos_m=1.5),
            reading(t + 5.0, level_mm=level),
        ]
    return seq


def test_levelling_error_fires_at_the_third_bad_stop_of_the_last_five() -> None:
    results = run(stops(0.0, [12.0, 0.0, -11.0, 3.0, 10.5]))
    at_stops = ["levelling_error" in f for f in results[1::2]]
    assert at_stops == [False, False, False, False, True]
    assert results[-1]["levelling_error"].severity is Severity.MINOR


def test_levelling_at_exactly_ten_mm_is_within_tolerance() -> None:
    assert not any(fired("levelling_error", stops(0.0, [10.0, -10.0, 10.0, 10.0, -10.0])))


def test_levelling_error_clears_once_bad_stops_fall_out_of_the_last_five() -> None:
    results = run(stops(0.0, [15.0, 15.0, 15.0, 0.0, 0.0, 0.0]))
    at_stops = ["levelling_error" in f for f in results[1::2]]
    assert at_stops == [False, False, True, True, True, False]


def test_a_long_stop_counts_its_levelling_once() -> None:
    seq = [
        reading(0.0, speed_mps=1.0, door_zone=False, pos_m=1.5),
        *[reading(t, level_mm=15.0) for t in (5.0, 15.0, 25.0, 35.0)],
    ]
    assert fired("levelling_error", seq) == [False, False, False, False, False]


def test_clock_skew_fires_beyond_five_minutes_either_way() -> None:
    seq = [
        reading(0.0, skew_s=300.0),
        reading(1.0, skew_s=300.1),
        reading(2.0, skew_s=-300.0),
        reading(3.0, skew_s=-300.1),
        reading(4.0, skew_s=2.0),
    ]
    results = run(seq)
    assert ["clock_skew" in f for f in results] == [False, True, False, True, False]
    assert results[1]["clock_skew"].severity is Severity.INFO


def test_thresholds_come_from_the_elevators_resolved_overrides() -> None:
    patient = dataclasses.replace(LIMITS, thresholds=resolve_thresholds(None, {"trapped_s": 30}))
    stuck = {"occupied": True, "door_zone": False, "pos_m": 7.4}
    seq = [reading(t, **stuck) for t in (0.0, 20.0, 29.9, 30.0)]
    assert fired("trapped_between_floors", seq, patient) == [False, False, False, True]
