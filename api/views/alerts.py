"""Alerts: lists with filters, one alert with its workflow history, the crew's workflow
steps, and the live stream (Server-Sent Events) limited to the caller's sites."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from accounts.users import UserRecord, get_user
from alerts.store import WorkflowError, advance_workflow, record_in_ledger
from api.deps import (
    Conn,
    Context,
    CrewMember,
    Reader,
    active_user,
    bearer_claims,
    require_site,
    utc_now,
)
from api.errors import ApiError, error_responses, not_found
from api.pagination import Cursor, Limit, Page, cut, int_cursor
from api.stream import event_stream
from core.faults import FaultName, Severity
from notify.feed import AlertNotice, NoticeFilter, read_notices

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

Status = Literal["open", "acknowledged", "on_site", "resolved", "false_alarm"]
SeverityName = Literal["critical", "major", "minor", "info"]
AlertType = FaultName
IdText = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]

_ALERT_SELECT: Final = """
SELECT a.id, a.elevator_id, a.site_id, a.type, a.severity, a.condition, a.status,
       a.opened_at, a.last_active_at, a.cleared_at, a.occurrences,
       a.acknowledged_at, ua.username AS acknowledged_by, a.on_site_at,
       uo.username AS on_site_by, a.closed_at, uc.username AS closed_by,
       a.ack_due_at, a.on_site_due_at, a.ack_escalated_at, a.on_site_escalated_at, a.details
FROM alerts a
LEFT JOIN users ua ON ua.id = a.acknowledged_by
LEFT JOIN users uo ON uo.id = a.on_site_by
LEFT JOIN users uc ON uc.id = a.closed_by
"""


class AlertOut(BaseModel):
    """An alert: its condition (from data) and its workflow (from the crew)."""

    id: int
    elevator_id: str
    site_id: str
    type: str
    severity: str
    condition: str
    status: str
    opened_at: dt.datetime
    last_active_at: dt.datetime
    cleared_at: dt.datetime | None
    occurrences: int
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    on_site_at: dt.datetime | None
    on_site_by: str | None
    closed_at: dt.datetime | None
    closed_by: str | None
    ack_due_at: dt.datetime | None
    on_site_due_at: dt.datetime | None
    ack_escalated_at: dt.datetime | None
    on_site_escalated_at: dt.datetime | None
    details: dict[str, Any]


class AlertEventOut(BaseModel):
    """One step of an alert's history and the ledger entry that records it."""

    id: int
    kind: str
    time: dt.datetime
    actor: str | None
    details: dict[str, Any]
    ledger_seq: int | None


class AlertDetail(AlertOut):
    """An alert with its whole history."""

    events: list[AlertEventOut]


class WorkflowStep(BaseModel):
    """An optional note for a workflow step."""

    note: str | None = Field(default=None, max_length=2000)


def _get_alert(conn: Conn, alert_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_ALERT_SELECT + " WHERE a.id = %s", (alert_id,)).fetchone()
    if row is None:
        raise not_found(f"alert {alert_id}")
    return row


def _events(conn: Conn, alert_id: int) -> list[AlertEventOut]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT ae.id, ae.kind, ae.time, u.username AS actor, ae.details, e.seq AS ledger_seq "
            "FROM alert_events ae LEFT JOIN users u ON u.id = ae.actor_user_id "
            "LEFT JOIN ledger_entries e ON e.source_table = 'alert_events' "
            "AND e.source_id = ae.id WHERE ae.alert_id = %s ORDER BY ae.id",
            (alert_id,),
        ).fetchall()
    return [AlertEventOut(**row) for row in rows]


