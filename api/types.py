"""Input types shared by the routes: exactly what the OpenAPI schema says, nothing looser.

Pydantic's lax mode would read `end=0.5` as a Unix time and `"active": 0` as false; a
client that sends those has a bug, and the schema promises an ISO 8601 string and a JSON
boolean, so these types refuse anything else with a 422.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool, StrictInt


def _iso_8601(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("must be an ISO 8601 date-time, e.g. 2026-11-28T09:00:00Z") from exc
    # A time without an offset is taken as UTC, as the device protocol's times are.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_8601)]
Flag = StrictBool
Integer = StrictInt
Floor = Annotated[StrictInt, Field(ge=-20, le=300)]


def _iso_date(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date string")
    return dt.date.fromisoformat(value)


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
