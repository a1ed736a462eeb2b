"""`ElevatorDetector`: rule findings, events, status and silence in; raise/clear signals out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

import pytest

from alerts.detector import AlertSignal, ElevatorDetector
from alerts.rules import ElevatorLimits, Reading
from core.faults import Severity, resolve_thresholds
from tests.factories import reading

BASE = dt.datetime(2026, 11, 28, 9, 30, tzinfo=dt.UTC)
CRITICAL, MAJOR, MINOR, INFO = Severity.CRITICAL, Severity.MAJOR, Severity.MINOR, Severity.INFO

STUCK = {"occupied": True, "door_zone": False, "floor": 3, "pos_m": 7.4}

Change = tuple[str, str, Severity]


def at(t_s: float) -> dt.datetime:
    """Receive time `t_s` seconds after BASE."""
    return BASE + dt.timedelta(seconds=t_s)


def detector(**overrides: float) -> ElevatorDetector:
    """A detector for elevator e1 at site s1 (floors 1..10) with default thresholds."""
    limits = ElevatorLimits(
        lowest_floor=1,
        highest_floor=10,
        floor_height_m=3.0,
        rated_speed_mps=1.0,
        thresholds=resolve_thresholds(None, overrides),
    )
    return ElevatorDetector(elevator="e1", site="s1", limits=limits)


def feed(det: ElevatorDetector, readings: Iterable[Reading]) -> list[AlertSignal]:
    """Every signal the samples cause, each received at its own device time."""
    signals: list[AlertSignal] = []
    for r in readings:
        signals += det.on_sample(r, at(r.t_s))
    return signals


def changes(signals: Iterable[AlertSignal]) -> list[Change]:
    """What the signals say, without times and details."""
    return [(s.type, s.action, s.severity) for s in signals]


# -- raise once, clear after hysteresis --------------------------------------------------------


def test_a_holding_condition_is_raised_once_however_many_samples_show_it() -> None:
    det = detector()
    first = det.on_sample(reading(0.0, power="battery"), at(0.0))
    later = feed(det, (reading(float(t), power="battery") for t in range(1, 60)))
    assert changes(first) == [("power_failure", "raise", MAJOR)]
    assert later == []


def test_signal_carries_the_elevator_the_receive_time_and_the_device_time() -> None:
    det = detector()
    (signal,) = det.on_sample(reading(100.0, power="battery"), at(103.5))
    assert (signal.elevator, signal.site, signal.type) == ("e1", "s1", "power_failure")
    assert signal.at == at(103.5)
    assert signal.details == {"power": "battery", "device_time_s": 100.0}


def test_a_timed_rule_is_raised_at_its_threshold_not_before() -> None:
    det = detector()
    before = feed(det, (reading(t, **STUCK) for t in (0.0, 10.0, 19.9)))
    raised = feed(det, [reading(20.0, **STUCK)])
    assert before == []
    assert changes(raised) == [("trapped_between_floors", "raise", CRITICAL)]


def test_clear_comes_only_after_the_rule_stopped_holding_for_the_hysteresis_time() -> None:
    det = detector()
    feed(det, [reading(0.0, power="battery")])
    assert feed(det, [reading(10.0), reading(60.0), reading(129.9)]) == []
    cleared = feed(det, [reading(130.0)])
    assert changes(cleared) == [("power_failure", "clear", MAJOR)]
    assert cleared[0].at == at(130.0)


def test_hysteresis_time_is_per_elevator_configurable() -> None:
    det = detector(hysteresis_s=30.0)
    feed(det, [reading(0.0, power="battery"), reading(1.0)])
    assert feed(det, [reading(30.9)]) == []
    assert changes(feed(det, [reading(31.0)])) == [("power_failure", "clear", MAJOR)]


def test_a_condition_returning_inside_the_hysteresis_window_emits_nothing() -> None:
    det = detector()
    raised = feed(det, [reading(0.0, power="battery")])
    flapping = feed(
        det,
        [
            reading(10.0),
            reading(100.0, power="battery"),
            reading(110.0),
            reading(200.0, power="off"),
            reading(210.0),
            reading(329.9),
        ],
    )
    cleared = feed(det, [reading(330.0)])
    assert changes(raised) == [("power_failure", "raise", MAJOR)]
    assert flapping == []
    assert changes(cleared) == [("power_failure", "clear", MAJOR)]


def test_a_condition_returning_after_it_cleared_is_raised_again() -> None:
    det = detector()
    signals = feed(det, [reading(0.0, power="battery"), reading(1.0), reading(121.0)])
    again = feed(det, [reading(122.0, power="battery")])
    assert changes(signals) == [
        ("power_failure", "raise", MAJOR),
        ("power_failure", "clear", MAJOR),
    ]
    assert changes(again) == [("power_failure", "raise", MAJOR)]


def test_trapped_passenger_raises_at_twenty_seconds_and_clears_after_rescue_and_hysteresis() -> (
    None
):
    det = detector()
    signals = feed(det, [reading(t, **STUCK) for t in (0.0, 19.9, 20.0, 30.0)])
    signals += feed(det, [reading(31.0, speed_mps=0.5, door_zone=False, pos_m=8.0)])
    signals += feed(det, [reading(40.0, floor=4, pos_m=9.0), reading(150.9, floor=4, pos_m=9.0)])
    assert changes(signals) == [("trapped_between_floors", "raise", CRITICAL)]
    cleared = feed(det, [reading(151.0, floor=4, pos_m=9.0)])
    assert changes(cleared) == [("trapped_between_floors", "clear", CRITICAL)]


# -- severity upgrades -----------------------------------------------------------------------


def test_safety_chain_open_at_rest_is_major_then_a_second_raise_is_critical_when_moving() -> None:
    det = detector()
    at_rest = feed(det, [reading(0.0, safety_chain=False), reading(1.0, safety_chain=False)])
    moving = feed(
        det,
        [
            reading(2.0, safety_chain=False, speed_mps=0.5, door_zone=False, pos_m=0.5),
            reading(3.0, safety_chain=False, speed_mps=0.5, door_zone=False, pos_m=1.0),
        ],
    )
    assert changes(at_rest) == [("safety_chain_open", "raise", MAJOR)]
    assert changes(moving) == [("safety_chain_open", "raise", CRITICAL)]


def test_a_severity_that_falls_back_emits_nothing_and_clears_at_the_highest_severity() -> None:
    det = detector()
    feed(det, [reading(0.0, motor_c=90.0), reading(1.0, motor_c=112.0)])
    assert feed(det, [reading(2.0, motor_c=95.0), reading(3.0, motor_c=115.0)]) == []
    feed(det, [reading(4.0, motor_c=60.0)])
    assert changes(feed(det, [reading(124.0, motor_c=60.0)])) == [
        ("motor_overheat", "clear", MAJOR)
    ]


@pytest.mark.parametrize(
    ("field", "kind"), [("motor_c", "motor_overheat"), ("brake_c", "brake_overheat")]
)
def test_overheat_raises_minor_at_85_and_again_major_at_110(field: str, kind: str) -> None:
    det = detector()
    temps = (84.9, 85.0, 100.0, 109.9, 110.0, 120.0)
    per_sample = [
        det.on_sample(reading(float(i), **{field: c}), at(i)) for i, c in enumerate(temps)
    ]
    assert [changes(s) for s in per_sample] == [
        [],
        [(kind, "raise", MINOR)],
        [],
        [],
        [(kind, "raise", MAJOR)],
        [],
    ]


# -- event rules -----------------------------------------------------------------------------


def test_alarm_button_event_raises_critical_at_once() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    signals = det.on_event("alarm_button", {}, 5.0, at(5.0))
    assert changes(signals) == [("alarm_button", "raise", CRITICAL)]
    assert signals[0].details["device_time_s"] == 5.0


def test_alarm_button_repeated_inside_the_window_is_one_alert_cleared_after_hysteresis() -> None:
    det = detector()
    raised = det.on_event("alarm_button", {}, 5.0, at(5.0))
    repeat = det.on_event("alarm_button", {}, 60.0, at(60.0))
    quiet = feed(det, [reading(61.0), reading(179.9)])
    cleared = feed(det, [reading(180.0)])
    assert changes(raised) == [("alarm_button", "raise", CRITICAL)]
    assert repeat == []
    assert quiet == []
    assert changes(cleared) == [("alarm_button", "clear", CRITICAL)]


def test_alarm_button_is_raised_even_in_maintenance_mode() -> None:
    det = detector()
    feed(det, [reading(0.0, mode="maintenance")])
    assert changes(det.on_event("alarm_button", {}, 1.0, at(1.0))) == [
        ("alarm_button", "raise", CRITICAL)
    ]


@pytest.mark.parametrize(
    ("code", "severity"), [(1, CRITICAL), (5, CRITICAL), (6, MAJOR), (42, MAJOR)]
)
def test_controller_fault_severity_comes_from_its_code(code: int, severity: Severity) -> None:
    det = detector()
    signals = det.on_event("fault_code", {"code": code}, 1.0, at(1.0))
    assert changes(signals) == [("controller_fault", "raise", severity)]
    assert signals[0].details["code"] == code


def test_controller_fault_upgrades_when_a_safety_code_follows_a_minor_one() -> None:
    det = detector()
    first = det.on_event("fault_code", {"code": 42}, 1.0, at(1.0))
    same = det.on_event("fault_code", {"code": 43}, 2.0, at(2.0))
    upgraded = det.on_event("fault_code", {"code": 3}, 3.0, at(3.0))
    assert changes(first) == [("controller_fault", "raise", MAJOR)]
    assert same == []
    assert changes(upgraded) == [("controller_fault", "raise", CRITICAL)]


def test_controller_fault_clears_after_hysteresis_without_a_repeat() -> None:
    det = detector()
    det.on_event("fault_code", {"code": 42}, 10.0, at(10.0))
    assert feed(det, [reading(11.0), reading(129.9)]) == []
    assert changes(feed(det, [reading(130.0)])) == [("controller_fault", "clear", MAJOR)]


def test_door_cycle_event_with_five_reopens_raises_door_close_failure() -> None:
    det = detector()
    feed(det, [reading(0.0, door="open", door_lock=False)])
    assert (
        det.on_event("door_cycle", {"open_s": 3.0, "close_s": 4.0, "reopens": 4}, 1.0, at(1)) == []
    )
    assert feed(det, [reading(2.0, door="open", door_lock=False)]) == []
    det.on_event("door_cycle", {"open_s": 3.0, "close_s": 4.0, "reopens": 5}, 3.0, at(3.0))
    raised = feed(det, [reading(4.0, door="open", door_lock=False)])
    assert changes(raised) == [("door_close_failure", "raise", MAJOR)]


def test_door_close_failure_from_reopens_clears_after_the_car_moves_and_hysteresis() -> None:
    det = detector()
    det.on_event("door_cycle", {"reopens": 5}, 0.0, at(0.0))
    feed(det, [reading(1.0)])
    quiet = feed(det, [reading(2.0, speed_mps=1.0, door_zone=False, pos_m=1.0), reading(121.9)])
    assert quiet == []
    assert changes(feed(det, [reading(122.0)])) == [("door_close_failure", "clear", MAJOR)]


# -- clock skew ------------------------------------------------------------------------------


def test_clock_skew_from_samples_is_raised_as_info_beyond_five_minutes() -> None:
    det = detector()
    assert feed(det, [reading(0.0, skew_s=-300.0)]) == []
    assert changes(feed(det, [reading(1.0, skew_s=-301.0)])) == [("clock_skew", "raise", INFO)]
    assert feed(det, [reading(2.0), reading(121.9)]) == []
    assert changes(feed(det, [reading(122.0)])) == [("clock_skew", "clear", INFO)]


def test_a_refused_future_timestamp_raises_clock_skew_and_it_clears_after_hysteresis() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    raised = det.on_future_timestamp(at(1.0))
    again = det.on_future_timestamp(at(2.0))
    assert changes(raised) == [("clock_skew", "raise", INFO)]
    assert raised[0].details["cause"] == "future_timestamp"
    assert again == []
    assert feed(det, [reading(10.0), reading(119.9)]) == []
    assert changes(feed(det, [reading(120.0)])) == [("clock_skew", "clear", INFO)]


# -- offline: Last Will and silence ------------------------------------------------------------


def test_last_will_raises_offline_and_online_status_clears_it_at_once() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    raised = det.on_status(False, at(5.0))
    cleared = det.on_status(True, at(6.0))
    assert changes(raised) == [("offline", "raise", MAJOR)]
    assert raised[0].details["cause"] == "last_will"
    assert changes(cleared) == [("offline", "clear", MAJOR)]
    assert cleared[0].at == at(6.0)


def test_after_a_last_will_nothing_but_offline_is_raised_until_online() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_status(False, at(1.0))
    while_offline = feed(
        det,
        [
            reading(2.0, power="battery"),
            reading(3.0, power="battery", safety_chain=False, speed_mps=0.5, door_zone=False),
            reading(4.0, power="battery", safety_chain=False),
        ],
    )
    back = det.on_status(True, at(5.0))
    assert while_offline == []
    assert sorted(changes(back)) == [
        ("offline", "clear", MAJOR),
        ("power_failure", "raise", MAJOR),
        ("safety_chain_open", "raise", MAJOR),
    ]


def test_a_condition_that_ended_while_offline_is_not_raised_when_back_online() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_status(False, at(1.0))
    feed(det, [reading(2.0, power="battery"), reading(3.0)])
    assert changes(det.on_status(True, at(4.0))) == [("offline", "clear", MAJOR)]


def test_a_sample_after_a_last_will_does_not_bring_the_elevator_back_online() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_status(False, at(1.0))
    assert feed(det, [reading(2.0), reading(3.0)]) == []
    assert changes(det.on_status(True, at(4.0))) == [("offline", "clear", MAJOR)]


def test_silence_raises_offline_after_three_idle_intervals_not_before() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    assert det.on_silence(at(29.9), grace_until=BASE) == []
    raised = det.on_silence(at(30.0), grace_until=BASE)
    assert changes(raised) == [("offline", "raise", MAJOR)]
    assert raised[0].details["cause"] == "silence"
    assert raised[0].at == at(30.0)


def test_silence_raises_offline_only_once() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    first = det.on_silence(at(30.0), grace_until=BASE)
    later = det.on_silence(at(45.0), grace_until=BASE) + det.on_silence(at(600.0), BASE)
    assert changes(first) == [("offline", "raise", MAJOR)]
    assert later == []


def test_silence_window_is_offline_intervals_times_the_idle_interval() -> None:
    det = detector(offline_intervals=2.0, idle_interval_s=5.0)
    feed(det, [reading(0.0)])
    assert det.on_silence(at(9.9), grace_until=BASE) == []
    assert changes(det.on_silence(at(10.0), grace_until=BASE)) == [("offline", "raise", MAJOR)]


def test_silence_is_not_offline_before_the_grace_period_ends() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    grace_until = at(50.0)
    assert det.on_silence(at(40.0), grace_until) == []
    assert det.on_silence(at(49.9), grace_until) == []
    assert changes(det.on_silence(at(50.0), grace_until)) == [("offline", "raise", MAJOR)]


def test_silence_counts_from_the_last_message_received() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_event("landing_call", {"floor": 3, "held_s": 1.0}, 20.0, at(20.0))
    assert det.on_silence(at(49.9), grace_until=BASE) == []
    assert changes(det.on_silence(at(50.0), grace_until=BASE)) == [("offline", "raise", MAJOR)]


Message = Callable[[ElevatorDetector], list[AlertSignal]]
MESSAGES: dict[str, Message] = {
    "sample": lambda det: det.on_sample(reading(40.0), at(40.0)),
    "event": lambda det: det.on_event("landing_call", {"floor": 2}, 40.0, at(40.0)),
    "status": lambda det: det.on_status(True, at(40.0)),
}


@pytest.mark.parametrize("message", sorted(MESSAGES))
def test_any_message_after_silence_clears_offline_at_once(message: str) -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_silence(at(30.0), grace_until=BASE)
    assert changes(MESSAGES[message](det)) == [("offline", "clear", MAJOR)]


def test_a_condition_found_in_the_first_sample_after_silence_is_raised() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_silence(at(30.0), grace_until=BASE)
    back = det.on_sample(reading(40.0, power="battery"), at(40.0))
    assert sorted(changes(back)) == [
        ("offline", "clear", MAJOR),
        ("power_failure", "raise", MAJOR),
    ]


def test_a_last_will_during_silence_keeps_one_offline_alert() -> None:
    det = detector()
    feed(det, [reading(0.0)])
    det.on_silence(at(30.0), grace_until=BASE)
    assert det.on_status(False, at(35.0)) == []
    assert changes(det.on_status(True, at(36.0))) == [("offline", "clear", MAJOR)]


# -- technician modes ------------------------------------------------------------------------


def test_maintenance_mode_suppresses_a_minor_finding_but_not_a_critical_one() -> None:
    det = detector()
    suppressed = feed(det, [reading(0.0, mode="maintenance", motor_c=90.0)])
    critical = feed(
        det,
        [
            reading(
                1.0,
                mode="maintenance",
                motor_c=90.0,
                safety_chain=False,
                speed_mps=0.5,
                door_zone=False,
            )
        ],
    )
    assert suppressed == []
    assert changes(critical) == [("safety_chain_open", "raise", CRITICAL)]


def test_a_finding_suppressed_in_maintenance_is_raised_when_mode_returns_to_normal() -> None:
    det = detector()
    during = feed(det, [reading(t, mode="maintenance", motor_c=90.0) for t in (0.0, 10.0, 20.0)])
    after = feed(det, [reading(30.0, mode="normal", motor_c=90.0)])
    assert during == []
    assert changes(after) == [("motor_overheat", "raise", MINOR)]


def test_inspection_mode_suppresses_a_major_finding_until_a_mode_change_event() -> None:
    det = detector()
    during = feed(det, [reading(t, mode="inspection", power="battery") for t in (0.0, 10.0)])
    ended = det.on_event("mode_change", {"from": "inspection", "to": "normal"}, 11.0, at(11.0))
    assert during == []
    assert changes(ended) == [("power_failure", "raise", MAJOR)]


def test_a_finding_that_ended_during_maintenance_is_not_raised_afterwards() -> None:
    det = detector()
    during = feed(det, [reading(0.0, mode="maintenance", motor_c=90.0)])
    during += feed(det, [reading(10.0, mode="maintenance", motor_c=50.0)])
    after = feed(det, [reading(20.0, mode="normal", motor_c=50.0)])
    assert during == []
    assert after == []


def test_fire_mode_does_not_suppress_major_findings() -> None:
    det = detector()
    assert changes(feed(det, [reading(0.0, mode="fire", power="battery")])) == [
        ("power_failure", "raise", MAJOR)
    ]


# -- restart ---------------------------------------------------------------------------------


def test_after_a_restart_an_adopted_alert_whose_condition_holds_is_not_raised_again() -> None:
    det = detector()
    det.adopt_raised({"power_failure": MAJOR})
    assert feed(det, [reading(float(t), power="battery") for t in range(5)]) == []


def test_after_a_restart_an_adopted_timed_alert_is_not_raised_again_once_it_holds() -> None:
    fresh, restarted = detector(), detector()
    restarted.adopt_raised({"trapped_between_floors": CRITICAL})
    seq = [reading(t, **STUCK) for t in (0.0, 10.0, 20.0, 30.0)]
    assert changes(feed(fresh, seq)) == [("trapped_between_floors", "raise", CRITICAL)]
    assert feed(restarted, seq) == []


def test_after_a_restart_an_adopted_alert_that_no_longer_holds_clears_after_hysteresis() -> None:
    det = detector()
    det.adopt_raised({"power_failure": MAJOR})
    assert feed(det, [reading(0.0), reading(119.9)]) == []
    assert changes(feed(det, [reading(120.0)])) == [("power_failure", "clear", MAJOR)]


def test_after_a_restart_an_adopted_lower_severity_is_upgraded_when_it_holds_higher() -> None:
    det = detector()
    det.adopt_raised({"safety_chain_open": MAJOR})
    moving = reading(0.0, safety_chain=False, speed_mps=0.5, door_zone=False, pos_m=0.5)
    assert changes(feed(det, [moving])) == [("safety_chain_open", "raise", CRITICAL)]


def test_an_alarm_button_after_a_last_will_is_still_raised() -> None:
    det = detector()
    det.on_sample(reading(0.0), at(0.0))
    det.on_status(False, at(1.0))
    alarm = det.on_event("alarm_button", {}, 2.0, at(2.0))
    assert changes(alarm) == [("alarm_button", "raise", Severity.CRITICAL)]


def test_after_a_restart_a_levelling_alert_waits_for_enough_stops_before_it_clears() -> None:
    det = detector()
    det.adopt_raised({"levelling_error": Severity.MINOR})
    quiet = feed(det, (reading(float(t)) for t in range(0, 600, 10)))
    assert quiet == []
    signals: list[AlertSignal] = []
    t = 600.0
    for _ in range(5):  # five good stops: enough to judge the rule again
        signals += feed(det, [reading(t, speed_mps=1.0, door_zone=False)])
        signals += feed(det, [reading(t + 5, level_mm=2.0)])
        t += 20
    signals += feed(det, [reading(t + 200)])
    assert changes(signals) == [("levelling_error", "clear", Severity.MINOR)]
