"""Where simulated elevators come from: a registry (file or database) or a synthetic fleet."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from core.registry import ElevatorSpec, ParsedRegistry

ELEVATORS_PER_SYNTHETIC_SITE = 50


def spec_from_registry_row(row: Mapping[str, Any]) -> ElevatorSpec:
    """An `ElevatorSpec` from a parsed registry row (`core.registry.parse_registry`)."""
    return ElevatorSpec(
        site=row["site_id"],
        elevator=row["id"],
        lowest_floor=int(row["lowest_floor"]),
        highest_floor=int(row["highest_floor"]),
        floor_height_m=float(row.get("floor_height_m") or 3.0),
        rated_speed_mps=float(row["rated_speed_mps"]),
        rated_load_kg=float(row["rated_load_kg"]),
        acceleration_mps2=float(row.get("acceleration_mps2") or 0.8),
        jerk_mps3=float(row.get("jerk_mps3") or 1.2),
    )


def specs_from_registry(parsed: ParsedRegistry) -> list[ElevatorSpec]:
    """Every elevator of a parsed registry."""
    return [spec_from_registry_row(row) for row in parsed.elevators]


def synthetic_registry(count: int, *, seed: int) -> ParsedRegistry:
    """`count` residential elevators in sites of 50, 6 to 33 storeys, reproducible by seed."""
    rng = random.Random(seed)
    parsed = ParsedRegistry()
    for number in range(1, count + 1):
        site = f"sim-s{(number - 1) // ELEVATORS_PER_SYNTHETIC_SITE + 1:03d}"
        parsed.sites.setdefault(
            site, {"id": site, "name": f"Simulated site {site}", "district": "simulated"}
        )
        storeys = rng.choice([6, 6, 7, 11, 14, 18, 24, 28, 33])
        speed = 1.0 if storeys <= 7 else 1.75 if storeys <= 18 else 2.5
        parsed.elevators.append(
            {
                "id": f"sim-{number:05d}",
                "site_id": site,
                "building": f"Simulated building {number}",
                "registration_code": None,
                "lowest_floor": 1,
                "highest_floor": storeys,
                "rated_speed_mps": speed,
                "rated_load_kg": 630.0 if storeys <= 7 else 1000.0,
                "manufacturer": None,
                "installed_on": None,
                "thresholds": {},
                "floor_height_m": 2.9,
                "acceleration_mps2": 0.6 if storeys <= 7 else 0.9,
                "jerk_mps3": 1.0 if storeys <= 7 else 1.3,
            }
        )
    return parsed
