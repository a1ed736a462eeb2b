"""Faults injected into a simulated elevator: which it can suffer, and what each does to it.

- *Armed* faults wait for their moment (a trip between floors at full speed, a stop, a door
  cycle), then halt the car, open its door or let it run away, for their duration; when the
  car is idle, `inject` brings the moment about with a passenger call, as traffic would.
- *Timed* faults change a condition (safety chain, door lock, power, link, temperatures,
  vibration, levelling, clock, maintenance) for their whole duration.
- *Instant* faults are one device event (the alarm button, a controller fault code).

Each changes behaviour the way the real failure would (a halted car, a door that will not
open, a clock that drifts); the detector, not the model, decides that it is a fault. A halted
car waits out the fault, then its rescue device brings it to the nearest landing.

The model (`simulators.elevator`) asks `armed_take` at the moments an armed fault can bite,
calls `expire_timed` as time passes and `strike_while_moving` during trips, and steps the
phases out of normal service (emergency stop, halted, rescue, drift, overspeed) here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from simulators.car import DOOR_ZONE_M, OVERTRAVEL_M, Phase, Trip
from simulators.physics import plan_trip

if TYPE_CHECKING:
    from simulators.elevator import ElevatorModel

DRIFT_SPEED_MPS: Final = 0.25
OVERSPEED_RATIO: Final = 1.25
EMERGENCY_DECEL_MPS2: Final = 1.0
RESCUE_SPEED_MPS: Final = 0.3
ALARM_AFTER_TRAPPED_S: Final = 40.0

# Controller fault codes of GB/T 24476 that a controller reports by itself.
CODE_SAFETY_CHAIN_WHILE_RUNNING: Final = 1
CODE_UNINTENDED_MOVEMENT: Final = 5
CONTROLLER_FAULT_CODES: Final = (6, 7, 8)  # run-time limiter, position lost, re-run lockout

# Faults that wait for the right moment (a trip, a stop, a door cycle) before they bite.
ARMED_FAULTS: Final = frozenset(
    {
        "trapped_between_floors",
        "trapped_at_floor",
        "stopped_outside_door_zone",
        "door_open_while_running",
        "unintended_movement",
        "overspeed",
        "overtravel_top",
        "overtravel_bottom",
        "door_open_failure",
        "door_close_failure",
    }
)
# Faults that change a condition for their whole duration.
TIMED_FAULTS: Final = frozenset(
    {
        "safety_chain_open",
        "door_lock_fault",
        "power_failure",
        "offline",
        "abnormal_vibration",
        "motor_overheat",
        "brake_overheat",
        "levelling_error",
        "maintenance_overdue",
        "clock_skew",
    }
)
INSTANT_FAULTS: Final = frozenset({"alarm_button", "controller_fault"})
SIMULATED_FAULTS: Final = ARMED_FAULTS | TIMED_FAULTS | INSTANT_FAULTS


@dataclass(slots=True)
class ArmedFault:
    """An armed fault waiting for its moment, and how long it lasts once it bites."""

    name: str
    duration_s: float


def inject(model: ElevatorModel, fault: str, duration_s: float) -> None:
    """Start `fault` now; it lasts `duration_s` (or waits for its moment, then lasts)."""
    if fault not in SIMULATED_FAULTS:
        raise ValueError(f"unknown fault {fault!r}")
    if fault in INSTANT_FAULTS:
        if fault == "alarm_button":
            model.record_event("alarm_button")
        else:
            model.record_event("fault_code", code=model.rng.choice(CONTROLLER_FAULT_CODES))
        return
    if fault in TIMED_FAULTS:
        _start_timed(model, fault, duration_s)
        return
    model.armed.append(ArmedFault(fault, duration_s))
    _provoke(model, fault)


def _provoke(model: ElevatorModel, fault: str) -> None:
    """Bring about the situation an armed fault waits for, as traffic would."""
    if model.phase is not Phase.IDLE:
        return
    here = model.floor
    top, bottom = model.landings[-1], model.landings[0]
    far = top if abs(top - here) >= abs(here - bottom) else bottom
    if fault in ("overtravel_top", "overspeed") or (fault == "trapped_between_floors"):
        destination = top if here != top else bottom
        if fault == "overtravel_top" and here == top:
            model.start_trip(bottom)
            model.add_passenger(bottom, top)
            return
        model.add_passenger(here, destination)
    elif fault == "overtravel_bottom":
        if here == bottom:
            model.start_trip(top)
            model.add_passenger(top, bottom)
            return
        model.add_passenger(here, bottom)
    elif fault == "stopped_outside_door_zone":
        model.start_trip(far)
        return
    elif fault in ("trapped_at_floor", "door_open_while_running"):
        model.add_passenger(here, far)
    else:  # door faults and unintended movement need a door cycle at this landing
        model.add_passenger(here, far)
    model.dispatch()


def armed_take(model: ElevatorModel, name: str, *, keep: bool = False) -> float | None:
    """The duration of armed fault `name` if it is armed (disarmed unless `keep`), else None."""
    for armed in model.armed:
        if armed.name == name:
            if not keep:
                model.armed.remove(armed)
            return armed.duration_s
    return None


def armed_duration(model: ElevatorModel, name: str) -> float:
    """Disarm fault `name` and return its duration (0 when it is not armed)."""
    for armed in model.armed:
        if armed.name == name:
            model.armed.remove(armed)
            return armed.duration_s
    return 0.0


def _start_timed(model: ElevatorModel, fault: str, duration_s: float) -> None:
    model.timed[fault] = model.t_s + duration_s
    if fault == "safety_chain_open":
        model.safety_chain = False
        if model.speed_mps > 0.05:
            model.record_event("fault_code", code=CODE_SAFETY_CHAIN_WHILE_RUNNING)
            halt(model, duration_s)
    elif fault == "door_lock_fault":
        model.door_lock = False
        if model.phase in (Phase.MOVING, Phase.OVERSPEED):
            halt(model, duration_s)
            model.door_lock = False
    elif fault == "power_failure":
        model.power = "off"
        if model.phase in (Phase.MOVING, Phase.OVERSPEED, Phase.START_DELAY):
            halt(model, 2.0)
    elif fault == "offline":
        model.silent = True
    elif fault == "clock_skew":
        # A clock running behind: samples are still accepted (one ahead by more than
        # 5 min is dead-lettered, SPEC §3), so the clock_skew rule can see it.
        model.clock_offset_s = -360.0
    elif fault == "maintenance_overdue":
        model.next_maintenance_s = max(model.next_maintenance_s, model.t_s + duration_s)


def expire_timed(model: ElevatorModel) -> None:
    """End the timed faults whose time is up and restore what each changed."""
    for fault, until in list(model.timed.items()):
        if model.t_s < until:
            continue
        del model.timed[fault]
        if fault == "safety_chain_open":
            model.safety_chain = True
        elif fault == "door_lock_fault":
            model.door_lock = model.door == "closed"
        elif fault == "power_failure":
            model.power = "mains"
        elif fault == "offline":
            model.silent = False
        elif fault == "clock_skew":
            model.clock_offset_s = 0.0


def strike_while_moving(model: ElevatorModel, trip: Trip) -> None:
    """Faults that strike during a trip, once the model is between floors at full speed."""
    at_speed = model.speed_mps >= 0.9 * trip.profile.peak_speed_mps
    if model.in_door_zone() or not at_speed or trip.profile.peak_speed_mps < 0.3:
        return
    stop_at = model.pos_m + trip.sign * model.speed_mps**2 / (2 * EMERGENCY_DECEL_MPS2)
    stops_between = abs(model.height_of(model.nearest_landing(stop_at)) - stop_at) > (
        DOOR_ZONE_M + 0.05
    )
    for name in ("trapped_between_floors", "stopped_outside_door_zone"):
        occupied_ok = bool(model.car) if name == "trapped_between_floors" else not model.car
        if not stops_between or not occupied_ok:
            continue
        if armed_take(model, name, keep=True) is not None:
            halt(model, armed_duration(model, name))
            return
    if armed_take(model, "door_open_while_running", keep=True) is not None:
        model.door, model.door_lock = "opening", False
        model.record_event("fault_code", code=CODE_SAFETY_CHAIN_WHILE_RUNNING)
        halt(model, armed_duration(model, "door_open_while_running"), door="opening")
        return
    cruising = model.speed_mps >= 0.95 * model.spec.rated_speed_mps
    if cruising and armed_take(model, "overspeed", keep=True) is not None:
        model.set_phase(Phase.OVERSPEED)


def step_overspeed(model: ElevatorModel, dt: float) -> None:
    """One step of a runaway: faster up to the governor's trip speed, then a halt."""
    sign = model.trip.sign if model.trip else model.direction or 1
    limit = model.spec.rated_speed_mps * OVERSPEED_RATIO
    model.speed_mps = min(limit, model.speed_mps + 1.0 * dt)
    model.pos_m += sign * model.speed_mps * dt
    top, bottom = model.height_of(model.landings[-1]), 0.0
    if model.in_phase_s() >= 2.0 or not bottom < model.pos_m < top:
        model.pos_m = min(max(model.pos_m, bottom), top)
        halt(model, armed_duration(model, "overspeed"))


