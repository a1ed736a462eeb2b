from __future__ import annotations

import io

import pytest

from core.errors import RegistryError
from core.registry import SAMPLE_REGISTRY, parse_registry

HEADER = "elevator_id,site_id,building,lowest_floor,highest_floor,rated_speed_mps,rated_load_kg"


def _parse(*rows: str, header: str = HEADER) -> object:
    return parse_registry(io.StringIO("\n".join([header, *rows]) + "\n"), source="r.csv")


def test_sample_registry_is_a_sub_district_of_21_committees() -> None:
    with SAMPLE_REGISTRY.open(encoding="utf-8") as handle:
        parsed = parse_registry(handle, source="sample")
    assert len(parsed.sites) == 21
    assert 200 <= len(parsed.elevators) <= 400
    top_floors = {e["highest_floor"] for e in parsed.elevators}
    assert min(top_floors) == 6
    assert max(top_floors) == 33
    assert all(e["rated_speed_mps"] > 0 and e["rated_load_kg"] > 0 for e in parsed.elevators)


def test_minimal_row_gets_defaults() -> None:
    parsed = parse_registry(io.StringIO(HEADER + "\ne1,s1,Bldg 1,1,6,1.0,630\n"), source="r.csv")
    assert parsed.sites["s1"]["name"] == "s1"
    assert parsed.elevators[0]["thresholds"] == {}
    assert "floor_height_m" not in parsed.elevators[0]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("e1,s1,B,6,1,1.0,630", "line 2: highest_floor must be above lowest_floor"),
        ("e1,s1,B,1,6,fast,630", "line 2: rated_speed_mps must be a number, got 'fast'"),
        ("e.1,s1,B,1,6,1.0,630", "line 2: elevator_id 'e.1' must match"),
        ("e1,s1,B,1,6,0,630", "line 2: rated_speed_mps and rated_load_kg must be > 0"),
        ("e1,s1,B,1,six,1.0,630", "line 2: highest_floor must be an integer"),
    ],
)
def test_bad_row_is_reported_with_its_line(row: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _parse(row)


def test_duplicate_elevator_is_refused() -> None:
    with pytest.raises(RegistryError, match="line 3: elevator e1 listed twice"):
        _parse("e1,s1,B,1,6,1.0,630", "e1,s1,B,1,7,1.0,630")


def test_unknown_threshold_is_refused() -> None:
    header = HEADER + ",thresholds"
    with pytest.raises(RegistryError, match="unknown threshold names traped_s"):
        _parse('e1,s1,B,1,6,1.0,630,"{""traped_s"": 30}"', header=header)


def test_missing_column_is_refused() -> None:
    with pytest.raises(RegistryError, match="missing column\\(s\\) rated_load_kg"):
        _parse("e1,s1,B,1,6,1.0", header=HEADER.rsplit(",", 1)[0])


def test_empty_file_is_refused() -> None:
    with pytest.raises(RegistryError, match="no elevators"):
        _parse()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("e1,s1,B,1,6,1e6,630", r"rated_speed_mps must lie between 0\.05 and 25"),
        ("e1,s1,B,1,6,1.0,1e12", "rated_load_kg must lie between 50 and 50000"),
        ("e1,s1,B,1,6,nan,630", "rated_speed_mps and rated_load_kg must be > 0"),
        ("e1,s1,B,1,6,inf,630", "rated_speed_mps must lie between"),
        ("e1,s1,B,-1000,6,1.0,630", "lowest_floor must lie between -20 and 300"),
        ("e1,s1,B,1,100000,1.0,630", "highest_floor must lie between -20 and 300"),
    ],
)
def test_a_registry_number_outside_its_range_is_refused_by_name(row: str, message: str) -> None:
    with pytest.raises(RegistryError, match=f"line 2: {message}"):
        _parse(row)


def test_a_threshold_outside_its_range_is_refused_by_name() -> None:
    header = HEADER + ",thresholds"
    with pytest.raises(RegistryError, match="threshold escalate_ack_s must lie between 10 and"):
        _parse('e1,s1,B,1,6,1.0,630,"{""escalate_ack_s"": 1e18}"', header=header)


def test_a_measure_outside_its_range_is_refused_by_name() -> None:
    header = HEADER + ",acceleration_mps2"
    with pytest.raises(RegistryError, match=r"acceleration_mps2 must lie between 0\.05 and 5"):
        _parse("e1,s1,B,1,6,1.0,630,1000", header=header)
