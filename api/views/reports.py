"""Reports for supervisors (pandas): availability with MTBF/MTTR, rescue SLA, maintenance
compliance; JSON by default, CSV with `format=csv` or `Accept: text/csv`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response

from api.deps import Auditor, Conn, utc_now
from api.errors import error_responses, invalid
from api.types import Identifier, IsoDateTime
from reports import build_report

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])

ReportName = Literal["availability", "sla", "maintenance"]
DEFAULT_PERIOD: Final = dt.timedelta(days=30)
MAX_PERIOD: Final = dt.timedelta(days=3660)


@router.get(
    "/{name}",
    responses={
        200: {
            "description": "the report as JSON, or its main table as CSV",
            "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}},
        },
        **error_responses(401, 403, 422),
    },
)
def get_report(
    name: Annotated[ReportName, Path()],
    conn: Conn,
    user: Auditor,
    start: IsoDateTime | None = None,
    end: IsoDateTime | None = None,
    site: Identifier | None = None,
    format: Literal["json", "csv"] | None = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """A report over [start, end) (default: the last 30 days), optionally for one site."""
    now = utc_now()
    end = end or now
    start = start or end - DEFAULT_PERIOD
    if start >= end:
        raise invalid("start", "start must be before end")
    if end - start > MAX_PERIOD:
        raise invalid("start", "a report covers at most ten years")
    sites = [site] if site is not None else user.site_scope
    report = build_report(conn, name, start=start, end=end, now=now, sites=sites)
    wants_csv = format == "csv" or (format is None and "text/csv" in (accept or ""))
    if wants_csv:
        filename = f"liftledger-{name}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
        return Response(
            report.to_csv(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return report.as_json()
