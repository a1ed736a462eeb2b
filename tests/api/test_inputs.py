"""The API's pure input helpers: cursors, pages, strict times and error fields."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, _field_of
from api.pagination import cut, int_cursor
from api.types import Flag, IsoDateTime


class Window(BaseModel):
    start: IsoDateTime
    active: Flag = True


def test_a_full_page_hands_out_the_key_of_its_last_row_as_cursor() -> None:
    rows = [10, 9, 8, 7]  # limit 3, one row more fetched
    page, cursor = cut(rows, 3, lambda row: row)
    assert page == [10, 9, 8]
    assert cursor == "8"


def test_the_last_page_has_no_cursor() -> None:
    assert cut([3, 2], 3, lambda row: row) == ([3, 2], None)


@pytest.mark.parametrize("cursor", ["-1", "abc", "1e3", "١٢", "9" * 20])
def test_a_cursor_the_api_did_not_hand_out_is_refused_with_its_field(cursor: str) -> None:
    with pytest.raises(ApiError) as refused:
        int_cursor(cursor)
    assert refused.value.status == 422
    assert refused.value.field == "cursor"


def test_an_iso_time_without_offset_is_taken_as_utc() -> None:
    parsed = Window.model_validate({"start": "2026-11-28T09:00:00"}).start
    assert parsed == dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("value", [0.5, 1764320400, "0.5", "yesterday", None])
def test_a_time_that_is_not_an_iso_8601_string_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        Window.model_validate({"start": value})


@pytest.mark.parametrize("value", [0, 1, "true", "yes"])
def test_a_flag_must_be_a_json_boolean(value: object) -> None:
    with pytest.raises(ValidationError):
        Window.model_validate({"start": "2026-11-28T09:00:00Z", "active": value})


@pytest.mark.parametrize(
    ("location", "field"),
    [(("query", "limit"), "limit"), (("body", "details", "n"), "details.n"), (("body",), "body")],
)
def test_an_error_names_the_field_without_its_location(
    location: tuple[str, ...], field: str
) -> None:
    assert _field_of(location) == field