def drift_sign(model: ElevatorModel) -> int:
    """The direction an unbraked car drifts."""
    # With the brake slipping the heavier side wins; at the bottom landing it can only rise.
    return 1 if model.nearest_landing() == model.landings[0] else -1


def step_drift(model: ElevatorModel, dt: float) -> None:
    """One step of unintended movement: the car creeps with its door open, then halts."""
    model.speed_mps = DRIFT_SPEED_MPS
    model.pos_m += drift_sign(model) * DRIFT_SPEED_MPS * dt
    if model.in_phase_s() >= 2.0:
        model.record_event("fault_code", code=CODE_UNINTENDED_MOVEMENT)
        halt(model, armed_duration(model, "unintended_movement"), door="open")


# -- halting and recovering ------------------------------------------------------------------


def halt(model: ElevatorModel, duration_s: float, *, door: str = "closed") -> None:
    """Brake the car to a standstill, keep it there for `duration_s`, then recover."""
    model.door = door
    model.door_lock = door == "closed" and model.door_lock_ok()
    model.level_mm = None
    model.halt_duration_s = duration_s
    if model.speed_mps > 0.05:
        model.set_phase(Phase.EMERGENCY_STOP)
        return
    _standstill(model)


def _standstill(model: ElevatorModel) -> None:
    model.speed_mps = 0.0
    model.halt_until_s = model.t_s + model.halt_duration_s
    if model.car:
        model.trapped_alarm_due_s = model.t_s + ALARM_AFTER_TRAPPED_S
    model.set_phase(Phase.HALTED)


