"""The registry with live status (online, floor, mode, last seen, active alerts) and the
telemetry of one elevator, raw or in `time_bucket` aggregates."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from api.deps import Admin, Conn, Context, Reader, elevator_site, require_site
from api.errors import error_responses, existing, invalid
from api.pagination import Cursor, Limit, Page, next_cursor
from api.types import (
    ElevatorId,
    Flag,
    Floor,
    Identifier,
    IsoDate,
    IsoDateTime,
    Number,
    utc_time,
)
from core.fleet import (
    create_elevator,
    get_elevator,
    list_elevators,
    update_elevator,
)
from core.registry import MEASURE_RANGES, elevator_topics
from reports.telemetry import MAX_BUCKETS, MAX_RAW_ROWS, read_buckets, sample_page

router = APIRouter(prefix="/api/v1/elevators", tags=["elevators"])

_M: Final = MEASURE_RANGES  # the registry's ranges, the same for the CSV import
FloorHeight = Annotated[Number, Field(ge=_M["floor_height_m"][0], le=_M["floor_height_m"][1])]
RatedSpeed = Annotated[Number, Field(ge=_M["rated_speed_mps"][0], le=_M["rated_speed_mps"][1])]
RatedLoad = Annotated[Number, Field(ge=_M["rated_load_kg"][0], le=_M["rated_load_kg"][1])]
Acceleration = Annotated[
    Number, Field(ge=_M["acceleration_mps2"][0], le=_M["acceleration_mps2"][1])
]
Jerk = Annotated[Number, Field(ge=_M["jerk_mps3"][0], le=_M["jerk_mps3"][1])]
Thresholds = dict[Annotated[str, Field(max_length=64)], Number]
DEFAULT_WINDOW: Final = dt.timedelta(hours=1)
BUCKET_PATTERN: Final = re.compile(r"^(\d{1,6})(s|m|h|d)$")
BUCKET_UNITS_S: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CLEARABLE: Final = frozenset({"registration_code", "manufacturer", "installed_on"})


class ActiveAlert(BaseModel):
    """An unresolved alert of the elevator."""

    id: int
    type: str
    severity: str
    status: str
    condition: str
    opened_at: dt.datetime


class LiveStatus(BaseModel):
    """What the collectors last heard from the elevator."""

    online: bool
    last_seen: dt.datetime | None
    floor: int | None
    mode: str | None


class ElevatorOut(BaseModel):
    """An elevator: registry fields, live status and active alerts."""

    id: str
    site_id: str
    building: str
    registration_code: str | None
    lowest_floor: int
    highest_floor: int
    floor_height_m: float
    rated_speed_mps: float
    rated_load_kg: float
    acceleration_mps2: float
    jerk_mps3: float
    manufacturer: str | None
    installed_on: dt.date | None
    thresholds: dict[str, float]
    active: bool
    status: LiveStatus
    active_alerts: list[ActiveAlert]

    @classmethod
    def of(cls, row: dict[str, Any]) -> ElevatorOut:
        """From a `core.fleet` row."""
        live = LiveStatus(online=row["online"], last_seen=row["last_seen"], floor=row["floor"],
                          mode=row["mode"])  # fmt: skip
        fields = {name: row[name] for name in cls.model_fields if name in row}
        return cls(**fields | {"status": live})


class ElevatorFields(BaseModel):
    """Registry fields an admin may set."""

    site_id: Identifier | None = None
    building: str | None = Field(default=None, min_length=1, max_length=200)
    registration_code: str | None = Field(default=None, min_length=1, max_length=64)
    lowest_floor: Floor | None = None
    highest_floor: Floor | None = None
    floor_height_m: FloorHeight | None = None
    rated_speed_mps: RatedSpeed | None = None
    rated_load_kg: RatedLoad | None = None
    acceleration_mps2: Acceleration | None = None
    jerk_mps3: Jerk | None = None
    manufacturer: str | None = Field(default=None, max_length=200)
    installed_on: IsoDate | None = None
    thresholds: Thresholds | None = None
    active: Flag | None = None

    @field_validator("*")
    @classmethod
    def _required_fields_are_not_cleared(cls, value: Any, info: ValidationInfo) -> Any:
        # Per field, so that the 422 names the field sent as null.
        if value is None and info.field_name not in CLEARABLE:
            raise ValueError(f"{info.field_name} cannot be null")
        return value


class ElevatorIn(ElevatorFields):
    """A new elevator."""

    id: Identifier
    site_id: Identifier
    building: str = Field(min_length=1, max_length=200)
    lowest_floor: Floor
    highest_floor: Floor
    rated_speed_mps: RatedSpeed
    rated_load_kg: RatedLoad


class Sample(BaseModel):
    """One stored telemetry sample."""

    time: dt.datetime
    floor: int
    pos_m: float
    speed_mps: float
    dir: str
    door: str
    door_zone: bool
    door_lock: bool
    safety_chain: bool
    power: str
    load_kg: float
    occupied: bool
    mode: str
    vib_mg: float | None
    motor_c: float | None
    brake_c: float | None
    level_mm: float | None


class Bucket(BaseModel):
    """Aggregates of the samples in one time bucket."""

    bucket: dt.datetime
    samples: int
    moving_samples: int
    speed_avg_mps: float | None
    speed_max_mps: float | None
    load_avg_kg: float | None
    load_max_kg: float | None
    vib_max_mg: float | None
    motor_max_c: float | None
    brake_max_c: float | None
    floor_min: int | None
    floor_max: int | None
    door_open_samples: int


class Telemetry(BaseModel):
    """Raw samples (no `bucket`) or bucket aggregates of one elevator over [start, end)."""

    elevator_id: str
    start: dt.datetime
    end: dt.datetime
    bucket_s: int | None
    samples: list[Sample] | None
    buckets: list[Bucket] | None
    next_cursor: str | None


@router.get("", responses=error_responses(401, 422))
def get_elevators(
    conn: Conn,
    user: Reader,
    site: Identifier | None = None,
    online: bool | None = None,
    limit: Limit = 50,
    cursor: Identifier | None = None,
) -> Page[ElevatorOut]:
    """Elevators with live status, by id; a crew member sees only their sites."""
    found = list_elevators(
        conn, sites=user.site_scope, site=site, online=online, after_id=cursor, limit=limit
    )
    items = [ElevatorOut.of(row) for row in found.rows]
    return Page[ElevatorOut](items=items, next_cursor=next_cursor(found))


@router.post("", status_code=status.HTTP_201_CREATED, responses=error_responses(401, 403, 409, 422))
def add_elevator(body: ElevatorIn, conn: Conn, admin: Admin, context: Context) -> ElevatorOut:
    """Register an elevator (admins); the broker gets its device account at once (password:
    `liftledger elevators credentials`)."""
    row = create_elevator(conn, body.model_dump(exclude_none=True))
    conn.commit()
    context.registry_changed(lambda: elevator_topics(conn))
    return ElevatorOut.of(row)


@router.get("/{elevator_id}", responses=error_responses(401, 403, 404, 422))
def get_one_elevator(elevator_id: ElevatorId, conn: Conn, user: Reader) -> ElevatorOut:
    """One elevator with live status and active alerts."""
    row = existing(get_elevator(conn, elevator_id), f"elevator {elevator_id}")
    require_site(user, row["site_id"], f"elevator {elevator_id}")
    return ElevatorOut.of(row)


@router.put("/{elevator_id}", responses=error_responses(401, 403, 404, 409, 422))
def change_elevator(
    elevator_id: ElevatorId, body: ElevatorFields, conn: Conn, admin: Admin, context: Context
) -> ElevatorOut:
    """Change registry fields (admins); fields left out stay as they are. A site change or a
    deactivation changes the device's broker account at once."""
    changes = body.model_dump(exclude_unset=True)
    row = existing(update_elevator(conn, elevator_id, changes), f"elevator {elevator_id}")
    conn.commit()
    context.registry_changed(lambda: elevator_topics(conn))
    return ElevatorOut.of(row)


