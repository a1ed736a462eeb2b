"""Alerts: lists with filters, one alert with its workflow history, the crew's workflow
steps, and the live stream (Server-Sent Events) limited to the caller's sites."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from accounts.users import UserRecord, get_user
from alerts.queries import alert_history, get_alert, list_alerts
from alerts.store import advance_workflow, record_in_ledger
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
from api.errors import error_responses, existing, forbidden
from api.pagination import Cursor, Limit, Page, int_cursor, next_cursor
from api.stream import event_stream
from api.types import Identifier
from core.alerting import AlertStatus
from core.faults import FaultName, Severity
from notify.feed import AlertNotice, NoticeFilter, read_notices

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

AlertType = FaultName
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


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


def _alert(conn: Conn, user: UserRecord, alert_id: int) -> dict[str, Any]:
    row = existing(get_alert(conn, alert_id), f"alert {alert_id}")
    require_site(user, row["site_id"], f"alert {alert_id}")
    return row


@router.get("", responses=error_responses(401, 422))
def get_alerts(
    conn: Conn,
    user: Reader,
    status: AlertStatus | None = None,
    type: AlertType | None = None,
    severity: Severity | None = None,
    site: Identifier | None = None,
    elevator: Identifier | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertOut]:
    """Alerts, newest first; a crew member sees only their sites."""
    found = list_alerts(conn, sites=user.site_scope, status=status, type=type, severity=severity,
                        site=site, elevator=elevator, before_id=int_cursor(cursor),
                        limit=limit)  # fmt: skip
    items = [AlertOut(**row) for row in found.rows]
    return Page[AlertOut](items=items, next_cursor=next_cursor(found))


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
    site: Identifier | None = None,
    type: AlertType | None = None,
    min_severity: Severity = Severity.INFO,
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
            raise forbidden(f"site {site} is not one of your sites")
        sites = {site}
    wanted = NoticeFilter(sites=sites, types={type} if type else None, min_severity=min_severity)

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
    row = _alert(conn, user, alert_id)
    events = [AlertEventOut(**event) for event in alert_history(conn, alert_id)]
    return AlertDetail(**row, events=events)


@dataclass(frozen=True, slots=True)
class _Step:
    """A workflow step's route: its path, the `alerts.store` action it takes, and the
    operation's name (its summary and id) and description."""

    path: str
    action: str
    name: str
    description: str


_STEPS: Final = (
    _Step("ack", "acknowledge", "acknowledge",
          "Acknowledge an open alert (crew of its site): the respond time."),
    _Step("on-site", "on_site", "report_on_site",
          "Report arrival at the elevator (crew of its site): the arrive time."),
    _Step("resolve", "resolve", "resolve",
          "Resolve an acknowledged or on-site alert (crew of its site): the finish time."),
    _Step("false-alarm", "false_alarm", "mark_false_alarm",
          "Close an unresolved alert as a false alarm (crew of its site)."),
)  # fmt: skip


def _add_step(step: _Step) -> None:
    def take_step(
        alert_id: AlertId, conn: Conn, user: CrewMember, body: WorkflowStep | None = None
    ) -> AlertOut:
        _alert(conn, user, alert_id)
        note = body.note if body else None
        event = advance_workflow(
            conn, alert_id, step.action, user_id=user.id, at=utc_now(), note=note
        )
        record_in_ledger(conn, [event])
        conn.commit()
        return AlertOut(**_alert(conn, user, alert_id))

    router.add_api_route(f"/{{alert_id}}/{step.path}", take_step, methods=["POST"],
                         name=step.name, description=step.description,
                         responses=error_responses(401, 403, 404, 409, 422))  # fmt: skip


for _each in _STEPS:
    _add_step(_each)
