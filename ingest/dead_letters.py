"""Reading the dead letters: the messages the collectors refused, newest first, each with a
preview of its payload, its size and its SHA-256.

A payload can be as large as the broker allows, so a read returns only its first
`preview_bytes` and the first `max_text` characters of its topic and detail: a page stays
small whatever was sent. Writing them is `ingest.writer`.
"""

from __future__ import annotations

from typing import Any, Final

import psycopg

from core.pages import Keyset, KeysetPage, fetch_page

_SELECT: Final = (
    "SELECT id, received_at, left(topic, %s) AS topic, reason, left(detail, %s) AS detail, "
    "elevator_id, substring(payload FROM 1 FOR %s) AS preview, "
    "coalesce(payload_size, length(payload)) AS payload_size, "
    "coalesce(payload_sha256, sha256(payload)) AS payload_sha256 FROM dead_letters"
)
NEWEST_FIRST: Final = Keyset("id", "bigint", descending=True)


def list_dead_letters(
    conn: psycopg.Connection[Any],
    *,
    reason: str | None = None,
    elevator: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
    preview_bytes: int,
    max_text: int,
) -> KeysetPage[dict[str, Any]]:
    """Dead letters newest first, below id `before_id`, with the filters given. Each row has
    `preview` (the payload's first `preview_bytes`), `payload_size` and `payload_sha256`
    (of the whole payload as received, also for one stored cut short)."""
    equal = (("reason", reason), ("elevator_id", elevator))
    return fetch_page(conn, _SELECT, NEWEST_FIRST, after=before_id, limit=limit, equal=equal,
                      select_params=(max_text, max_text, preview_bytes))  # fmt: skip
