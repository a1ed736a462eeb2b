"""The elevator registry: CSV import and the lookups other parts need.

A registry CSV has one elevator per row (header names below; `site_name`, `district`,
`registration_code`, `manufacturer`, `installed_on`, `acceleration_mps2`, `jerk_mps3`,
`floor_height_m` and `thresholds` may be empty). Sites are created or renamed from the rows.
An import is all or nothing: the first invalid row is reported with its line number and no
row is written.

Every number has a range (`FLOOR_RANGE`, `MEASURE_RANGES`, `core.faults.THRESHOLD_RANGES`),
the same for the CSV import and the API, so no registry value can break the detectors.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from core.errors import RegistryError
from core.faults import threshold_out_of_range, unknown_threshold_names
from core.protocol import is_valid_id

REQUIRED_COLUMNS = (
    "elevator_id",
    "site_id",
    "building",
    "lowest_floor",
    "highest_floor",
    "rated_speed_mps",
    "rated_load_kg",
)
OPTIONAL_COLUMNS = (
    "site_name",
    "district",
    "registration_code",
    "floor_height_m",
    "acceleration_mps2",
    "jerk_mps3",
    "manufacturer",
    "installed_on",
    "thresholds",
)
SAMPLE_REGISTRY = Path(__file__).parent / "data" / "sample_registry.csv"

# Floors as numbered in the building (basements negative); the tallest buildings have ~160.
FLOOR_RANGE: tuple[int, int] = (-20, 300)
# What a passenger or goods elevator can have (inclusive): the fastest run at ~21 m/s,
# comfort keeps acceleration under ~1.5 m/s^2 and jerk under ~2 m/s^3.
MEASURE_RANGES: dict[str, tuple[float, float]] = {
    "floor_height_m": (1.5, 20.0),
    "rated_speed_mps": (0.05, 25.0),
    "rated_load_kg": (50.0, 50_000.0),
    "acceleration_mps2": (0.05, 5.0),
    "jerk_mps3": (0.1, 20.0),
}


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import wrote."""

    sites: int
    elevators: int


@dataclass(frozen=True, slots=True)
class ElevatorSpec:
    """An elevator's registry facts that govern how the car moves (the simulator's model)."""

    site: str
    elevator: str
    lowest_floor: int
    highest_floor: int
    floor_height_m: float
    rated_speed_mps: float
    rated_load_kg: float
    acceleration_mps2: float
    jerk_mps3: float

    def landings(self) -> list[int]:
        """Floor numbers served, bottom to top; no floor 0 when the building has basements."""
        floors = range(self.lowest_floor, self.highest_floor + 1)
        return [f for f in floors if f != 0 or self.lowest_floor == 0]


@dataclass(slots=True)
class ParsedRegistry:
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)
    elevators: list[dict[str, Any]] = field(default_factory=list)


def _number(row: Mapping[str, str], name: str, kind: type[float] | type[int]) -> Any:
    raw = (row.get(name) or "").strip()
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(
            f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}"
        ) from None
    return value


def _measure(row: Mapping[str, str], name: str) -> float:
    value = float(_number(row, name, float))
    low, high = MEASURE_RANGES[name]
    if not low <= value <= high:  # NaN and inf fail this too
        raise ValueError(f"{name} must lie between {low:g} and {high:g}")
    return value


def _floor(row: Mapping[str, str], name: str) -> int:
    value = int(_number(row, name, int))
    low, high = FLOOR_RANGE
    if not low <= value <= high:
        raise ValueError(f"{name} must lie between {low} and {high}")
    return value


def _optional_measure(row: Mapping[str, str], name: str) -> float | None:
    if not (row.get(name) or "").strip():
        return None
    return _measure(row, name)


