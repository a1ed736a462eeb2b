"""Input types shared by the routes: exactly what the OpenAPI schema says, nothing looser.

Pydantic's lax mode would read `end=0.5` as a Unix time and `"active": 0` as false; a
client that sends those has a bug, and the schema promises an ISO 8601 string and a JSON
boolean, so these types refuse anything else with a 422.

Ids and ranges come from where the platform defines them: `Identifier` from the device
protocol's `core.protocol.ID_PATTERN` (a site or elevator id is an MQTT topic level),
`Floor` from the registry's `core.registry.FLOOR_RANGE` (the CSV import checks the same).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

from fastapi import Path
from pydantic import BeforeValidator, Field, StrictBool, StrictInt, StringConstraints

from core.protocol import ID_PATTERN
from core.registry import FLOOR_RANGE

# Times the platform can hold: from the Unix epoch (EIP-712 signs them as uint256 seconds)
# to well before the year 9999, so that arithmetic on a range never overflows.
EARLIEST: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST: Final = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def utc_time(value: Any) -> Any:
    """An ISO 8601 string (or datetime) as an aware UTC datetime in the range the platform
    holds; `ValueError` otherwise. A time without an offset is taken as UTC."""
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-28T09:00:00Z") from exc
    # A time without an offset is taken as UTC, as the device protocol's times are.
    aware = parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    try:
        utc = aware.astimezone(dt.UTC)
    except OverflowError as exc:
        raise ValueError(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}") from exc
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return utc


IsoDateTime = Annotated[dt.datetime, BeforeValidator(utc_time)]
Flag = StrictBool
Integer = StrictInt
Floor = Annotated[StrictInt, Field(ge=FLOOR_RANGE[0], le=FLOOR_RANGE[1])]
# A site or elevator id, in a body, a query or a path.
Identifier = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$")]
ElevatorId = Annotated[Identifier, Path(description="elevator id")]


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date string")
    return dt.date.fromisoformat(value)


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