def step_emergency_stop(model: ElevatorModel, dt: float) -> None:
    """Brake to a standstill, never further than the overtravel beyond an end landing."""
    sign = model.trip.sign if model.trip else (model.direction or 1)
    model.speed_mps = max(0.0, model.speed_mps - EMERGENCY_DECEL_MPS2 * dt)
    top = model.height_of(model.landings[-1])
    limit = OVERTRAVEL_M
    model.pos_m = min(max(model.pos_m + sign * model.speed_mps * dt, -limit), top + limit)
    if model.speed_mps == 0.0:
        _standstill(model)


def step_halted(model: ElevatorModel, dt: float) -> None:
    """Wait out the halt; then the car goes to the nearest landing, or opens where it is."""
    if model.t_s < model.halt_until_s or not model.safety_chain:
        return
    if model.power == "off":
        # The automatic rescue device brings the car to a landing on battery power.
        model.power = "battery"
    model.trapped_alarm_due_s = None
    model.door, model.door_lock = "closed", model.door_lock_ok()
    target = model.nearest_landing()
    if abs(model.height_of(target) - model.pos_m) <= DOOR_ZONE_M / 2:
        model.trip = None
        model.set_phase(Phase.DOOR_OPENING)
    else:
        model.trip = Trip(
            plan_trip(1.0, speed_mps=1.0, accel_mps2=1.0, jerk_mps3=1.0),
            model.t_s,
            model.pos_m,
            1 if model.height_of(target) > model.pos_m else -1,
            target,
        )
        model.set_phase(Phase.RESCUE)


def step_rescue(model: ElevatorModel, dt: float) -> None:
    """Creep to the target landing at rescue speed, then open the doors."""
    trip = model.trip
    if trip is None:
        model.set_phase(Phase.IDLE)
        return
    goal = model.height_of(trip.target)
    model.speed_mps = RESCUE_SPEED_MPS
    model.pos_m += trip.sign * RESCUE_SPEED_MPS * dt
    if (goal - model.pos_m) * trip.sign <= 0:
        model.pos_m = goal
        model.speed_mps = 0.0
        model.level_mm = 0.0
        model.floor = trip.target
        model.trip = None
        model.set_phase(Phase.DOOR_OPENING)
