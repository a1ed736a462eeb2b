"""Rows and device messages for tests: sensible defaults, keyword overrides.

The row factories write through a psycopg connection, the platform's run-time path (for a
SQLAlchemy connection or session, through `driver_connection`), and never commit. Inside the
`conn` fixture their rows vanish with the test; a test whose rows another connection or process
must see hands in a connection it commits (or an autocommit one).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import msgspec
import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session

from accounts.users import UserRecord, create_user
from alerts.rules import Reading

# A healthy car standing empty at floor 3 (6 m above the lowest landing), door closed.
STANDING: Final[dict[str, Any]] = {
    "floor": 3, "pos_m": 6.0, "speed_mps": 0.0, "dir": "idle", "door": "closed",
    "door_zone": True, "door_lock": True, "safety_chain": True, "power": "mains",
    "load_kg": 0.0, "occupied": False, "mode": "normal",
}  # fmt: skip
TELEMETRY_COLUMNS: Final = (
    "time", "received_at", "elevator_id", "boot", "seq", *STANDING,
    "vib_mg", "motor_c", "brake_c", "level_mm",
)  # fmt: skip


# What the rules read of a healthy car standing empty at floor 1, the lowest landing.
READING: Final = Reading(
    t_s=0.0, floor=1, pos_m=0.0, speed_mps=0.0, door="closed", door_zone=True,
    door_lock=True, safety_chain=True, power="mains", occupied=False, mode="normal",
)  # fmt: skip


class Placed(NamedTuple):
    """The ids of an elevator made by `add_elevator` and of its site."""

    site: str
    elevator: str


def driver_connection(db: sa.Connection | Session) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy connection or session: the factories write
    through it inside that connection's transaction."""
    connection = db.connection() if isinstance(db, Session) else db
    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"not a psycopg connection: {driver!r}")
    return driver


def unique(prefix: str) -> str:
    """`prefix-` and eight hex digits: an id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def add_site(
    conn: psycopg.Connection[Any],
    site_id: str | None = None,
    *,
    name: str | None = None,
    district: str | None = None,
) -> str:
    """A site (named after its id unless `name` is given), unless one with this id exists;
    returns its id, a new `site-…` one unless `site_id` is given."""
    site_id = site_id or unique("site")
    conn.execute(
        "INSERT INTO sites (id, name, district) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (site_id, name or site_id, district),
    )
    return site_id


def add_elevator(
    conn: psycopg.Connection[Any],
    elevator_id: str | None = None,
    *,
    site: str | None = None,
    prefix: str = "t",
    site_name: str | None = None,
    building: str = "B",
    lowest_floor: int = 1,
    highest_floor: int = 9,
    rated_speed_mps: float = 1.0,
    rated_load_kg: float = 800.0,
    created_at: dt.datetime | None = None,
    exist_ok: bool = False,
) -> Placed:
    """A registered elevator and, when missing, its site (named `site_name`).

    Without ids both are new: site `prefix-xxxxxxxx` and elevator `prefix-el-xxxxxxxx`.
    `created_at` back-dates the registration; with `exist_ok` an elevator of that id already
    registered is left as it is.
    """
    suffix = uuid.uuid4().hex[:8]
    site = add_site(conn, site or f"{prefix}-{suffix}", name=site_name)
    elevator_id = elevator_id or f"{prefix}-el-{suffix}"
    conn.execute(
        "INSERT INTO elevators (id, site_id, building, lowest_floor, highest_floor, "
        "rated_speed_mps, rated_load_kg, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, COALESCE(%s, now())) "
        + ("ON CONFLICT (id) DO NOTHING" if exist_ok else ""),
        (elevator_id, site, building, lowest_floor, highest_floor, rated_speed_mps,
         rated_load_kg, created_at),
    )  # fmt: skip
    return Placed(site, elevator_id)


def add_user(
    conn: psycopg.Connection[Any],
    role: str = "crew",
    *,
    sites: Sequence[str] = (),
    username: str | None = None,
    password: str | None = None,
    signer_address: str | None = None,
) -> UserRecord:
    """A user made as `accounts.users.create_user` makes one (a crew member needs a site),
    named `role-xxxxxxxx` unless `username` is given."""
    return create_user(
        conn,
        username=username or unique(role),
        role=role,
        sites=sites,
        password=password,
        signer_address=signer_address,
    )


def add_samples(
    conn: psycopg.Connection[Any], elevator: str, samples: Iterable[Mapping[str, Any]]
) -> None:
    """Stored telemetry of `elevator`: one row per sample, the `STANDING` car of boot `b1`
    unless the sample changes a column; each gives `time` and `seq`, and `received_at`
    is `time` unless given."""
    rows = [
        {"boot": "b1", **STANDING, "vib_mg": None, "motor_c": None, "brake_c": None,
         "level_mm": None, "received_at": sample["time"], **sample, "elevator_id": elevator}
        for sample in samples
    ]  # fmt: skip
    unknown = {name for row in rows for name in row} - set(TELEMETRY_COLUMNS)
    if unknown:
        raise ValueError(f"not telemetry columns: {sorted(unknown)}")
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO telemetry ({', '.join(TELEMETRY_COLUMNS)}) "
            f"VALUES ({', '.join(f'%({name})s' for name in TELEMETRY_COLUMNS)})",
            rows,
        )


def timestamp(at: dt.datetime | str | None = None) -> str:
    """A device timestamp: `at` (now unless given) in ISO 8601 to the millisecond; a string
    is taken as it is, to send what a device should not."""
    if isinstance(at, str):
        return at
    return (at or dt.datetime.now(dt.UTC)).isoformat(timespec="milliseconds")


def sample_body(
    *, boot: str = "b1", seq: int = 1, ts: dt.datetime | str | None = None, **fields: Any
) -> dict[str, Any]:
    """A protocol-v1 telemetry sample (SPEC §3) of the `STANDING` car, stamped `ts` (see
    `timestamp`); `fields` change fields or add some."""
    return {"v": 1, "boot": boot, "seq": seq, "ts": timestamp(ts), **STANDING, **fields}


def sample_payload(
    *, boot: str = "b1", seq: int = 1, ts: dt.datetime | str | None = None, **fields: Any
) -> bytes:
    """`sample_body` as the JSON bytes a device publishes."""
    return msgspec.json.encode(sample_body(boot=boot, seq=seq, ts=ts, **fields))


def event_body(
    type_: str = "door_cycle",
    *,
    boot: str = "b1",
    seq: int = 1,
    ts: dt.datetime | str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A protocol-v1 event of type `type_` (SPEC §3), stamped `ts` (see `timestamp`), with
    its type-specific `fields`."""
    return {"v": 1, "boot": boot, "seq": seq, "ts": timestamp(ts), "type": type_, **fields}


def event_payload(
    type_: str = "door_cycle",
    *,
    boot: str = "b1",
    seq: int = 1,
    ts: dt.datetime | str | None = None,
    **fields: Any,
) -> bytes:
    """`event_body` as the JSON bytes a device publishes."""
    return msgspec.json.encode(event_body(type_, boot=boot, seq=seq, ts=ts, **fields))


def reading(t_s: float = 0.0, **changes: Any) -> Reading:
    """The `READING` car at device time `t_s`, with `changes` applied."""
    return dataclasses.replace(READING, t_s=t_s, **changes)
