"""Operations: dead letters (messages refused at ingest), health and Prometheus metrics.

A dead letter's payload can be as large as the broker allows: the list answers a preview
of each (its first `PREVIEW_BYTES`), with its size and SHA-256, and at most
`MAX_DEAD_LETTERS` a page, so a page stays below about half a megabyte whatever was sent.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Final

from fastapi import APIRouter, Query
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import Auditor, Conn, Context
from api.errors import error_responses
from api.pagination import Cursor, Page, int_cursor, next_cursor
from api.types import Identifier
from ingest.dead_letters import list_dead_letters

router = APIRouter(tags=["operations"])

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
    elevator: Identifier | None = None,
    limit: DeadLetterLimit = 50,
    cursor: Cursor = None,
) -> Page[DeadLetterOut]:
    """Refused messages, newest first, with why each was refused: a preview of each
    payload (first 1 KiB), its size and SHA-256; at most 100 a page."""
    found = list_dead_letters(conn, reason=reason, elevator=elevator, before_id=int_cursor(cursor),
                              limit=limit, preview_bytes=PREVIEW_BYTES,
                              max_text=MAX_TEXT)  # fmt: skip
    items = []
    for row in found.rows:
        preview = bytes(row.pop("preview"))
        digest = row.pop("payload_sha256")
        truncated = row["payload_size"] > len(preview)
        items.append(DeadLetterOut(
            **row, payload_sha256=bytes(digest).hex() if digest is not None else None,
            preview_base64=base64.b64encode(preview).decode(),
            preview_text=_preview_text(preview, truncated), truncated=truncated,
        ))  # fmt: skip
    return Page[DeadLetterOut](items=items, next_cursor=next_cursor(found))


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
            conn.execute("SELECT 1")  # the probe itself, not a read of the domain
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
