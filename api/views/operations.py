"""Operations: dead letters (messages refused at ingest), health and Prometheus metrics.

A dead letter's payload can be as large as the broker allows: the list answers a preview
of each (its first `PREVIEW_BYTES`), with its size and SHA-256, and at most
`MAX_DEAD_LETTERS` a page, so a page stays below about half a megabyte whatever was sent.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.rows import dict_row
from pydantic import BaseModel

from api.deps import Auditor, Conn, Context
from api.errors import error_responses
from api.pagination import Cursor, Page, cut, int_cursor

router = APIRouter(tags=["operations"])

IdText = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Reason = Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+$")]
PREVIEW_BYTES: Final = 1024
MAX_DEAD_LETTERS: Final = 100
MAX_TEXT: Final = 1024  # characters of the topic and the detail shown
DeadLetterLimit = Annotated[int, Query(ge=1, le=MAX_DEAD_LETTERS)]


class DeadLetterOut(BaseModel):
    """A message the collectors refused, with the reason and a preview of its payload."""

    id: int
    received_at: dt.datetime
    topic: str
    reason: str
    detail: str | None
    elevator_id: str | None
    payload_size: int
    payload_sha256: str | None
    preview_base64: str
    preview_text: str | None
    truncated: bool


def _preview_text(preview: bytes, truncated: bool) -> str | None:
    try:
        return preview.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut through the last character is the preview's doing, not the payload's.
        if truncated and exc.start >= len(preview) - 3 and exc.reason == "unexpected end of data":
            return preview[: exc.start].decode("utf-8", errors="replace")
        return None


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
    limit: DeadLetterLimit = 50,
    cursor: Cursor = None,
) -> Page[DeadLetterOut]:
    """Refused messages, newest first, with why each was refused: a preview of each
    payload (first 1 KiB), its size and SHA-256; at most 100 a page."""
    before = int_cursor(cursor)
    where = ["(%s::bigint IS NULL OR id < %s)"]
    params: list[Any] = [before, before]
    for column, value in (("reason", reason), ("elevator_id", elevator)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    query = (
        "SELECT id, received_at, left(topic, %s) AS topic, reason, left(detail, %s) AS detail, "
        "elevator_id, substring(payload FROM 1 FOR %s) AS preview, "
        "coalesce(payload_size, length(payload)) AS payload_size, "
        "coalesce(payload_sha256, sha256(payload)) AS payload_sha256 FROM dead_letters "
        "WHERE " + " AND ".join(where) + " ORDER BY id DESC LIMIT %s"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            query, [MAX_TEXT, MAX_TEXT, PREVIEW_BYTES, *params, limit + 1]
        ).fetchall()
    page, after = cut(rows, limit, lambda row: row["id"])
    items = []
    for row in page:
        preview = bytes(row.pop("preview"))
        digest = row.pop("payload_sha256")
        truncated = row["payload_size"] > len(preview)
        items.append(DeadLetterOut(
            **row, payload_sha256=bytes(digest).hex() if digest is not None else None,
            preview_base64=base64.b64encode(preview).decode(),
            preview_text=_preview_text(preview, truncated), truncated=truncated,
        ))  # fmt: skip
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
