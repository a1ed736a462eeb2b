"""One simulated elevator as a pure, steppable state machine (no I/O, no clock, no globals).

`ElevatorModel.advance_to(t_s)` moves simulated time forward; the model serves passengers by
simple collective control, cycles its doors, drives S-curve trips, heats its motor and brake
with duty, and records device events (`door_cycle`, `landing_call`, `mode_change`,
`alarm_button`, `fault_code`) in `events`. `telemetry()` reads the sample a device would send
now. Faults are injected with `inject()`; what each one does to the car, and how the car halts
and recovers, is in `simulators.faults`. The numbers are in `simulators.car`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from core.registry import ElevatorSpec
from simulators import faults
from simulators.car import (
    ACTIVE_STEP_S,
    AMBIENT_C,
    BRAKE_TAU_S,
    DOOR_CLOSE_S,
    DOOR_HOLD_S,
    DOOR_OPEN_S,
    DOOR_ZONE_M,
    LEVEL_HEALTHY_LIMIT_MM,
    LEVEL_SIGMA_MM,
    MAINTENANCE_INTERVAL_S,
    MAINTENANCE_VISIT_S,
    MOTOR_TAU_S,
    OVERTRAVEL_M,
    REOPEN_PROBABILITY,
    START_DELAY_S,
    TRANSFER_S_PER_PASSENGER,
    Phase,
    Trip,
)
from simulators.physics import plan_trip


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
        self.trip: Trip | None = None
        self.halt_until_s = 0.0
        self.armed: list[faults.ArmedFault] = []
        self.timed: dict[str, float] = {}
        self.silent = False
        self.clock_offset_s = 0.0
        self._door_cycle: dict[str, float] = {}
        self._reopens = 0
        self.trapped_alarm_due_s: float | None = None
        self.halt_duration_s = 0.0
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
        faults.expire_timed(self)
        self._maybe_maintenance()
        self._take_arrivals()
        self.dispatch()

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

    def dispatch(self) -> None:
        """Simple collective control: keep going while calls lie ahead, then reverse."""
        if self.phase is not Phase.IDLE or not self._in_service():
            return
        here = self.floor
        if here in self._calls() and self.in_door_zone():
            self.set_phase(Phase.DOOR_OPENING)
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
        self.start_trip(target)

    def start_trip(self, target: int) -> None:
        """Plan an S-curve trip to landing `target`, leaving after the start delay."""
        distance = abs(self._heights[target] - self.pos_m)
        profile = plan_trip(
            distance,
            speed_mps=self.spec.rated_speed_mps,
            accel_mps2=self.spec.acceleration_mps2,
            jerk_mps3=self.spec.jerk_mps3,
        )
        sign = 1 if self._heights[target] > self.pos_m else -1
        self.direction = sign
        self.trip = Trip(profile, self.t_s + START_DELAY_S, self.pos_m, sign, target)
        self.set_phase(Phase.START_DELAY)

    # -- one active step -------------------------------------------------------------------

    def set_phase(self, phase: Phase) -> None:
        """Enter `phase` now (opening doors unlock and start a door cycle)."""
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

    def in_phase_s(self) -> float:
        """Seconds since the car entered its phase."""
        return self.t_s - self.phase_started_s

    def _step(self, dt: float) -> None:
        faults.expire_timed(self)
        self._take_arrivals()
        self._trapped_alarm()
        handler = _PHASE_STEPS[self.phase]
        handler(self, dt)
        self.floor = self.nearest_landing()

    def _step_idle(self, dt: float) -> None:
        self._maybe_maintenance()
        self.dispatch()

    def _door_stuck(self, fault: str) -> bool:
        """Whether the door stays put: `fault` (a door failure) bites now, or holds it still."""
        stuck = faults.armed_take(self, fault)
        if stuck is not None:
            self.halt_until_s = self.t_s + stuck
        return self.t_s < self.halt_until_s

    def _step_door_opening(self, dt: float) -> None:
        if self._door_stuck("door_open_failure"):
            return
        if self.in_phase_s() >= DOOR_OPEN_S:
            self.door = "open"
            self._door_cycle["open_s"] = self.t_s - self._door_cycle["opening_start"]
            self._board_and_alight()
            self.set_phase(Phase.DOOR_OPEN)
            if faults.armed_take(self, "unintended_movement", keep=True) is not None:
                self.set_phase(Phase.DRIFT)

    def _step_door_open(self, dt: float) -> None:
        hold = DOOR_HOLD_S + TRANSFER_S_PER_PASSENGER * len(self.car)
        if self.in_phase_s() >= hold:
            self.set_phase(Phase.DOOR_CLOSING)

    def _step_door_closing(self, dt: float) -> None:
        if self._door_stuck("door_close_failure"):
            return
        if self.in_phase_s() < DOOR_CLOSE_S:
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
        self.record_event(
            "door_cycle",
            open_s=round(self._door_cycle.get("open_s", DOOR_OPEN_S), 2),
            close_s=round(self.t_s - max(closing_start, opening_start), 2),
            reopens=self._reopens,
        )
        self.set_phase(Phase.IDLE)
        if self.car and faults.armed_take(self, "trapped_at_floor", keep=True) is not None:
            faults.halt(self, faults.armed_duration(self, "trapped_at_floor"))
            return
        self.dispatch()

    def _step_start_delay(self, dt: float) -> None:
        if self.trip is not None and self.t_s >= self.trip.start_s:
            self.set_phase(Phase.MOVING)

    def _step_moving(self, dt: float) -> None:
        trip = self.trip
        if trip is None:
            self.set_phase(Phase.IDLE)
            return
        state = trip.profile.state_at(self.t_s - trip.start_s)
        self.pos_m = trip.start_pos_m + trip.sign * state.distance_m
        self.speed_mps = state.speed_mps
        faults.strike_while_moving(self, trip)
        if self.phase is not Phase.MOVING:
            return
        if self.t_s - trip.start_s >= trip.profile.duration_s:
            self._arrive(trip)

    def _arrive(self, trip: Trip) -> None:
        self.speed_mps = 0.0
        overtravel = "overtravel_top" if trip.sign > 0 else "overtravel_bottom"
        end = self.landings[-1] if trip.sign > 0 else self.landings[0]
        if trip.target == end and faults.armed_take(self, overtravel, keep=True) is not None:
            self.pos_m = self._heights[end] + trip.sign * OVERTRAVEL_M
            faults.halt(self, faults.armed_duration(self, overtravel))
            return
        error_mm = self._stop_error_mm()
        self.pos_m = self._heights[trip.target] + error_mm / 1000.0
        self.level_mm = round(error_mm, 1)
        self.trip = None
        self.floor = trip.target
        if self.car and faults.armed_take(self, "trapped_at_floor", keep=True) is not None:
            faults.halt(self, faults.armed_duration(self, "trapped_at_floor"))
            return
        self.set_phase(Phase.DOOR_OPENING)

    def _stop_error_mm(self) -> float:
        if "levelling_error" in self.timed:
            return self.rng.choice((-1, 1)) * self.rng.uniform(12.0, 20.0)
        error = self.rng.gauss(0.0, LEVEL_SIGMA_MM)
        return max(-LEVEL_HEALTHY_LIMIT_MM, min(LEVEL_HEALTHY_LIMIT_MM, error))

    # -- passengers ------------------------------------------------------------------------

    def _board_and_alight(self) -> None:
        here = self.nearest_landing()
        self.car = [p for p in self.car if p.destination != here]
        self.car_calls.discard(here)
        boarding = self.waiting.pop(here, [])
        for passenger in boarding:
            self.record_event(
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
        faults.inject(self, fault, duration_s)

    def _trapped_alarm(self) -> None:
        due = self.trapped_alarm_due_s
        if due is not None and self.t_s >= due and self.car:
            self.record_event("alarm_button")
            self.trapped_alarm_due_s = None

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
        self.record_event("mode_change", **{"from": self.mode, "to": mode})
        self.mode = mode

    def set_mode(self, mode: str) -> None:
        """Switch the operating mode (inspection, fire, …), as a key switch or signal would."""
        if mode != self.mode:
            self._change_mode(mode)

    # -- output ----------------------------------------------------------------------------

    def record_event(self, kind: str, **fields: Any) -> None:
        """Record a device event of `kind` now."""
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
            sign = self.trip.sign if self.trip else faults.drift_sign(self)
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
    Phase.EMERGENCY_STOP: faults.step_emergency_stop,
    Phase.HALTED: faults.step_halted,
    Phase.RESCUE: faults.step_rescue,
    Phase.DRIFT: faults.step_drift,
    Phase.OVERSPEED: faults.step_overspeed,
}

__all__ = ["DeviceEventRecord", "ElevatorModel", "ElevatorSpec", "Passenger"]