def _bucket_seconds(text: str) -> int:
    match = BUCKET_PATTERN.match(text)
    if match is None:
        raise invalid("bucket", "bucket is a number and a unit: 30s, 1m, 15m, 1h, 1d")
    seconds = int(match[1]) * BUCKET_UNITS_S[match[2]]
    if not 1 <= seconds <= 31 * 86400:
        raise invalid("bucket", "bucket must be between 1s and 31d")
    return seconds


@router.get("/{elevator_id}/telemetry", responses=error_responses(401, 403, 404, 422))
def get_telemetry(
    elevator_id: ElevatorId,
    conn: Conn,
    user: Reader,
    start: IsoDateTime | None = None,
    end: IsoDateTime | None = None,
    bucket: Annotated[str | None, Query(max_length=10, description="e.g. 1m, 15m, 1h")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RAW_ROWS)] = 1000,
    cursor: Cursor = None,
) -> Telemetry:
    """Samples in [start, end) (default: the last hour), or aggregates per `bucket`."""
    require_site(user, elevator_site(conn, elevator_id), f"elevator {elevator_id}")
    end = end or dt.datetime.now(dt.UTC)
    start = start or end - DEFAULT_WINDOW
    if start >= end:
        raise invalid("start", "start must be before end")
    if bucket is not None:
        bucket_s = _bucket_seconds(bucket)
        if (end - start).total_seconds() / bucket_s > MAX_BUCKETS:
            raise invalid("bucket", f"at most {MAX_BUCKETS} buckets: widen bucket or narrow range")
        rows = read_buckets(conn, elevator_id, start=start, end=end, bucket_s=bucket_s)
        buckets = [Bucket(**row) for row in rows]
        return Telemetry(elevator_id=elevator_id, start=start, end=end, bucket_s=bucket_s,
                         samples=None, buckets=buckets, next_cursor=None)  # fmt: skip
    after = None
    if cursor is not None:
        try:
            after = utc_time(cursor)
        except ValueError as exc:
            raise invalid("cursor", "cursor is not a value this API handed out") from exc
    found = sample_page(conn, elevator_id, start=start, end=end, limit=limit, after=after)
    return Telemetry(elevator_id=elevator_id, start=start, end=end, bucket_s=None,
                     samples=[Sample(**row) for row in found.rows], buckets=None,
                     next_cursor=next_cursor(found))  # fmt: skip
