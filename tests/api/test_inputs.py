"""The API's pure input helpers: cursors, pages, strict times, ids, floors and error fields."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import BaseModel, ValidationError

from api.errors import ApiError, _field_of
from api.pagination import int_cursor, next_cursor
from api.types import Flag, Floor, Identifier, IsoDateTime
from core.pages import KeysetPage, page_of
from core.protocol import is_valid_id
from core.registry import FLOOR_RANGE


class Window(BaseModel):
    start: IsoDateTime
    active: Flag = True


class Place(BaseModel):
    site_id: Identifier
    floor: Floor = 0


def test_a_full_page_hands_out_the_key_of_its_last_row_as_cursor() -> None:
    rows = [10, 9, 8, 7]  # limit 3, one row more fetched
    page = page_of(rows, 3, lambda row: row)
    assert page.rows == [10, 9, 8]
    assert next_cursor(page) == "8"


def test_the_last_page_has_no_cursor() -> None:
    page = page_of([3, 2], 3, lambda row: row)
    assert (page.rows, next_cursor(page)) == ([3, 2], None)


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


def test_a_cursor_is_the_key_as_text_and_a_time_in_iso_8601() -> None:
    moment = dt.datetime(2026, 11, 28, 9, 0, 0, 120000, tzinfo=dt.UTC)
    assert next_cursor(KeysetPage([], 8)) == "8"
    assert next_cursor(KeysetPage([], "nc01-e1")) == "nc01-e1"
    assert next_cursor(KeysetPage([], moment)) == "2026-11-28T09:00:00.120000+00:00"
    assert next_cursor(KeysetPage([], None)) is None


@pytest.mark.parametrize("site", ["nc01", "a", "A_b-9", "x" * 64, "", "x" * 65, "a b", "a/b", "é"])
def test_the_api_takes_the_ids_the_device_protocol_takes(site: str) -> None:
    if is_valid_id(site):
        assert Place.model_validate({"site_id": site}).site_id == site
    else:
        with pytest.raises(ValidationError):
            Place.model_validate({"site_id": site})


def test_the_api_takes_the_floors_the_registry_import_takes() -> None:
    low, high = FLOOR_RANGE
    assert Place.model_validate({"site_id": "s", "floor": low}).floor == low
    assert Place.model_validate({"site_id": "s", "floor": high}).floor == high
    for outside in (low - 1, high + 1):
        with pytest.raises(ValidationError):
            Place.model_validate({"site_id": "s", "floor": outside})
