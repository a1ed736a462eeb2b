"""Keyset pagination: a page is the rows after a key, in key order, and the key of its last
row when more rows follow.

Every list of the platform pages this way; the API hands the key out as an opaque cursor
(`api.pagination`). A key, unlike an offset, never makes a page repeat or skip a row when
rows arrive meanwhile. A query fetches one row more than the page holds to learn whether
another page follows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.rows import dict_row

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class KeysetPage(Generic[R]):
    """One page of rows, and the key to continue after (None: this is the last page)."""

    rows: list[R]
    next_key: Any | None


def page_of(rows: Sequence[R], limit: int, key: Callable[[R], Any]) -> KeysetPage[R]:
    """The page out of up to `limit + 1` rows fetched in key order: the first `limit`, and
    the key of the last of those when the extra row shows that more follow."""
    if len(rows) > limit:
        return KeysetPage(list(rows[:limit]), key(rows[limit - 1]))
    return KeysetPage(list(rows), None)


@dataclass(frozen=True, slots=True)
class Keyset:
    """The order a list pages in: one unique `column` of SQL type `sql_type`, ascending or
    `descending`. The row's key is the selected column of the same name (`a.id` → `id`)."""

    column: str
    sql_type: str
    descending: bool = False

    @property
    def name(self) -> str:
        """The key's name in a fetched row."""
        return self.column.rpartition(".")[2]

    def after(self) -> str:
        """The condition "after the key", for the key bound twice (None: from the start)."""
        operator = "<" if self.descending else ">"
        return f"(%s::{self.sql_type} IS NULL OR {self.column} {operator} %s)"

    def order(self) -> str:
        """The ORDER BY and LIMIT of a page."""
        return f" ORDER BY {self.column}{' DESC' if self.descending else ''} LIMIT %s"


def fetch_page(
    conn: psycopg.Connection[Any],
    select: str,
    keyset: Keyset,
    *,
    after: object | None,
    limit: int,
    equal: Sequence[tuple[str, object]] = (),
    any_of: Sequence[tuple[str, Collection[object] | None]] = (),
    select_params: Sequence[object] = (),
) -> KeysetPage[dict[str, Any]]:
    """One page of `select` (a query without WHERE) in `keyset` order after the key `after`,
    at most `limit` rows, filtered by `column = value` for each pair of `equal` and by
    `column = ANY(values)` for each pair of `any_of` whose value is not None (None: no
    filter). `select_params` are the parameters of `select` itself."""
    where = [(f"{column} = %s", value) for column, value in equal if value is not None]
    where += [
        (f"{column} = ANY(%s)", list(values)) for column, values in any_of if values is not None
    ]
    conditions = [keyset.after(), *(condition for condition, _ in where)]
    query = select + " WHERE " + " AND ".join(conditions) + keyset.order()
    params = [*select_params, after, after, *(value for _, value in where), limit + 1]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    return page_of(rows, limit, lambda row: row[keyset.name])
