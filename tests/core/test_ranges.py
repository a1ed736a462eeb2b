"""The two floor ranges: what a building may number, and what a car may report."""

from __future__ import annotations

from core.protocol import SAMPLE_RANGES
from core.registry import FLOOR_RANGE


def test_a_car_past_any_buildings_last_landing_still_reports_a_floor_samples_may_carry() -> None:
    # Overtravel (SPEC §4) is detected from the floor a car reports beyond its building's
    # top or bottom landing, so such a sample must pass validation, not be dead-lettered.
    lowest, highest = FLOOR_RANGE
    sample_low, sample_high = SAMPLE_RANGES["floor"]
    assert sample_low < lowest
    assert highest < sample_high
