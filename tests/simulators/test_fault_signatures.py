"""Every fault type of SPEC §4 produces the telemetry or events its detection rule looks for.

The simulator injects a fault; these checks restate each rule over what came out, so the
detector (not the simulator) is what will call it a fault.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from core.faults import FAULTS_BY_NAME
from core.registry import ElevatorSpec
from simulators.faults import SIMULATED_FAULTS
from simulators.scenario import ScheduledFault
from tests.simulators.helpers import (
    START,
    TOWER,
    WALKUP,
    Decoded,
    events,
    longest_run_s,
    run,
    telemetry,
)

INJECT_AT_S = 30.0
TOP_M = (len(TOWER.landings()) - 1) * TOWER.floor_height_m


Body = dict[str, Any]


def _stopped(b: Body) -> bool:
    return bool(b["speed_mps"] < 0.05)


def trapped_between_floors(out: list[Decoded]) -> bool:
    rule = lambda b: b["occupied"] and _stopped(b) and not b["door_zone"]  # noqa: E731
    return longest_run_s(telemetry(out), rule) >= 20


def trapped_at_floor(out: list[Decoded]) -> bool:
    rule = lambda b: (  # noqa: E731
        b["occupied"] and _stopped(b) and b["door_zone"] and b["door"] == "closed"
    )
    return longest_run_s(telemetry(out), rule) >= 20


def door_open_while_running(out: list[Decoded]) -> bool:
    samples = telemetry(out)
    for before, after in itertools.pairwise(samples):
        moving = before.body["speed_mps"] > 0.1 and before.body["door"] == "closed"
        opened = after.body["door"] != "closed" or not after.body["door_lock"]
        if moving and opened and after.body["speed_mps"] > 0.1:
            return True
    return False


def unintended_movement(out: list[Decoded]) -> bool:
    return any(
        b.body["door"] != "closed" and (b.body["speed_mps"] > 0.1 or not b.body["door_zone"])
        for b in telemetry(out)
    )


def overspeed(out: list[Decoded]) -> bool:
    over = lambda b: b["speed_mps"] > 1.15 * TOWER.rated_speed_mps  # noqa: E731
    return longest_run_s(telemetry(out), over) >= 0.5


def overtravel_top(out: list[Decoded]) -> bool:
    return any(m.body["pos_m"] > TOP_M + 0.1 for m in telemetry(out))


def overtravel_bottom(out: list[Decoded]) -> bool:
    return any(m.body["pos_m"] < -0.1 for m in telemetry(out))


def safety_chain_open(out: list[Decoded]) -> bool:
    return any(not m.body["safety_chain"] for m in telemetry(out))


def door_lock_fault(out: list[Decoded]) -> bool:
    shut_unlocked = lambda b: b["door"] == "closed" and not b["door_lock"]  # noqa: E731
    return longest_run_s(telemetry(out), shut_unlocked) >= 5


def stopped_outside_door_zone(out: list[Decoded]) -> bool:
    rule = lambda b: not b["occupied"] and _stopped(b) and not b["door_zone"]  # noqa: E731
    return longest_run_s(telemetry(out), rule) >= 45


def door_open_failure(out: list[Decoded]) -> bool:
    return longest_run_s(telemetry(out), lambda b: b["door"] == "opening") >= 10


def door_close_failure(out: list[Decoded]) -> bool:
    return longest_run_s(telemetry(out), lambda b: b["door"] == "closing") >= 15


def power_failure(out: list[Decoded]) -> bool:
    return any(m.body["power"] != "mains" for m in telemetry(out))


def offline(out: list[Decoded]) -> bool:
    went_offline = any(m.kind == "status" and m.body["state"] == "offline" for m in out)
    samples = telemetry(out)
    longest_gap = max(b.t_s - a.t_s for a, b in itertools.pairwise(samples))
    return went_offline and longest_gap >= 30


def alarm_button(out: list[Decoded]) -> bool:
    return bool(events(out, "alarm_button"))


def controller_fault(out: list[Decoded]) -> bool:
    return any(isinstance(m.body.get("code"), int) for m in events(out, "fault_code"))


def abnormal_vibration(out: list[Decoded]) -> bool:
    moving = [m for m in telemetry(out) if m.body["speed_mps"] > 0.1]
    return sum(1 for m in moving if m.body["vib_mg"] > 30) >= 5


def motor_overheat(out: list[Decoded]) -> bool:
    return bool(max(m.body["motor_c"] for m in telemetry(out)) >= 85)


def brake_overheat(out: list[Decoded]) -> bool:
    return bool(max(m.body["brake_c"] for m in telemetry(out)) >= 85)


def levelling_error(out: list[Decoded]) -> bool:
    stops: list[float] = []
    previous_zone = False
    for sample in telemetry(out):
        level = sample.body["level_mm"]
        if level is not None and not previous_zone:
            stops.append(level)
        previous_zone = level is not None
    return any(sum(abs(level) > 10 for level in stops[i : i + 5]) >= 3 for i in range(len(stops)))


def maintenance_overdue(out: list[Decoded]) -> bool:
    return not [m for m in events(out, "mode_change") if m.body["to"] == "maintenance"]


def clock_skew(out: list[Decoded]) -> bool:
    for message in telemetry(out):
        device = dt.datetime.fromisoformat(message.body["ts"].replace("Z", "+00:00"))
        if abs((device - START).total_seconds() - message.t_s) > 300:
            return True
    return False


# fault -> (signature check, elevator, duration_s, run until, traffic scale)
CASES: dict[str, tuple[Callable[[list[Decoded]], bool], ElevatorSpec, float, float, float]] = {
    "trapped_between_floors": (trapped_between_floors, TOWER, 90, 300, 0),
    "trapped_at_floor": (trapped_at_floor, TOWER, 60, 300, 0),
    "door_open_while_running": (door_open_while_running, TOWER, 30, 300, 0),
    "unintended_movement": (unintended_movement, TOWER, 30, 300, 0),
    "overspeed": (overspeed, TOWER, 30, 300, 0),
    "overtravel_top": (overtravel_top, TOWER, 60, 300, 0),
    "overtravel_bottom": (overtravel_bottom, WALKUP, 60, 300, 0),
    "safety_chain_open": (safety_chain_open, TOWER, 60, 300, 0),
    "door_lock_fault": (door_lock_fault, TOWER, 30, 300, 0),
    "stopped_outside_door_zone": (stopped_outside_door_zone, TOWER, 60, 300, 0),
    "door_open_failure": (door_open_failure, TOWER, 20, 300, 0),
    "door_close_failure": (door_close_failure, TOWER, 25, 300, 0),
    "power_failure": (power_failure, TOWER, 60, 300, 0),
    "offline": (offline, TOWER, 90, 300, 0),
    "alarm_button": (alarm_button, TOWER, 0, 120, 0),
    "controller_fault": (controller_fault, TOWER, 0, 120, 0),
    "abnormal_vibration": (abnormal_vibration, TOWER, 1800, 1800, 3),
    "motor_overheat": (motor_overheat, TOWER, 7200, 7200, 0),
    "brake_overheat": (brake_overheat, TOWER, 7200, 7200, 0),
    "levelling_error": (levelling_error, TOWER, 3600, 3600, 3),
    "maintenance_overdue": (maintenance_overdue, WALKUP, 20 * 86_400, 16 * 86_400, 0),
    "clock_skew": (clock_skew, TOWER, 600, 300, 0),
}


def test_every_spec_fault_type_has_a_case_and_a_simulated_fault() -> None:
    assert set(CASES) == set(FAULTS_BY_NAME) == SIMULATED_FAULTS


@pytest.mark.parametrize("fault", sorted(CASES))
def test_injected_fault_produces_its_rule_signature(fault: str) -> None:
    check, spec, duration_s, until_s, traffic = CASES[fault]
    at_s = 0.0 if fault == "maintenance_overdue" else INJECT_AT_S
    scheduled = [ScheduledFault(at_s, spec.elevator, fault, duration_s)]
    out = run([spec], until_s=until_s, faults=scheduled, traffic_scale=traffic)
    assert check(out), f"{fault}: signature missing"


@pytest.mark.parametrize(
    "fault",
    sorted(set(CASES) - {"maintenance_overdue", "motor_overheat", "brake_overheat"}),
)
def test_healthy_run_lacks_the_signature(fault: str) -> None:
    check, spec, _, until_s, traffic = CASES[fault]
    out = run([spec], until_s=until_s, traffic_scale=traffic)
    assert not check(out), f"{fault}: signature present without the fault"


def test_healthy_elevator_is_maintained_within_15_days() -> None:
    out = run([WALKUP], until_s=16 * 86_400.0)
    assert not maintenance_overdue(out)


def test_temperatures_stay_normal_without_a_fault() -> None:
    out = run([TOWER], until_s=7200.0, traffic_scale=3.0)
    assert not motor_overheat(out)
    assert not brake_overheat(out)


def test_scripted_fire_mode_is_reported_and_restored() -> None:
    scheduled = [ScheduledFault(30.0, TOWER.elevator, "mode:fire", 120.0)]
    out = run([TOWER], until_s=300.0, faults=scheduled)
    changes = [(m.body["from"], m.body["to"]) for m in events(out, "mode_change")]
    assert changes == [("normal", "fire"), ("fire", "normal")]
    assert any(m.body["mode"] == "fire" for m in telemetry(out))
