"""Telemetry reads on the real TimescaleDB: raw samples, pages and `time_bucket` aggregates."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
import pytest

from reports.telemetry import MAX_BUCKETS, MAX_RAW_ROWS, read_buckets, sample_page
from tests.factories import add_samples

T0 = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def elevator() -> str:
    """An elevator id no other test writes samples for (telemetry has no foreign key)."""
    return f"tq-{uuid.uuid4().hex[:8]}"


def _sample(
    conn: psycopg.Connection[Any],
    elevator: str,
    at: dt.datetime,
    *,
    floor: int = 1,
    speed_mps: float = 0.0,
    door: str = "closed",
    load_kg: float = 0.0,
    vib_mg: float | None = None,
    motor_c: float | None = None,
    brake_c: float | None = None,
) -> None:
    moving = speed_mps > 0.1
    add_samples(conn, elevator, [{
        "time": at, "seq": int(at.timestamp()), "floor": floor, "pos_m": 3.0 * (floor - 1),
        "speed_mps": speed_mps, "dir": "up" if moving else "idle", "door": door,
        "door_zone": not moving, "door_lock": door == "closed", "load_kg": load_kg,
        "occupied": load_kg > 0, "vib_mg": vib_mg, "motor_c": motor_c, "brake_c": brake_c,
        "level_mm": None if moving else 1.5,
    }])  # fmt: skip


def test_raw_samples_are_those_of_the_elevator_in_the_half_open_range_oldest_first(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    _sample(conn, elevator, T0 - dt.timedelta(days=1))  # another day, another chunk
    _sample(conn, elevator, T0 + dt.timedelta(seconds=20), floor=3)
    _sample(conn, elevator, T0, floor=2, speed_mps=1.5, load_kg=75.0, vib_mg=9.0)
    _sample(conn, elevator, T0 + MINUTE)  # `end` itself is outside
    _sample(conn, f"{elevator}-other", T0 + dt.timedelta(seconds=10))

    rows = sample_page(conn, elevator, start=T0, end=T0 + MINUTE, limit=10).rows

    assert [row["time"] for row in rows] == [T0, T0 + dt.timedelta(seconds=20)]
    assert rows[0] == {
        "time": T0, "floor": 2, "pos_m": 3.0, "speed_mps": 1.5, "dir": "up", "door": "closed",
        "door_zone": False, "door_lock": True, "safety_chain": True, "power": "mains",
        "load_kg": 75.0, "occupied": True, "mode": "normal", "vib_mg": 9.0, "motor_c": None,
        "brake_c": None, "level_mm": None,
    }  # fmt: skip
    assert rows[1]["floor"] == 3
    assert rows[1]["level_mm"] == 1.5


def test_raw_samples_are_read_page_by_page_after_the_last_time(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    times = [T0 + dt.timedelta(seconds=s) for s in range(5)]
    for at in times:
        _sample(conn, elevator, at)

    first = sample_page(conn, elevator, start=T0, end=T0 + MINUTE, limit=2).rows
    second = sample_page(conn, elevator, start=T0, end=T0 + MINUTE, limit=2, after=times[1]).rows
    last = sample_page(conn, elevator, start=T0, end=T0 + MINUTE, limit=2, after=times[3]).rows

    assert [row["time"] for row in first] == times[:2]
    assert [row["time"] for row in second] == times[2:4]
    assert [row["time"] for row in last] == times[4:]


def test_buckets_aggregate_each_interval_of_the_range(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    _sample(conn, elevator, T0, floor=1, door="open", load_kg=80.0, vib_mg=2.0, motor_c=40.0,
            brake_c=30.0)  # fmt: skip
    _sample(conn, elevator, T0 + dt.timedelta(seconds=30), floor=2, speed_mps=1.5,
            load_kg=160.0, vib_mg=8.0, motor_c=42.5, brake_c=31.0)  # fmt: skip
    _sample(conn, elevator, T0 + MINUTE, floor=4, speed_mps=0.5, door="closed", motor_c=41.0)
    _sample(conn, elevator, T0 + MINUTE + dt.timedelta(seconds=30), floor=5, door="opening")
    _sample(conn, elevator, T0 + 2 * MINUTE, floor=9, speed_mps=2.0)  # outside the range

    buckets = read_buckets(conn, elevator, start=T0, end=T0 + 2 * MINUTE, bucket_s=60)

    assert buckets == [
        {"bucket": T0, "samples": 2, "moving_samples": 1, "speed_avg_mps": 0.75,
         "speed_max_mps": 1.5, "load_avg_kg": 120.0, "load_max_kg": 160.0, "vib_max_mg": 8.0,
         "motor_max_c": 42.5, "brake_max_c": 31.0, "floor_min": 1, "floor_max": 2,
         "door_open_samples": 1},
        {"bucket": T0 + MINUTE, "samples": 2, "moving_samples": 1, "speed_avg_mps": 0.25,
         "speed_max_mps": 0.5, "load_avg_kg": 0.0, "load_max_kg": 0.0, "vib_max_mg": None,
         "motor_max_c": 41.0, "brake_max_c": None, "floor_min": 4, "floor_max": 5,
         "door_open_samples": 1},
    ]  # fmt: skip


def test_buckets_are_aligned_and_hold_only_samples_from_start(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    for second in (0, 10, 20, 70):
        _sample(conn, elevator, T0 + dt.timedelta(seconds=second))

    buckets = read_buckets(
        conn, elevator, start=T0 + dt.timedelta(seconds=15), end=T0 + 2 * MINUTE, bucket_s=60
    )

    assert [(b["bucket"], b["samples"]) for b in buckets] == [(T0, 1), (T0 + MINUTE, 1)]


def test_an_elevator_without_samples_in_the_range_reads_empty(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    _sample(conn, elevator, T0 - dt.timedelta(hours=2))

    assert sample_page(conn, elevator, start=T0, end=T0 + MINUTE, limit=10).rows == []
    assert read_buckets(conn, elevator, start=T0, end=T0 + MINUTE, bucket_s=60) == []


def test_oversized_or_malformed_requests_are_refused(
    conn: psycopg.Connection[Any], elevator: str
) -> None:
    day = dt.timedelta(days=1)
    with pytest.raises(ValueError, match="limit"):
        sample_page(conn, elevator, start=T0, end=T0 + day, limit=MAX_RAW_ROWS + 1)
    with pytest.raises(ValueError, match="buckets"):
        read_buckets(conn, elevator, start=T0, end=T0 + MAX_BUCKETS * MINUTE + MINUTE,
                     bucket_s=60)  # fmt: skip
    with pytest.raises(ValueError, match="time zone"):
        sample_page(conn, elevator, start=T0.replace(tzinfo=None), end=T0 + day, limit=10)
    with pytest.raises(ValueError, match="after start"):
        read_buckets(conn, elevator, start=T0, end=T0, bucket_s=60)
