"""One simulated elevator as a pure, steppable state machine (no I/O, no clock, no globals).

`ElevatorModel.advance_to(t_s)` moves simulated time forward; the model serves passengers by
simple collective control, cycles its doors, drives S-curve trips, heats its motor and brake
with duty, and records device events (`door_cycle`, `landing_call`, `mode_change`,
`alarm_button`, `fault_code`) in `events`. `telemetry()` reads the sample a device would send
now. Faults are injected with `inject()`; each one changes behaviour the way the real failure
would (a halted car, a door that will not open, a clock that drifts) and the detector, not the
model, decides that it is a fault.

Numbers (door times, door zone, levelling tolerance, temperatures, vibration) come from
`docs/simulator.md`, which cites their sources.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from simulators.physics import TripProfile, plan_trip

ACTIVE_STEP_S: Final = 0.1
DOOR_ZONE_M: Final = 0.10
DOOR_OPEN_S: Final = 2.0
DOOR_CLOSE_S: Final = 3.0
DOOR_HOLD_S: Final = 3.0
TRANSFER_S_PER_PASSENGER: Final = 1.2
START_DELAY_S: Final = 0.5
RESCUE_SPEED_MPS: Final = 0.3
DRIFT_SPEED_MPS: Final = 0.25
EMERGENCY_DECEL_MPS2: Final = 1.0
REOPEN_PROBABILITY: Final = 0.08
LEVEL_SIGMA_MM: Final = 2.5
LEVEL_HEALTHY_LIMIT_MM: Final = 8.0
AMBIENT_C: Final = 25.0
MOTOR_TAU_S: Final = 900.0
BRAKE_TAU_S: Final = 600.0
ALARM_AFTER_TRAPPED_S: Final = 40.0
MAINTENANCE_INTERVAL_S: Final = 14 * 86_400.0
MAINTENANCE_VISIT_S: Final = 3_600.0
OVERSPEED_RATIO: Final = 1.25
OVERTRAVEL_M: Final = 0.4

# Controller fault codes of GB/T 24476 that a controller reports by itself.
CODE_SAFETY_CHAIN_WHILE_RUNNING: Final = 1
CODE_UNINTENDED_MOVEMENT: Final = 5
CONTROLLER_FAULT_CODES: Final = (6, 7, 8)  # run-time limiter, position lost, re-run lockout


@dataclass(frozen=True, slots=True)
class ElevatorSpec:
    """The registry facts the model needs."""

    site: str
    elevator: str
    lowest_floor: int
    highest_floor: int
    floor_height_m: float
    rated_speed_mps: float
    rated_load_kg: float
    acceleration_mps2: float
    jerk_mps3: float

    def landings(self) -> list[int]:
        """Floor numbers served, bottom to top; no floor 0 when the building has basements."""
        floors = range(self.lowest_floor, self.highest_floor + 1)
        return [f for f in floors if f != 0 or self.lowest_floor == 0]


class Phase(StrEnum):
    """What the car is doing."""

    IDLE = "idle"
    DOOR_OPENING = "door_opening"
    DOOR_OPEN = "door_open"
    DOOR_CLOSING = "door_closing"
    START_DELAY = "start_delay"
    MOVING = "moving"
    EMERGENCY_STOP = "emergency_stop"  # braking to a standstill after a protection trips
    HALTED = "halted"  # stopped by a fault or protection device, out of service
    RESCUE = "rescue"  # creeping to the nearest landing after a halt
    DRIFT = "drift"  # moving with the brake not holding (unintended movement)
    OVERSPEED = "overspeed"  # running away above rated speed until the governor trips


@dataclass(slots=True)
class Passenger:
    """Someone travelling from `origin` to `destination`."""

    origin: int
    destination: int
    weight_kg: float
    called_at_s: float


@dataclass(slots=True)
class DeviceEventRecord:
    """A device event at simulated time `t_s`."""

    t_s: float
    body: dict[str, Any]


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
class _Trip:
    profile: TripProfile
    start_s: float
    start_pos_m: float
    sign: int
    target: int


@dataclass(slots=True)
class _ArmedFault:
    name: str
    duration_s: float


class ElevatorModel:
    """A steppable simulated elevator."""

    def __init__(
        self,
        spec: ElevatorSpec,
        rng: random.Random,
        *,
        arrivals: Callable[[float], tuple[float, int, int]] | None = None,
        wear: float | None = None,
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.landings = spec.landings()
        self._heights = {f: i * spec.floor_height_m for i, f in enumerate(self.landings)}
        self._arrivals = arrivals
        self.wear = rng.uniform(0.0, 0.4) if wear is None else wear
        self.t_s = 0.0
        self.phase = Phase.IDLE
        self.phase_started_s = 0.0
        self.floor = self.landings[0]
        self.pos_m = 0.0
        self.speed_mps = 0.0
        self.direction = 0
        self.door = "closed"
        self.door_lock = True
        self.safety_chain = True
        self.power = "mains"
        self.mode = "normal"
        self.level_mm: float | None = 0.0
        self.motor_c = AMBIENT_C + 5.0
        self.brake_c = AMBIENT_C + 3.0
        self.car: list[Passenger] = []
        self.waiting: dict[int, list[Passenger]] = {}
        self.car_calls: set[int] = set()
        self.events: list[DeviceEventRecord] = []
        self.trip: _Trip | None = None
        self.halt_until_s = 0.0
        self.armed: list[_ArmedFault] = []
        self.timed: dict[str, float] = {}
        self.silent = False
        self.clock_offset_s = 0.0
        self._door_cycle: dict[str, float] = {}
        self._reopens = 0
        self._trapped_alarm_due_s: float | None = None
        self._halt_duration_s = 0.0
        self._next_arrival = self._draw_arrival(0.0)
        self.next_maintenance_s = rng.uniform(0.0, MAINTENANCE_INTERVAL_S)
        self._duty_moving = 0.0

    # -- geometry --------------------------------------------------------------------------

    def height_of(self, floor: int) -> float:
        """Height of a landing above the lowest one."""
        return self._heights[floor]

    def nearest_landing(self, pos_m: float | None = None) -> int:
        """The landing closest to `pos_m` (default: the car)."""
        pos = self.pos_m if pos_m is None else pos_m
        index = round(pos / self.spec.floor_height_m)
        return self.landings[min(max(index, 0), len(self.landings) - 1)]

    def in_door_zone(self) -> bool:
        """True when the car is within the door zone of a landing."""
        return abs(self._heights[self.nearest_landing()] - self.pos_m) <= DOOR_ZONE_M

    @property
    def active(self) -> bool:
        """True while anything changes quickly enough to sample at 1 Hz."""
        return self.phase is not Phase.IDLE or bool(self.car) or self.door != "closed"

    # -- time ------------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> None:
        """Run the model until simulated time `t_s`."""
        while self.t_s < t_s - 1e-9:
            if self.phase is Phase.IDLE and not self.car:
                wake = min(t_s, self.next_wake_s())
                self._relax(wake - self.t_s)
                self.t_s = wake
                self._on_wake()
            else:
                dt = min(ACTIVE_STEP_S, t_s - self.t_s)
                self.t_s += dt
                self._step(dt)
                self._relax(dt)

    def next_wake_s(self) -> float:
        """When an idle car next has something to do (a call, a visit, a fault ending)."""
        wake = min(self._next_arrival[0], self.next_maintenance_s)
        if self.timed:
            wake = min(wake, *self.timed.values())
        return max(wake, self.t_s)

    def _on_wake(self) -> None:
        self._expire_timed()
        self._maybe_maintenance()
        self._take_arrivals()
        self._dispatch()

    def _relax(self, dt: float) -> None:
        """First-order thermal model: temperatures approach a target set by duty."""
        if dt <= 0:
            return
        moving = self.speed_mps > 0.05
        weight = math.exp(-dt / 600.0)
        self._duty_moving = self._duty_moving * weight + (1.0 if moving else 0.0) * (1 - weight)
        motor_target = AMBIENT_C + 10.0 + 45.0 * self._duty_moving
        brake_target = AMBIENT_C + 5.0 + 35.0 * self._duty_moving
        if "motor_overheat" in self.timed:
            motor_target += 75.0
        if "brake_overheat" in self.timed:
            brake_target += 80.0
        self.motor_c = motor_target + (self.motor_c - motor_target) * math.exp(-dt / MOTOR_TAU_S)
        self.brake_c = brake_target + (self.brake_c - brake_target) * math.exp(-dt / BRAKE_TAU_S)

    # -- traffic ---------------------------------------------------------------------------

    def _draw_arrival(self, after_s: float) -> tuple[float, int, int]:
        if self._arrivals is None:
            return (math.inf, 0, 0)
        return self._arrivals(after_s)

    def _take_arrivals(self) -> None:
        while self._next_arrival[0] <= self.t_s:
            _, origin, destination = self._next_arrival
            self.add_passenger(origin, destination)
            self._next_arrival = self._draw_arrival(self.t_s)

    def add_passenger(self, origin: int, destination: int) -> None:
        """A passenger presses the landing button at `origin`, bound for `destination`."""
        if origin == destination or origin not in self._heights:
            return
        weight = self.rng.uniform(45.0, 95.0)
        self.waiting.setdefault(origin, []).append(Passenger(origin, destination, weight, self.t_s))

    def _in_service(self) -> bool:
        return (
            self.mode == "normal"
            and self.power == "mains"
            and self.safety_chain
            and self.door_lock_ok()
            and self.phase is not Phase.HALTED
        )

    def door_lock_ok(self) -> bool:
        """False while a door-lock fault keeps the lock circuit open."""
        return "door_lock_fault" not in self.timed

    def _calls(self) -> set[int]:
        return self.car_calls | {floor for floor, people in self.waiting.items() if people}

    def _dispatch(self) -> None:
        """Simple collective control: keep going while calls lie ahead, then reverse."""
        if self.phase is not Phase.IDLE or not self._in_service():
            return
        here = self.floor
        if here in self._calls() and self.in_door_zone():
            self._set_phase(Phase.DOOR_OPENING)
            return
        calls = self._calls()
        if not calls:
            self.direction = 0
            return
        ahead = [f for f in calls if (f - here) * self.direction > 0] if self.direction else []
        if not ahead:
            self.direction = 1 if max(calls) > here else -1
            ahead = [f for f in calls if (f - here) * self.direction > 0]
        target = min(ahead, key=lambda f: abs(f - here))
        self._start_trip(target)

    def _start_trip(self, target: int) -> None:
        distance = abs(self._heights[target] - self.pos_m)
        profile = plan_trip(
            distance,
            speed_mps=self.spec.rated_speed_mps,
            accel_mps2=self.spec.acceleration_mps2,
            jerk_mps3=self.spec.jerk_mps3,
        )
        sign = 1 if self._heights[target] > self.pos_m else -1
        self.direction = sign
        self.trip = _Trip(profile, self.t_s + START_DELAY_S, self.pos_m, sign, target)
        self._set_phase(Phase.START_DELAY)

    # -- one active step -------------------------------------------------------------------

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self.phase_started_s = self.t_s
        if phase is Phase.DOOR_OPENING:
            self.door, self.door_lock = "opening", False
            self.level_mm = None if not self.in_door_zone() else self.level_mm
            self._door_cycle = {"opening_start": self.t_s}
            self._reopens = 0
        elif phase is Phase.DOOR_CLOSING:
            self.door = "closing"
            self._door_cycle.setdefault("closing_start", self.t_s)

    def _in_phase_s(self) -> float:
        return self.t_s - self.phase_started_s

    def _step(self, dt: float) -> None:
        self._expire_timed()
        self._take_arrivals()
        self._trapped_alarm()
        handler = _PHASE_STEPS[self.phase]
        handler(self, dt)
        self.floor = self.nearest_landing()

    def _step_idle(self, dt: float) -> None:
        self._maybe_maintenance()
        self._dispatch()

    def _step_door_opening(self, dt: float) -> None:
        stuck = self._armed_take("door_open_failure")
        if stuck is not None:
            self.halt_until_s = self.t_s + stuck
        if self.t_s < self.halt_until_s:
            return
        if self._in_phase_s() >= DOOR_OPEN_S:
            self.door = "open"
            self._door_cycle["open_s"] = self.t_s - self._door_cycle["opening_start"]
            self._board_and_alight()
            self._set_phase(Phase.DOOR_OPEN)
            if self._armed_take("unintended_movement", keep=True) is not None:
                self._set_phase(Phase.DRIFT)

    def _step_door_open(self, dt: float) -> None:
        hold = DOOR_HOLD_S + TRANSFER_S_PER_PASSENGER * len(self.car)
        if self._in_phase_s() >= hold:
            self._set_phase(Phase.DOOR_CLOSING)

    def _step_door_closing(self, dt: float) -> None:
        stuck = self._armed_take("door_close_failure")
        if stuck is not None:
            self.halt_until_s = self.t_s + stuck
        if self.t_s < self.halt_until_s:
            return
        if self._in_phase_s() < DOOR_CLOSE_S:
            # A passenger or the light curtain interrupts closing now and then.
            if self.rng.random() < REOPEN_PROBABILITY * dt / DOOR_CLOSE_S:
                self._reopens += 1
                self.phase, self.phase_started_s = Phase.DOOR_OPENING, self.t_s
                self.door = "opening"
            return
        self.door = "closed"
        self.door_lock = self.door_lock_ok()
        opening_start = self._door_cycle.get("opening_start", self.t_s)
        closing_start = self._door_cycle.get("closing_start", self.t_s)
        self._event(
            "door_cycle",
            open_s=round(self._door_cycle.get("open_s", DOOR_OPEN_S), 2),
            close_s=round(self.t_s - max(closing_start, opening_start), 2),
            reopens=self._reopens,
        )
        self._set_phase(Phase.IDLE)
        if self.car and self._armed_take("trapped_at_floor", keep=True) is not None:
            self._halt(self._armed_duration("trapped_at_floor"))
            return
        self._dispatch()

    def _step_start_delay(self, dt: float) -> None:
        if self.trip is not None and self.t_s >= self.trip.start_s:
            self._set_phase(Phase.MOVING)

    def _step_moving(self, dt: float) -> None:
        trip = self.trip
        if trip is None:
            self._set_phase(Phase.IDLE)
            return
        state = trip.profile.state_at(self.t_s - trip.start_s)
        self.pos_m = trip.start_pos_m + trip.sign * state.distance_m
        self.speed_mps = state.speed_mps
        self._moving_faults(trip)
        if self.phase is not Phase.MOVING:
            return
        if self.t_s - trip.start_s >= trip.profile.duration_s:
            self._arrive(trip)

    def _arrive(self, trip: _Trip) -> None:
        self.speed_mps = 0.0
        overtravel = "overtravel_top" if trip.sign > 0 else "overtravel_bottom"
        end = self.landings[-1] if trip.sign > 0 else self.landings[0]
        if trip.target == end and self._armed_take(overtravel, keep=True) is not None:
            self.pos_m = self._heights[end] + trip.sign * OVERTRAVEL_M
            self._halt(self._armed_duration(overtravel))
            return
        error_mm = self._stop_error_mm()
        self.pos_m = self._heights[trip.target] + error_mm / 1000.0
        self.level_mm = round(error_mm, 1)
        self.trip = None
        self.floor = trip.target
        if self.car and self._armed_take("trapped_at_floor", keep=True) is not None:
            self._halt(self._armed_duration("trapped_at_floor"))
            return
        self._set_phase(Phase.DOOR_OPENING)

    def _stop_error_mm(self) -> float:
        if "levelling_error" in self.timed:
            return self.rng.choice((-1, 1)) * self.rng.uniform(12.0, 20.0)
        error = self.rng.gauss(0.0, LEVEL_SIGMA_MM)
        return max(-LEVEL_HEALTHY_LIMIT_MM, min(LEVEL_HEALTHY_LIMIT_MM, error))

    def _moving_faults(self, trip: _Trip) -> None:
        """Faults that strike during a trip, once the car is between floors at full speed."""
        at_speed = self.speed_mps >= 0.9 * trip.profile.peak_speed_mps
        if self.in_door_zone() or not at_speed or trip.profile.peak_speed_mps < 0.3:
            return
        stop_at = self.pos_m + trip.sign * self.speed_mps**2 / (2 * EMERGENCY_DECEL_MPS2)
        stops_between = abs(self._heights[self.nearest_landing(stop_at)] - stop_at) > (
            DOOR_ZONE_M + 0.05
        )
        for name in ("trapped_between_floors", "stopped_outside_door_zone"):
            occupied_ok = bool(self.car) if name == "trapped_between_floors" else not self.car
            if not stops_between or not occupied_ok:
                continue
            if self._armed_take(name, keep=True) is not None:
                self._halt(self._armed_duration(name))
                return
        if self._armed_take("door_open_while_running", keep=True) is not None:
            self.door, self.door_lock = "opening", False
            self._event("fault_code", code=CODE_SAFETY_CHAIN_WHILE_RUNNING)
            self._halt(self._armed_duration("door_open_while_running"), door="opening")
            return
        cruising = self.speed_mps >= 0.95 * self.spec.rated_speed_mps
        if cruising and self._armed_take("overspeed", keep=True) is not None:
            self._set_phase(Phase.OVERSPEED)

    def _step_overspeed(self, dt: float) -> None:
        sign = self.trip.sign if self.trip else self.direction or 1
        limit = self.spec.rated_speed_mps * OVERSPEED_RATIO
        self.speed_mps = min(limit, self.speed_mps + 1.0 * dt)
        self.pos_m += sign * self.speed_mps * dt
        top, bottom = self._heights[self.landings[-1]], 0.0
        if self._in_phase_s() >= 2.0 or not bottom < self.pos_m < top:
            self.pos_m = min(max(self.pos_m, bottom), top)
            self._halt(self._armed_duration("overspeed"))

    def _drift_sign(self) -> int:
        # With the brake slipping the heavier side wins; at the bottom landing it can only rise.
        return 1 if self.nearest_landing() == self.landings[0] else -1

    def _step_drift(self, dt: float) -> None:
        self.speed_mps = DRIFT_SPEED_MPS
        self.pos_m += self._drift_sign() * DRIFT_SPEED_MPS * dt
        if self._in_phase_s() >= 2.0:
            self._event("fault_code", code=CODE_UNINTENDED_MOVEMENT)
            self._halt(self._armed_duration("unintended_movement"), door="open")

    def _halt(self, duration_s: float, *, door: str = "closed") -> None:
        """Brake the car to a standstill, keep it there for `duration_s`, then recover."""
        self.door = door
        self.door_lock = door == "closed" and self.door_lock_ok()
        self.level_mm = None
        self._halt_duration_s = duration_s
        if self.speed_mps > 0.05:
            self._set_phase(Phase.EMERGENCY_STOP)
            return
        self._standstill()

    def _standstill(self) -> None:
        self.speed_mps = 0.0
        self.halt_until_s = self.t_s + self._halt_duration_s
        if self.car:
            self._trapped_alarm_due_s = self.t_s + ALARM_AFTER_TRAPPED_S
        self._set_phase(Phase.HALTED)

    def _step_emergency_stop(self, dt: float) -> None:
        sign = self.trip.sign if self.trip else (self.direction or 1)
        self.speed_mps = max(0.0, self.speed_mps - EMERGENCY_DECEL_MPS2 * dt)
        top = self._heights[self.landings[-1]]
        limit = OVERTRAVEL_M
        self.pos_m = min(max(self.pos_m + sign * self.speed_mps * dt, -limit), top + limit)
        if self.speed_mps == 0.0:
            self._standstill()

    def _step_halted(self, dt: float) -> None:
        if self.t_s < self.halt_until_s or not self.safety_chain:
            return
        if self.power == "off":
            # The automatic rescue device brings the car to a landing on battery power.
            self.power = "battery"
        self._trapped_alarm_due_s = None
        self.door, self.door_lock = "closed", self.door_lock_ok()
        target = self.nearest_landing()
        if abs(self._heights[target] - self.pos_m) <= DOOR_ZONE_M / 2:
            self.trip = None
            self._set_phase(Phase.DOOR_OPENING)
        else:
            self.trip = _Trip(
                plan_trip(1.0, speed_mps=1.0, accel_mps2=1.0, jerk_mps3=1.0),
                self.t_s,
                self.pos_m,
                1 if self._heights[target] > self.pos_m else -1,
                target,
            )
            self._set_phase(Phase.RESCUE)

    def _step_rescue(self, dt: float) -> None:
        trip = self.trip
        if trip is None:
            self._set_phase(Phase.IDLE)
            return
        goal = self._heights[trip.target]
        self.speed_mps = RESCUE_SPEED_MPS
        self.pos_m += trip.sign * RESCUE_SPEED_MPS * dt
        if (goal - self.pos_m) * trip.sign <= 0:
            self.pos_m = goal
            self.speed_mps = 0.0
            self.level_mm = 0.0
            self.floor = trip.target
            self.trip = None
            self._set_phase(Phase.DOOR_OPENING)

    # -- passengers ------------------------------------------------------------------------

    def _board_and_alight(self) -> None:
        here = self.nearest_landing()
        self.car = [p for p in self.car if p.destination != here]
        self.car_calls.discard(here)
        boarding = self.waiting.pop(here, [])
        for passenger in boarding:
            self._event(
                "landing_call", floor=here, held_s=round(self.t_s - passenger.called_at_s, 1)
            )
            self.car.append(passenger)
            self.car_calls.add(passenger.destination)

    def load_kg(self) -> float:
        """Weight of the people in the car."""
        return sum(p.weight_kg for p in self.car)

    # -- faults ----------------------------------------------------------------------------

    def inject(self, fault: str, duration_s: float) -> None:
        """Start `fault` now; it lasts `duration_s` (or waits for its moment, then lasts)."""
        if fault not in SIMULATED_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        if fault in INSTANT_FAULTS:
            if fault == "alarm_button":
                self._event("alarm_button")
            else:
                self._event("fault_code", code=self.rng.choice(CONTROLLER_FAULT_CODES))
            return
        if fault in TIMED_FAULTS:
            self._start_timed(fault, duration_s)
            return
        self.armed.append(_ArmedFault(fault, duration_s))
        self._provoke(fault)

    def _provoke(self, fault: str) -> None:
        """Bring about the situation an armed fault waits for, as traffic would."""
        if self.phase is not Phase.IDLE:
            return
        here = self.floor
        top, bottom = self.landings[-1], self.landings[0]
        far = top if abs(top - here) >= abs(here - bottom) else bottom
        if fault in ("overtravel_top", "overspeed") or (fault == "trapped_between_floors"):
            destination = top if here != top else bottom
            if fault == "overtravel_top" and here == top:
                self._start_trip(bottom)
                self.add_passenger(bottom, top)
                return
            self.add_passenger(here, destination)
        elif fault == "overtravel_bottom":
            if here == bottom:
                self._start_trip(top)
                self.add_passenger(top, bottom)
                return
            self.add_passenger(here, bottom)
        elif fault == "stopped_outside_door_zone":
            self._start_trip(far)
            return
        elif fault in ("trapped_at_floor", "door_open_while_running"):
            self.add_passenger(here, far)
        else:  # door faults and unintended movement need a door cycle at this landing
            self.add_passenger(here, far)
        self._dispatch()

    def _armed_take(self, name: str, *, keep: bool = False) -> float | None:
        for armed in self.armed:
            if armed.name == name:
                if not keep:
                    self.armed.remove(armed)
                return armed.duration_s
        return None

    def _armed_duration(self, name: str) -> float:
        for armed in self.armed:
            if armed.name == name:
                self.armed.remove(armed)
                return armed.duration_s
        return 0.0

    def _start_timed(self, fault: str, duration_s: float) -> None:
        self.timed[fault] = self.t_s + duration_s
        if fault == "safety_chain_open":
            self.safety_chain = False
            if self.speed_mps > 0.05:
                self._event("fault_code", code=CODE_SAFETY_CHAIN_WHILE_RUNNING)
                self._halt(duration_s)
        elif fault == "door_lock_fault":
            self.door_lock = False
            if self.phase in (Phase.MOVING, Phase.OVERSPEED):
                self._halt(duration_s)
                self.door_lock = False
        elif fault == "power_failure":
            self.power = "off"
            if self.phase in (Phase.MOVING, Phase.OVERSPEED, Phase.START_DELAY):
                self._halt(2.0)
        elif fault == "offline":
            self.silent = True
        elif fault == "clock_skew":
            # A clock running behind: samples are still accepted (one ahead by more than
            # 5 min is dead-lettered, SPEC §3), so the clock_skew rule can see it.
            self.clock_offset_s = -360.0
        elif fault == "maintenance_overdue":
            self.next_maintenance_s = max(self.next_maintenance_s, self.t_s + duration_s)

    def _expire_timed(self) -> None:
        for fault, until in list(self.timed.items()):
            if self.t_s < until:
                continue
            del self.timed[fault]
            if fault == "safety_chain_open":
                self.safety_chain = True
            elif fault == "door_lock_fault":
                self.door_lock = self.door == "closed"
            elif fault == "power_failure":
                self.power = "mains"
            elif fault == "offline":
                self.silent = False
            elif fault == "clock_skew":
                self.clock_offset_s = 0.0

    def _trapped_alarm(self) -> None:
        due = self._trapped_alarm_due_s
        if due is not None and self.t_s >= due and self.car:
            self._event("alarm_button")
            self._trapped_alarm_due_s = None

    # -- maintenance visits ----------------------------------------------------------------

    def _maybe_maintenance(self) -> None:
        if self.t_s < self.next_maintenance_s or self.phase is not Phase.IDLE:
            return
        if self.mode == "normal":
            self._change_mode("maintenance")
            self.next_maintenance_s = self.t_s + MAINTENANCE_VISIT_S
        elif self.mode == "maintenance":
            self._change_mode("normal")
            jitter = self.rng.uniform(-86_400.0, 86_400.0)
            self.next_maintenance_s = self.t_s + MAINTENANCE_INTERVAL_S + jitter

    def _change_mode(self, mode: str) -> None:
        self._event("mode_change", **{"from": self.mode, "to": mode})
        self.mode = mode

    def set_mode(self, mode: str) -> None:
        """Switch the operating mode (inspection, fire, …), as a key switch or signal would."""
        if mode != self.mode:
            self._change_mode(mode)

    # -- output ----------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> None:
        self.events.append(DeviceEventRecord(self.t_s, {"type": kind, **fields}))

    def vibration_mg(self) -> float:
        """Car vibration now: grows with wear and speed, jumps with a vibration fault."""
        if self.speed_mps < 0.05:
            base = 1.5
        else:
            base = 8.0 + 10.0 * self.wear + 2.0 * self.speed_mps / self.spec.rated_speed_mps
        if "abnormal_vibration" in self.timed and self.speed_mps >= 0.05:
            base += 25.0
        return max(0.0, base + self.rng.gauss(0.0, 1.0))

    def telemetry(self) -> dict[str, Any]:
        """The state sample a device would publish now (without envelope fields)."""
        moving = self.speed_mps >= 0.05
        direction = "idle"
        if moving:
            sign = self.trip.sign if self.trip else self._drift_sign()
            direction = "up" if sign > 0 else "down"
        stopped_in_zone = not moving and self.in_door_zone()
        return {
            "floor": self.floor,
            "pos_m": round(self.pos_m, 3),
            "speed_mps": round(self.speed_mps, 3),
            "dir": direction,
            "door": self.door,
            "door_zone": self.in_door_zone(),
            "door_lock": self.door_lock,
            "safety_chain": self.safety_chain,
            "power": self.power,
            "load_kg": round(float(self.load_kg()), 1),
            "occupied": bool(self.car),
            "mode": self.mode,
            "vib_mg": round(self.vibration_mg(), 2),
            "motor_c": round(self.motor_c, 1),
            "brake_c": round(self.brake_c, 1),
            "level_mm": self.level_mm if stopped_in_zone else None,
        }


_PHASE_STEPS: Final[dict[Phase, Callable[[ElevatorModel, float], None]]] = {
    Phase.IDLE: ElevatorModel._step_idle,
    Phase.DOOR_OPENING: ElevatorModel._step_door_opening,
    Phase.DOOR_OPEN: ElevatorModel._step_door_open,
    Phase.DOOR_CLOSING: ElevatorModel._step_door_closing,
    Phase.START_DELAY: ElevatorModel._step_start_delay,
    Phase.MOVING: ElevatorModel._step_moving,
    Phase.EMERGENCY_STOP: ElevatorModel._step_emergency_stop,
    Phase.HALTED: ElevatorModel._step_halted,
    Phase.RESCUE: ElevatorModel._step_rescue,
    Phase.DRIFT: ElevatorModel._step_drift,
    Phase.OVERSPEED: ElevatorModel._step_overspeed,
}

__all__ = [
    "SIMULATED_FAULTS",
    "DeviceEventRecord",
    "ElevatorModel",
    "ElevatorSpec",
    "Passenger",
    "Phase",
]
