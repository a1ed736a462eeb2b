"""`build_report` refuses a bad request before it reads anything."""

from __future__ import annotations

import datetime as dt
from unittest.mock import MagicMock

import psycopg
import pytest

from reports import REPORT_NAMES, build_report

START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=1)


def test_unknown_report_name_is_refused_before_any_query() -> None:
    conn = MagicMock(spec=psycopg.Connection)

    with pytest.raises(ValueError, match="unknown report 'uptime'"):
        build_report(conn, "uptime", start=START, end=END, now=END, sites=None)
    assert conn.mock_calls == []


@pytest.mark.parametrize("name", REPORT_NAMES)
def test_period_that_does_not_start_before_it_ends_is_refused_before_any_query(name: str) -> None:
    conn = MagicMock(spec=psycopg.Connection)

    with pytest.raises(ValueError, match="must start before it ends"):
        build_report(conn, name, start=END, end=START, now=END, sites=["s1"])
    assert conn.mock_calls == []
