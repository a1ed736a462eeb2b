"""The fleet as people see it: registry fields joined with live status and active alerts.

Read and written over a psycopg connection in the caller's transaction (the API's). The
bulk path stays `core.registry` (the CSV import); this module serves single
elevators and pages of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from core.alerting import UNRESOLVED_SQL
from core.errors import Refused, RegistryError
from core.faults import threshold_out_of_range, unknown_threshold_names
from core.pages import Keyset, KeysetPage, fetch_page

REGISTRY_FIELDS: Final = (
    "site_id", "building", "registration_code", "lowest_floor", "highest_floor",
    "floor_height_m", "rated_speed_mps", "rated_load_kg", "acceleration_mps2", "jerk_mps3",
    "manufacturer", "installed_on", "thresholds", "active",
)  # fmt: skip

_SELECT: Final = f"""
SELECT e.id, e.site_id, e.building, e.registration_code, e.lowest_floor, e.highest_floor,
       e.floor_height_m, e.rated_speed_mps, e.rated_load_kg, e.acceleration_mps2, e.jerk_mps3,
       e.manufacturer, e.installed_on, e.thresholds, e.active, e.created_at, e.updated_at,
       coalesce(s.online, false) AS online, s.last_seen, s.floor, s.mode,
       coalesce((SELECT jsonb_agg(jsonb_build_object(
                   'id', a.id, 'type', a.type, 'severity', a.severity, 'status', a.status,
                   'condition', a.condition, 'opened_at', a.opened_at) ORDER BY a.id)
                 FROM alerts a
                 WHERE a.elevator_id = e.id AND a.status IN ({UNRESOLVED_SQL})),
                '[]'::jsonb) AS active_alerts
FROM elevators e LEFT JOIN elevator_status s ON s.elevator_id = e.id
"""  # noqa: S608 - UNRESOLVED_SQL is a constant of the enum
BY_ID: Final = Keyset("e.id", "text")


class FleetError(RegistryError, Refused):
    """A registry change that is refused; `code` says why, `field` names the input."""


def list_elevators(
    conn: psycopg.Connection[Any],
    *,
    sites: Collection[str] | None,
    site: str | None = None,
    online: bool | None = None,
    after_id: str | None = None,
    limit: int = 50,
) -> KeysetPage[dict[str, Any]]:
    """Elevators by id, after `after_id`, limited to `sites` (None: all) and the filters given."""
    equal = (("e.site_id", site), ("coalesce(s.online, false)", online))
    return fetch_page(conn, _SELECT, BY_ID, after=after_id, limit=limit, equal=equal,
                      any_of=[("e.site_id", sites)])  # fmt: skip


def get_elevator(conn: psycopg.Connection[Any], elevator_id: str) -> dict[str, Any] | None:
    """One elevator with its live status and active alerts."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(_SELECT + " WHERE e.id = %s", (elevator_id,)).fetchone()


def site_of(conn: psycopg.Connection[Any], elevator_id: str) -> str | None:
    """The site of an elevator; None when it is not registered."""
    row = conn.execute("SELECT site_id FROM elevators WHERE id = %s", (elevator_id,)).fetchone()
    return None if row is None else str(row[0])


def _check(fields: Mapping[str, Any], conn: psycopg.Connection[Any]) -> None:
    thresholds = fields.get("thresholds")
    if thresholds is not None:
        unknown = unknown_threshold_names(thresholds)
        if unknown:
            raise FleetError(
                f"unknown threshold names: {', '.join(unknown)}",
                code="unknown_threshold",
                field="thresholds",
            )
        out_of_range = threshold_out_of_range(thresholds)
        if out_of_range is not None:
            name, message = out_of_range
            raise FleetError(message, code="out_of_range", field=f"thresholds.{name}")
    site = fields.get("site_id")
    if site is not None:
        row = conn.execute("SELECT 1 FROM sites WHERE id = %s", (site,)).fetchone()
        if row is None:
            raise FleetError(f"site {site} does not exist", code="unknown_site", field="site_id")


def _check_floors(lowest: int, highest: int) -> None:
    if highest <= lowest:
        raise FleetError(
            "highest_floor must be above lowest_floor", code="bad_floors", field="highest_floor"
        )


def _registration_taken(conn: psycopg.Connection[Any], code: str | None, elevator_id: str) -> None:
    if code is None:
        return
    row = conn.execute(
        "SELECT id FROM elevators WHERE registration_code = %s AND id <> %s", (code, elevator_id)
    ).fetchone()
    if row is not None:
        raise FleetError(
            f"registration code {code} belongs to elevator {row[0]}",
            code="registration_taken",
            field="registration_code",
        )


def _taken(code: str | None) -> FleetError:
    return FleetError(
        f"registration code {code} belongs to another elevator",
        code="registration_taken",
        field="registration_code",
    )


def _value(name: str, value: Any) -> Any:
    return Jsonb(value) if name == "thresholds" else value


def create_elevator(conn: psycopg.Connection[Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Register an elevator; refuses an id that exists."""
    _check(fields, conn)
    _check_floors(fields["lowest_floor"], fields["highest_floor"])
    _registration_taken(conn, fields.get("registration_code"), fields["id"])
    names = ["id", *(name for name in REGISTRY_FIELDS if fields.get(name) is not None)]
    placeholders = ", ".join(["%s"] * len(names))
    try:
        row = conn.execute(
            f"INSERT INTO elevators ({', '.join(names)}) VALUES ({placeholders}) "  # noqa: S608
            "ON CONFLICT (id) DO NOTHING RETURNING id",
            [_value(name, fields[name]) for name in names],
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:  # a concurrent registration took the code
        raise _taken(fields.get("registration_code")) from exc
    if row is None:
        raise FleetError(f"elevator {fields['id']} already exists", code="elevator_exists",
                         field="id")  # fmt: skip
    created = get_elevator(conn, fields["id"])
    if created is None:
        raise RuntimeError("an elevator just inserted is not readable")
    return created


def update_elevator(
    conn: psycopg.Connection[Any], elevator_id: str, changes: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Change registry fields of an elevator; None when it does not exist."""
    current = get_elevator(conn, elevator_id)
    if current is None:
        return None
    _check(changes, conn)
    _check_floors(
        changes.get("lowest_floor", current["lowest_floor"]),
        changes.get("highest_floor", current["highest_floor"]),
    )
    if "registration_code" in changes:
        _registration_taken(conn, changes["registration_code"], elevator_id)
    moving = changes.get("site_id") not in (None, current["site_id"])
    if moving and current["active_alerts"]:
        # An alert belongs to the site it was raised on (its crew acts on it): an elevator
        # moves to another site once its alerts are resolved.
        raise FleetError(
            f"elevator {elevator_id} has unresolved alerts; resolve them before moving it "
            "to another site",
            code="unresolved_alerts",
            field="site_id",
        )
    names = [name for name in REGISTRY_FIELDS if name in changes]
    if names:
        assignments = ", ".join(f"{name} = %s" for name in names)
        try:
            conn.execute(
                f"UPDATE elevators SET {assignments}, updated_at = %s WHERE id = %s",  # noqa: S608
                [*(_value(name, changes[name]) for name in names), dt.datetime.now(dt.UTC),
                 elevator_id],
            )  # fmt: skip
        except psycopg.errors.UniqueViolation as exc:
            raise _taken(changes.get("registration_code")) from exc
    return get_elevator(conn, elevator_id)
