"""A sample's values are checked against `core.protocol.SAMPLE_RANGES` and nothing else."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.protocol import SAMPLE_RANGES, TelemetrySample
from ingest.validate import _range_error

OPTIONAL = ("vib_mg", "motor_c", "brake_c", "level_mm")


def _near(name: str) -> st.SearchStrategy[float | None]:
    low, high = SAMPLE_RANGES[name]
    values: st.SearchStrategy[float | None] = st.sampled_from(
        [low, high, math.nextafter(low, -math.inf), math.nextafter(high, math.inf),
         (low + high) / 2, math.nan, math.inf, -math.inf]
    ) | st.floats(low - 10, high + 10)  # fmt: skip
    return values | st.none() if name in OPTIONAL else values


@given(
    st.fixed_dictionaries({name: _near(name) for name in SAMPLE_RANGES if name != "floor"}),
    st.integers(int(SAMPLE_RANGES["floor"][0]) - 3, int(SAMPLE_RANGES["floor"][1]) + 3),
)
def test_a_sample_is_in_range_exactly_when_every_value_lies_in_its_range(
    values: dict[str, float | None], floor: int
) -> None:
    values["floor"] = floor
    sample = TelemetrySample(
        v=1, boot="b", seq=1, ts="2026-11-28T09:00:00Z", dir="idle", door="closed",
        door_zone=True, door_lock=True, safety_chain=True, power="mains", occupied=False,
        mode="normal", **values,  # type: ignore[arg-type]
    )  # fmt: skip
    inside = all(
        value is None or SAMPLE_RANGES[name][0] <= value <= SAMPLE_RANGES[name][1]
        for name, value in values.items()
    )
    problem = _range_error(sample)
    assert (problem is None) == inside
    if problem is not None:
        assert problem.split("=")[0].split(" ")[0] in SAMPLE_RANGES