def _parse_row(row: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    elevator_id = (row.get("elevator_id") or "").strip()
    site_id = (row.get("site_id") or "").strip()
    for name, value in (("elevator_id", elevator_id), ("site_id", site_id)):
        if not is_valid_id(value):
            raise ValueError(f"{name} {value!r} must match [A-Za-z0-9_-]{{1,64}}")
    lowest = _floor(row, "lowest_floor")
    highest = _floor(row, "highest_floor")
    if highest <= lowest:
        raise ValueError("highest_floor must be above lowest_floor")
    if (
        not _number(row, "rated_speed_mps", float) > 0
        or not _number(row, "rated_load_kg", float) > 0
    ):
        raise ValueError("rated_speed_mps and rated_load_kg must be > 0")
    speed = _measure(row, "rated_speed_mps")
    load = _measure(row, "rated_load_kg")
    thresholds_raw = (row.get("thresholds") or "").strip()
    thresholds = json.loads(thresholds_raw) if thresholds_raw else {}
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int | float) for v in thresholds.values()
    ):
        raise ValueError("thresholds must be a JSON object of numbers")
    unknown = unknown_threshold_names(thresholds)
    if unknown:
        raise ValueError(f"unknown threshold names {', '.join(unknown)}")
    out_of_range = threshold_out_of_range(thresholds)
    if out_of_range is not None:
        raise ValueError(out_of_range[1])
    installed_raw = (row.get("installed_on") or "").strip()
    elevator: dict[str, Any] = {
        "id": elevator_id,
        "site_id": site_id,
        "building": (row.get("building") or "").strip() or elevator_id,
        "registration_code": (row.get("registration_code") or "").strip() or None,
        "lowest_floor": lowest,
        "highest_floor": highest,
        "rated_speed_mps": speed,
        "rated_load_kg": load,
        "manufacturer": (row.get("manufacturer") or "").strip() or None,
        "installed_on": dt.date.fromisoformat(installed_raw) if installed_raw else None,
        "thresholds": thresholds,
    }
    for name in ("floor_height_m", "acceleration_mps2", "jerk_mps3"):
        measure = _optional_measure(row, name)
        if measure is not None:
            elevator[name] = measure
    site = {
        "id": site_id,
        "name": (row.get("site_name") or "").strip() or site_id,
        "district": (row.get("district") or "").strip() or None,
    }
    return site, elevator


def parse_registry(lines: Iterable[str], *, source: str) -> ParsedRegistry:
    """Validate a registry CSV; raise `RegistryError` naming the first bad line."""
    reader = csv.DictReader(lines)
    missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
    if missing:
        raise RegistryError(f"{source}: missing column(s) {', '.join(missing)}")
    parsed = ParsedRegistry()
    seen: set[str] = set()
    for row in reader:
        line = reader.line_num
        try:
            site, elevator = _parse_row(row)
        except (ValueError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{source} line {line}: {exc}") from None
        if elevator["id"] in seen:
            raise RegistryError(f"{source} line {line}: elevator {elevator['id']} listed twice")
        seen.add(elevator["id"])
        parsed.sites[site["id"]] = site
        parsed.elevators.append(elevator)
    if not parsed.elevators:
        raise RegistryError(f"{source}: no elevators in the file")
    return parsed


# The columns a parsed row gives, and each of them but `id` updated on a repeat.
_UPSERT_ELEVATOR: Final = sql.SQL(
    "INSERT INTO elevators ({columns}) VALUES ({values}) "
    "ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()"
)


def import_registry(conn: psycopg.Connection[Any], path: Path) -> ImportResult:
    """Create or update the sites and elevators listed in a registry CSV, in the caller's
    transaction."""
    return upsert_registry(conn, read_registry(path))


def read_registry(path: Path) -> ParsedRegistry:
    """Parse a registry CSV file; raise `RegistryError` when it cannot be read or is invalid."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return parse_registry(handle, source=str(path))
    except OSError as exc:
        raise RegistryError(f"cannot read {path}: {exc.strerror}") from exc


def upsert_registry(conn: psycopg.Connection[Any], parsed: ParsedRegistry) -> ImportResult:
    """Create or update parsed sites and elevators, in the caller's transaction."""
    site_rows = list(parsed.sites.values())
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sites (id, name, district) VALUES (%(id)s, %(name)s, %(district)s) "
            "ON CONFLICT (id) DO UPDATE SET name = excluded.name, district = excluded.district",
            site_rows,
        )
        for elevator in parsed.elevators:
            # Only the columns the row gives: an empty optional one keeps the column default.
            updated = [sql.Identifier(name) for name in elevator if name != "id"]
            cur.execute(
                _UPSERT_ELEVATOR.format(
                    columns=sql.SQL(", ").join(map(sql.Identifier, elevator)),
                    values=sql.SQL(", ").join(sql.Placeholder() * len(elevator)),
                    updates=sql.SQL(", ").join(
                        sql.SQL("{0} = excluded.{0}").format(name) for name in updated
                    ),
                ),
                [Jsonb(value) if name == "thresholds" else value
                 for name, value in elevator.items()],
            )  # fmt: skip
    return ImportResult(sites=len(site_rows), elevators=len(parsed.elevators))


def elevator_topics(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """(site, elevator) of every active elevator, by elevator, for broker accounts and ACLs."""
    rows = conn.execute("SELECT site_id, id FROM elevators WHERE active ORDER BY id").fetchall()
    return [(site, elevator) for site, elevator in rows]


def active_elevators(conn: psycopg.Connection[Any]) -> list[ElevatorSpec]:
    """Every active elevator, by id."""
    with conn.cursor(row_factory=class_row(ElevatorSpec)) as cur:
        return cur.execute(
            "SELECT site_id AS site, id AS elevator, lowest_floor, highest_floor, floor_height_m, "
            "rated_speed_mps, rated_load_kg, acceleration_mps2, jerk_mps3 "
            "FROM elevators WHERE active ORDER BY id"
        ).fetchall()
