"""A computed report, and how it is written: JSON-ready values and CSV cells."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

SECONDS_DIGITS: Final = 1
RATIO_DIGITS: Final = 6


@dataclass(frozen=True, eq=False)
class Report:
    """One computed report: the main table, per-report totals and extra tables."""

    name: str
    period_start: dt.datetime
    period_end: dt.datetime
    generated_at: dt.datetime
    table: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    sections: dict[str, pd.DataFrame] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-ready values: ISO datetimes, None for missing, rounded floats."""
        body: dict[str, Any] = {
            "report": self.name,
            "period_start": _json_value("period_start", self.period_start),
            "period_end": _json_value("period_end", self.period_end),
            "generated_at": _json_value("generated_at", self.generated_at),
            "summary": {key: _json_value(key, value) for key, value in self.summary.items()},
            "rows": _json_records(self.table),
        }
        for section, frame in self.sections.items():
            body[section] = _json_records(frame)
        return body

    def to_csv(self) -> str:
        """The main table as CSV: a header row, ISO datetimes, an empty cell for missing."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        # A bare CR is not quoted by the minimal writer when lines end in LF; a row holding
        # one is written fully quoted, so it cannot split into two rows.
        quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
        columns = [str(column) for column in self.table.columns]
        writer.writerow(columns)
        for record in _json_records(self.table):
            cells = [_csv_cell(record[column]) for column in columns]
            (quoted if any("\r" in cell for cell in cells) else writer).writerow(cells)
        return out.getvalue()


def _json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(column) for column in frame.columns]
    return [
        {column: _json_value(column, value) for column, value in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def _json_value(name: str, value: object) -> Any:
    """One value as JSON: ISO datetimes, None for missing, Python numbers, strings as they are."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer | float | np.floating):
        return _json_number(name, value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value


def _json_number(
    name: str, value: float | np.integer[Any] | np.floating[Any]
) -> int | float | None:
    """Integers as they are; seconds (`…_s`) to 0.1 s, other floats to 6 digits; NaN as None."""
    if isinstance(value, int | np.integer):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        return None
    return round(number, SECONDS_DIGITS if name.endswith("_s") else RATIO_DIGITS)


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# (OWASP "CSV Injection"): a building name "=HYPERLINK(…)" would run when a supervisor
# opens the export. Such a text cell gets a leading apostrophe, which spreadsheets show as
# text. Numbers are written by the report itself and stay as they are (-0.5 is a number).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
