"""Behaviour of healthy simulated elevators over realistic traffic."""

from __future__ import annotations

import datetime as dt
import itertools

import msgspec
import pytest

from core.protocol import TelemetrySample
from simulators.fleet import Fleet
from tests.simulators.helpers import START, TOWER, WALKUP, Decoded, events, run, telemetry


@pytest.fixture(scope="module")
def busy_morning() -> list[Decoded]:
    """Two elevators through a morning peak with plenty of passengers."""
    return run([TOWER, WALKUP], until_s=2 * 3600.0, traffic_scale=3.0, start=START)


def test_every_sample_matches_the_protocol(busy_morning: list[Decoded]) -> None:
    fleet = Fleet([TOWER], seed=1, start=START, traffic_scale=3.0)
    for message in fleet.advance_to(600.0):
        if message.kind == "telemetry":
            sample = msgspec.json.decode(message.payload, type=TelemetrySample)
            assert sample.v == 1
            assert sample.speed_mps >= 0


def test_healthy_car_stops_within_10_mm(busy_morning: list[Decoded]) -> None:
    levels = [m.body["level_mm"] for m in telemetry(busy_morning) if m.body["level_mm"] is not None]
    assert len(levels) > 100
    assert max(abs(level) for level in levels) <= 10.0


def test_doors_never_open_outside_a_door_zone_without_a_fault(busy_morning: list[Decoded]) -> None:
    samples = telemetry(busy_morning)
    open_samples = [m for m in samples if m.body["door"] != "closed"]
    assert len(open_samples) > 50
    assert all(m.body["door_zone"] for m in open_samples)
    assert all(m.body["speed_mps"] < 0.05 for m in open_samples)


def test_car_never_exceeds_rated_speed_or_leaves_the_shaft(busy_morning: list[Decoded]) -> None:
    for spec in (TOWER, WALKUP):
        top_m = (len(spec.landings()) - 1) * spec.floor_height_m
        samples = [m for m in telemetry(busy_morning) if m.elevator == spec.elevator]
        assert max(m.body["speed_mps"] for m in samples) <= spec.rated_speed_mps
        assert all(-0.01 <= m.body["pos_m"] <= top_m + 0.01 for m in samples)
        assert {m.body["floor"] for m in samples} <= set(spec.landings())


def test_passengers_ride_and_doors_cycle(busy_morning: list[Decoded]) -> None:
    samples = telemetry(busy_morning)
    assert any(m.body["occupied"] and m.body["load_kg"] > 40 for m in samples)
    cycles = events(busy_morning, "door_cycle")
    assert len(cycles) > 20
    assert all(c.body["open_s"] >= 1.5 and c.body["close_s"] >= 2.5 for c in cycles)
    assert events(busy_morning, "landing_call")


def test_morning_peak_runs_down_and_evening_peak_runs_up() -> None:
    def downward_share(hour: int) -> float:
        start = START.replace(hour=hour)
        samples = telemetry(run([TOWER], until_s=3600.0, traffic_scale=2.0, start=start))
        moving = [m.body["dir"] for m in samples if m.body["dir"] != "idle" and m.body["occupied"]]
        return moving.count("down") / len(moving)

    assert downward_share(7) > 0.6
    assert downward_share(18) < 0.4


def test_sampling_is_1_hz_while_moving_and_10_s_idle() -> None:
    samples = telemetry(run([TOWER], until_s=3600.0, traffic_scale=0.0))
    gaps = {round(b.t_s - a.t_s, 1) for a, b in itertools.pairwise(samples)}
    assert gaps == {10.0}
    busy = telemetry(run([TOWER], until_s=1800.0, traffic_scale=3.0))
    moving_gaps = [
        round(b.t_s - a.t_s, 1) for a, b in itertools.pairwise(busy) if a.body["speed_mps"] > 0.1
    ]
    assert moving_gaps
    assert set(moving_gaps) == {1.0}


def test_same_seed_gives_byte_identical_output() -> None:
    def payloads(seed: int) -> list[bytes]:
        fleet = Fleet([TOWER, WALKUP], seed=seed, start=START, traffic_scale=2.0)
        return [m.payload for m in fleet.advance_to(900.0)]

    first, second = payloads(3), payloads(3)
    assert first == second
    assert first != payloads(4)


def test_sequence_numbers_increase_within_a_boot() -> None:
    messages = run([TOWER], until_s=900.0, traffic_scale=2.0)
    seqs = [m.body["seq"] for m in messages if m.kind != "status"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len({m.body["boot"] for m in messages}) == 1


def test_motor_warms_with_duty() -> None:
    quiet = telemetry(run([TOWER], until_s=4 * 3600.0, traffic_scale=0.0))
    busy = telemetry(run([TOWER], until_s=4 * 3600.0, traffic_scale=4.0))
    assert busy[-1].body["motor_c"] > quiet[-1].body["motor_c"] + 5


def test_start_time_sets_the_timestamps() -> None:
    start = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    first = telemetry(run([TOWER], until_s=30.0, start=start))[0]
    assert first.body["ts"].startswith("2026-01-02T03:04:")
    assert first.body["ts"].endswith("Z")
