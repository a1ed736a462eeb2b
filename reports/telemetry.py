"""Telemetry reads for one elevator: raw samples or `time_bucket` aggregates over a time range.

These serve `GET /api/v1/elevators/{id}/telemetry?start=&end=&bucket=` (raw samples a page
at a time, `sample_page`). Both queries filter on `elevator_id` and a half-open
`[start, end)` range of device time, so the planner walks the unique index
`(elevator_id, time DESC, boot, seq)` of only the chunks that overlap the range (TimescaleDB
excludes the others at plan time, or at executor start-up when the statement is prepared
and the range arrives as a parameter). Every value is bound as a parameter.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from core.pages import KeysetPage, page_of

# One page of raw samples: 10,000 samples are 2.8 hours of an elevator at 1 Hz, about 4 MB of
# JSON and a few milliseconds of index scan, and more points than a chart is wide; longer
# ranges are read page by page (`after`) or as buckets.
MAX_RAW_ROWS: Final = 10_000
# The same reasoning for aggregates: 10,000 buckets are a day at 10 s or a week at 2 min,
# which bounds the response size and the work of one request whatever the range asked for.
MAX_BUCKETS: Final = 10_000
# A car below this speed is standing (the SPEC §4 rules use 0.05 m/s and 0.1 m/s).
MOVING_SPEED_MPS: Final = 0.1

_SAMPLES_IN_RANGE: Final = (
    "SELECT time, floor, pos_m, speed_mps, dir, door, door_zone, door_lock, safety_chain, "
    "power, load_kg, occupied, mode, vib_mg, motor_c, brake_c, level_mm FROM telemetry "
    "WHERE elevator_id = %(elevator)s AND time >= %(start)s AND time < %(end)s "
)
_READ_SAMPLES: Final = _SAMPLES_IN_RANGE + "ORDER BY time LIMIT %(limit)s"
_READ_SAMPLES_AFTER: Final = (
    _SAMPLES_IN_RANGE + "AND time > %(after)s ORDER BY time LIMIT %(limit)s"
)
_READ_BUCKETS: Final = (
    "SELECT time_bucket(make_interval(secs => %(bucket_s)s), time) AS bucket, "
    "count(*) AS samples, "
    "count(*) FILTER (WHERE speed_mps > %(moving_mps)s) AS moving_samples, "
    "avg(speed_mps) AS speed_avg_mps, max(speed_mps) AS speed_max_mps, "
    "avg(load_kg) AS load_avg_kg, max(load_kg) AS load_max_kg, "
    "max(vib_mg) AS vib_max_mg, max(motor_c) AS motor_max_c, max(brake_c) AS brake_max_c, "
    "min(floor) AS floor_min, max(floor) AS floor_max, "
    "count(*) FILTER (WHERE door <> 'closed') AS door_open_samples FROM telemetry "
    "WHERE elevator_id = %(elevator)s AND time >= %(start)s AND time < %(end)s "
    "GROUP BY bucket ORDER BY bucket"
)


def _check_range(start: datetime, end: datetime) -> None:
    # A naive datetime would be read in the session's time zone, not in UTC.
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must carry a time zone")
    if end <= start:
        raise ValueError("end must be after start")


def sample_page(
    conn: psycopg.Connection[Any],
    elevator_id: str,
    *,
    start: datetime,
    end: datetime,
    limit: int,
    after: datetime | None = None,
) -> KeysetPage[dict[str, Any]]:
    """Raw samples of one elevator in `[start, end)`, oldest first: a page of at most `limit`
    of them, and the time of its last sample when more follow.

    For the next page pass that time as `after`. Samples that share a device time with the
    last one of a page (a device clock set back) are skipped by the next page. Raises
    ValueError for a naive or empty range, or a `limit` outside 1..MAX_RAW_ROWS.
    """
    _check_range(start, end)
    if not 1 <= limit <= MAX_RAW_ROWS:
        raise ValueError(f"limit must be between 1 and {MAX_RAW_ROWS}")
    if after is not None and after.tzinfo is None:
        raise ValueError("after must carry a time zone")
    params = {"elevator": elevator_id, "start": start, "end": end, "after": after,
              "limit": limit + 1}  # fmt: skip
    query = _READ_SAMPLES if after is None else _READ_SAMPLES_AFTER
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return page_of(rows, limit, lambda row: row["time"])


def read_buckets(
    conn: psycopg.Connection[Any],
    elevator_id: str,
    *,
    start: datetime,
    end: datetime,
    bucket_s: int,
) -> list[dict[str, Any]]:
    """Aggregates of one elevator's samples in `[start, end)` per `bucket_s`, oldest first.

    Buckets are `time_bucket` buckets (aligned to midnight UTC when `bucket_s` divides a
    day), so the first and last may start before `start` or reach past `end`; they hold only
    the samples inside the range. Buckets without samples are left out. Raises ValueError
    for a naive or empty range, or one of more than MAX_BUCKETS buckets.
    """
    _check_range(start, end)
    if bucket_s < 1:
        raise ValueError("bucket_s must be at least 1")
    if math.ceil((end - start).total_seconds() / bucket_s) > MAX_BUCKETS:
        raise ValueError(f"the range holds more than {MAX_BUCKETS} buckets of {bucket_s} s")
    params = {
        "elevator": elevator_id,
        "start": start,
        "end": end,
        "bucket_s": bucket_s,
        "moving_mps": MOVING_SPEED_MPS,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_READ_BUCKETS, params).fetchall()
