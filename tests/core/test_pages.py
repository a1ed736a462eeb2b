"""Keyset pages: the rows of a page, the key to continue after, and the SQL of the order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.pages import Keyset, KeysetPage, page_of


@given(keys=st.lists(st.integers(), unique=True, max_size=30), limit=st.integers(1, 10))
def test_paging_with_the_next_key_visits_every_row_once_in_order(
    keys: list[int], limit: int
) -> None:
    ordered = sorted(keys)
    seen: list[int] = []
    after: int | None = None
    while True:
        fetched = [key for key in ordered if after is None or key > after][: limit + 1]
        page = page_of(fetched, limit, lambda key: key)
        assert len(page.rows) <= limit
        seen.extend(page.rows)
        if page.next_key is None:
            break
        assert page.next_key == page.rows[-1]
        after = page.next_key
    assert seen == ordered


def test_the_last_page_has_no_next_key() -> None:
    assert page_of([3, 2], 3, lambda row: row) == KeysetPage([3, 2], None)


def test_a_keyset_orders_and_continues_after_its_key() -> None:
    newest_first = Keyset("a.id", "bigint", descending=True)
    assert newest_first.name == "id"
    assert newest_first.after() == "(%s::bigint IS NULL OR a.id < %s)"
    assert newest_first.order() == " ORDER BY a.id DESC LIMIT %s"
    by_id = Keyset("e.id", "text")
    assert by_id.after() == "(%s::text IS NULL OR e.id > %s)"
    assert by_id.order() == " ORDER BY e.id LIMIT %s"
