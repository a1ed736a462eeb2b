"""Jerk-limited (S-curve) motion profiles for elevator trips; pure functions, no I/O.

A trip accelerates with jerk `j` up to acceleration `a`, holds it, eases off to the peak
speed, cruises, and mirrors the same on the way down (seven constant-jerk segments). When the
trip is too short to reach rated speed the peak speed is lowered (and, for very short trips,
the peak acceleration too) so the car still stops exactly at the target. With the full profile,
flight time is d/v + v/a + a/j (Peters, "Lift Performance Time").
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MotionState:
    """Position (m, along the trip), speed (m/s, ≥ 0) and acceleration (m/s²) at one instant."""

    distance_m: float
    speed_mps: float
    accel_mps2: float


@dataclass(frozen=True, slots=True)
class TripProfile:
    """A planned trip of `distance_m` as seven (duration, jerk) segments starting at rest."""

    distance_m: float
    peak_speed_mps: float
    peak_accel_mps2: float
    segments: tuple[tuple[float, float], ...]
    duration_s: float  # from start to standstill at the target

    def state_at(self, t_s: float) -> MotionState:
        """Where the car is `t_s` seconds after the start (clamped to the trip)."""
        if t_s <= 0:
            return MotionState(0.0, 0.0, 0.0)
        if t_s >= self.duration_s:
            return MotionState(self.distance_m, 0.0, 0.0)
        x = v = a = 0.0
        remaining = t_s
        for duration, jerk in self.segments:
            step = min(duration, remaining)
            x += v * step + a * step**2 / 2 + jerk * step**3 / 6
            v += a * step + jerk * step**2 / 2
            a += jerk * step
            remaining -= step
            if remaining <= 0:
                break
        return MotionState(min(x, self.distance_m), max(v, 0.0), a)


def _accel_phase(peak_speed: float, accel: float, jerk: float) -> tuple[float, float, float]:
    """(jerk time, constant-accel time, peak accel) to go from rest to `peak_speed`."""
    if peak_speed >= accel * accel / jerk:
        return accel / jerk, peak_speed / accel - accel / jerk, accel
    t_jerk = math.sqrt(peak_speed / jerk)
    return t_jerk, 0.0, jerk * t_jerk


def _accel_distance(peak_speed: float, accel: float, jerk: float) -> float:
    t_jerk, t_const, _ = _accel_phase(peak_speed, accel, jerk)
    # Symmetric S-curve: the speed averages half the peak over the whole phase.
    return peak_speed * (2 * t_jerk + t_const) / 2


def plan_trip(
    distance_m: float, *, speed_mps: float, accel_mps2: float, jerk_mps3: float
) -> TripProfile:
    """The fastest trip of `distance_m` within the speed, acceleration and jerk limits."""
    if distance_m <= 0:
        return TripProfile(0.0, 0.0, 0.0, (), 0.0)
    peak = speed_mps
    if 2 * _accel_distance(peak, accel_mps2, jerk_mps3) > distance_m:
        low, high = 0.0, speed_mps
        for _ in range(60):
            mid = (low + high) / 2
            if 2 * _accel_distance(mid, accel_mps2, jerk_mps3) > distance_m:
                high = mid
            else:
                low = mid
        peak = low
    t_jerk, t_const, peak_accel = _accel_phase(peak, accel_mps2, jerk_mps3)
    cruise = max(0.0, (distance_m - 2 * _accel_distance(peak, accel_mps2, jerk_mps3)) / peak)
    j = jerk_mps3
    segments = (
        (t_jerk, j),
        (t_const, 0.0),
        (t_jerk, -j),
        (cruise, 0.0),
        (t_jerk, -j),
        (t_const, 0.0),
        (t_jerk, j),
    )
    return TripProfile(distance_m, peak, peak_accel, segments, sum(d for d, _ in segments))
