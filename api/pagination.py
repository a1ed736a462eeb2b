"""Keyset pagination shared by every list: `limit` and an opaque `cursor`.

A page answers `{"items": [...], "next_cursor": "..."}`; passing `next_cursor` back as
`cursor` gives the next page, and `null` means there is none. Cursors are keys, not
offsets, so a page never repeats or skips rows when new rows arrive meanwhile. The queries
page with `core.pages`; this module turns their keys into cursors and back.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from api.errors import invalid
from core.pages import KeysetPage

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size (at most {MAX_LIMIT})")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page"),
]


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None


def int_cursor(cursor: str | None) -> int | None:
    """The integer key a cursor carries; 422 when it is not one of ours."""
    if cursor is None:
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19:
        raise invalid("cursor", "cursor is not a value this API handed out")
    return int(cursor)


def next_cursor(page: KeysetPage[Any]) -> str | None:
    """The cursor of the page after `page` (its key as text; a time in ISO 8601), or None
    when `page` is the last."""
    key = page.next_key
    if key is None:
        return None
    return key.isoformat() if isinstance(key, dt.datetime) else str(key)