@router.get("", responses=error_responses(401, 422))
def get_alerts(
    conn: Conn,
    user: Reader,
    status: Status | None = None,
    type: AlertType | None = None,
    severity: SeverityName | None = None,
    site: IdText | None = None,
    elevator: IdText | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertOut]:
    """Alerts, newest first; a crew member sees only their sites."""
    where = ["(%s::bigint IS NULL OR a.id < %s)"]
    before = int_cursor(cursor)
    params: list[Any] = [before, before]
    filters = {"a.status": status, "a.type": type, "a.severity": severity,
               "a.site_id": site, "a.elevator_id": elevator}  # fmt: skip
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if user.site_scope is not None:
        where.append("a.site_id = ANY(%s)")
        params.append(list(user.site_scope))
    query = _ALERT_SELECT + " WHERE " + " AND ".join(where) + " ORDER BY a.id DESC LIMIT %s"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, [*params, limit + 1]).fetchall()
    page, after = cut(rows, limit, lambda row: row["id"])
    return Page[AlertOut](items=[AlertOut(**row) for row in page], next_cursor=after)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "alert events as SSE"},
        **error_responses(401, 422),
    },
)
async def stream_alerts(
    context: Context,
    token: Annotated[str | None, Query(include_in_schema=False)] = None,
    bearer: Annotated[str | None, Header(alias="Authorization", include_in_schema=False)] = None,
    site: IdText | None = None,
    type: AlertType | None = None,
    min_severity: SeverityName = "info",
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=r"^\d{1,18}$")
    ] = None,
) -> StreamingResponse:
    """Alert events as Server-Sent Events (`id` = ledger seq; resume with Last-Event-ID).

    Limited to the caller's sites. The stream stays open; a comment line every 15 s keeps
    proxies from closing it.
    """
    user, expires_at = await _authenticate_stream(context, bearer, token)
    sites: set[str] | None = None if user.site_scope is None else set(user.site_scope)
    if site is not None:
        if sites is not None and site not in sites:
            raise ApiError(403, "forbidden", f"site {site} is not one of your sites")
        sites = {site}
    wanted = NoticeFilter(
        sites=sites, types={type} if type else None, min_severity=Severity(min_severity)
    )

    def replay(after_seq: int, limit: int) -> list[AlertNotice]:
        with context.pool.connection() as conn:
            return read_notices(conn, after_seq=after_seq, limit=limit)

    async def replay_in_slot(after_seq: int, limit: int) -> list[AlertNotice]:
        async with context.database_slots:
            return await asyncio.to_thread(replay, after_seq, limit)

    async def still_allowed() -> bool:
        # The stream outlives the request: the token's expiry, a deactivation and a change of
        # sites end it, as they would refuse the caller's next request.
        if dt.datetime.now(dt.UTC) >= expires_at:
            return False
        current = await _load_user(context, user.username)
        return (
            current is not None
            and current.active
            and current.token_version == user.token_version
            and current.site_scope == user.site_scope
        )

    async def counted() -> AsyncIterator[str]:
        context.metrics.streams.inc()
        try:
            stream = event_stream(context.broadcaster, wanted, after_seq=after,
                                  replay=replay_in_slot, still_allowed=still_allowed)  # fmt: skip
            async for chunk in stream:
                yield chunk
        finally:
            context.metrics.streams.dec()

    after = int(last_event_id) if last_event_id is not None else None
    return StreamingResponse(
        counted(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _load_user(context: Context, username: str) -> UserRecord | None:
    def load() -> UserRecord | None:
        with context.pool.connection() as conn:
            return get_user(conn, username)

    async with context.database_slots:
        return await asyncio.to_thread(load)


async def _authenticate_stream(
    context: Context, authorization: str | None, query_token: str | None
) -> tuple[UserRecord, dt.datetime]:
    # The stream holds its response open for hours: it checks the token with a short-lived
    # connection instead of the per-request one other routes keep until they answer.
    # EventSource in browsers cannot set headers, hence the `token` query parameter.
    scheme, _, credentials = (authorization or "").partition(" ")
    token = credentials if scheme.lower() == "bearer" and credentials else query_token
    claims = bearer_claims(context, token)
    return active_user(await _load_user(context, claims.username), claims), claims.expires_at


@router.get("/{alert_id}", responses=error_responses(401, 403, 404, 422))
def get_one_alert(alert_id: AlertId, conn: Conn, user: Reader) -> AlertDetail:
    """One alert with every step of its history and the ledger seq of each."""
    row = _get_alert(conn, alert_id)
    require_site(user, row["site_id"], f"alert {alert_id}")
    return AlertDetail(**row, events=_events(conn, alert_id))


def _step(conn: Conn, user: UserRecord, alert_id: int, action: str, note: str | None) -> AlertOut:
    row = _get_alert(conn, alert_id)
    require_site(user, row["site_id"], f"alert {alert_id}")
    try:
        event = advance_workflow(conn, alert_id, action, user_id=user.id, at=utc_now(), note=note)
    except WorkflowError as exc:
        if exc.code == "alert_not_found":
            raise not_found(f"alert {alert_id}") from exc
        raise ApiError(409, exc.code, str(exc)) from exc
    record_in_ledger(conn, [event])
    conn.commit()
    return AlertOut(**_get_alert(conn, alert_id))


_STEP_RESPONSES: Final = error_responses(401, 403, 404, 409, 422)


@router.post("/{alert_id}/ack", responses=_STEP_RESPONSES)
def acknowledge(
    alert_id: AlertId, conn: Conn, user: CrewMember, body: WorkflowStep | None = None
) -> AlertOut:
    """Acknowledge an open alert (crew of its site): the respond time."""
    return _step(conn, user, alert_id, "acknowledge", body.note if body else None)


@router.post("/{alert_id}/on-site", responses=_STEP_RESPONSES)
def report_on_site(
    alert_id: AlertId, conn: Conn, user: CrewMember, body: WorkflowStep | None = None
) -> AlertOut:
    """Report arrival at the elevator (crew of its site): the arrive time."""
    return _step(conn, user, alert_id, "on_site", body.note if body else None)


@router.post("/{alert_id}/resolve", responses=_STEP_RESPONSES)
def resolve(
    alert_id: AlertId, conn: Conn, user: CrewMember, body: WorkflowStep | None = None
) -> AlertOut:
    """Resolve an acknowledged or on-site alert (crew of its site): the finish time."""
    return _step(conn, user, alert_id, "resolve", body.note if body else None)


@router.post("/{alert_id}/false-alarm", responses=_STEP_RESPONSES)
def mark_false_alarm(
    alert_id: AlertId, conn: Conn, user: CrewMember, body: WorkflowStep | None = None
) -> AlertOut:
    """Close an unresolved alert as a false alarm (crew of its site)."""
    return _step(conn, user, alert_id, "false_alarm", body.note if body else None)
