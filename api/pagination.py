"""Keyset pagination shared by every list: `limit` and an opaque `cursor`.

A page answers `{"items": [...], "next_cursor": "..."}`; passing `next_cursor` back as
`cursor` gives the next page, and `null` means there is none. Cursors are keys, not
offsets, so a page never repeats or skips rows when new rows arrive meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from api.errors import invalid

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500

T = TypeVar("T")
R = TypeVar("R")

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


def cut(rows: list[R], limit: int, key: Callable[[R], object]) -> tuple[list[R], str | None]:
    """The page out of `limit + 1` fetched rows, and the cursor when more rows follow."""
    if len(rows) > limit:
        return rows[:limit], str(key(rows[limit - 1]))
    return rows, None
