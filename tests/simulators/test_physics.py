from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.physics import plan_trip

speeds = st.sampled_from([0.5, 1.0, 1.5, 1.75, 2.0, 2.5])
accels = st.floats(min_value=0.4, max_value=1.2)
jerks = st.floats(min_value=0.6, max_value=2.0)
distances = st.floats(min_value=0.05, max_value=120.0)


@given(distance=distances, speed=speeds, accel=accels, jerk=jerks)
@settings(max_examples=200, deadline=None)
def test_trip_respects_speed_acceleration_and_jerk_and_ends_at_rest(
    distance: float, speed: float, accel: float, jerk: float
) -> None:
    profile = plan_trip(distance, speed_mps=speed, accel_mps2=accel, jerk_mps3=jerk)
    dt = profile.duration_s / 400
    previous = profile.state_at(0.0)
    assert (previous.distance_m, previous.speed_mps) == (0.0, 0.0)
    for step in range(1, 401):
        state = profile.state_at(step * dt)
        assert state.speed_mps <= speed * (1 + 1e-9)
        assert abs(state.accel_mps2) <= accel * (1 + 1e-9)
        assert abs(state.accel_mps2 - previous.accel_mps2) <= jerk * dt * (1 + 1e-6)
        assert state.distance_m >= previous.distance_m - 1e-12  # never reverses
        previous = state
    end = profile.state_at(profile.duration_s)
    assert math.isclose(end.distance_m, distance, rel_tol=1e-9)
    assert end.speed_mps == 0.0


def test_long_trip_reaches_rated_speed_with_the_textbook_flight_time() -> None:
    v, a, j, d = 1.75, 0.8, 1.2, 45.0
    profile = plan_trip(d, speed_mps=v, accel_mps2=a, jerk_mps3=j)
    assert math.isclose(profile.peak_speed_mps, v)
    assert math.isclose(profile.duration_s, d / v + v / a + a / j, rel_tol=1e-9)


def test_one_floor_trip_does_not_reach_rated_speed() -> None:
    profile = plan_trip(2.9, speed_mps=2.5, accel_mps2=0.9, jerk_mps3=1.4)
    assert profile.peak_speed_mps < 2.5
    assert math.isclose(profile.state_at(profile.duration_s).distance_m, 2.9)


def test_zero_distance_is_an_empty_trip() -> None:
    assert plan_trip(0.0, speed_mps=1.0, accel_mps2=1.0, jerk_mps3=1.0).duration_s == 0.0
