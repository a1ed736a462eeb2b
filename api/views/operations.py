"""Operations: dead letters (messages refused at ingest), health and Prometheus metrics."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row
from pydantic import BaseModel

from api.deps import Auditor, Conn, Context
from api.errors import error_responses
from api.pagination import Cursor, Limit, Page, cut, int_cursor

router = APIRouter(tags=["operations"])

IdText = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Reason = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")]


class DeadLetterOut(BaseModel):
    """A message the collectors refused, kept byte for byte with the reason."""

    id: int
    received_at: dt.datetime
    topic: str
    reason: str
    detail: str | None
    elevator_id: str | None
    payload_base64: str
    payload_text: str | None


class Health(BaseModel):
    """Whether the API and its database answer."""

    status: str
    database: bool


@router.get("/api/v1/dead-letters", responses=error_responses(401, 403, 422))
def get_dead_letters(
    conn: Conn,
    user: Auditor,
    reason: Reason = None,
    elevator: IdText | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeadLetterOut]:
    """Refused messages, newest first, with why each was refused."""
    before = int_cursor(cursor)
    where = ["(%s::bigint IS NULL OR id < %s)"]
    params: list[Any] = [before, before]
    for column, value in (("reason", reason), ("elevator_id", elevator)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    query = (
        "SELECT id, received_at, topic, reason, detail, elevator_id, payload FROM dead_letters "
        "WHERE " + " AND ".join(where) + " ORDER BY id DESC LIMIT %s"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, [*params, limit + 1]).fetchall()
    page, after = cut(rows, limit, lambda row: row["id"])
    items = []
    for row in page:
        payload = bytes(row.pop("payload"))
        try:
            text: str | None = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        items.append(DeadLetterOut(**row, payload_base64=base64.b64encode(payload).decode(),
                                   payload_text=text))  # fmt: skip
    return Page[DeadLetterOut](items=items, next_cursor=after)


@router.get(
    "/healthz",
    response_class=Response,
    responses={
        200: {"model": Health, "description": "healthy"},
        503: {"model": Health, "description": "the database does not answer"},
    },
)
def health(context: Context) -> Response:
    """200 when the database answers, 503 otherwise."""
    try:
        with context.pool.connection(timeout=2.0) as conn:
            conn.execute("SELECT 1")
        ok = True
    except Exception:
        ok = False
    body = Health(status="ok" if ok else "unavailable", database=ok)
    return Response(body.model_dump_json(), status_code=200 if ok else 503,
                    media_type="application/json")  # fmt: skip


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(context: Context) -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(context.metrics.registry), media_type=CONTENT_TYPE_LATEST)
