"""`ledger.canonical` against the `rfc8785` package: the same bytes for every JSON value of
the kinds ledger content holds (RFC 8785 differential test).

The ledger keeps its own encoder (docs/ledger.md, "Canonical JSON"); this test is what
proves it. The domain is where both are defined: integers of I-JSON's exact range (RFC 7493
§2.2, which the package enforces; ours writes larger ones as the double they stand for),
finite doubles, and text without lone surrogates (not UTF-8, refused by both).
"""

from __future__ import annotations

import math
import sys

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.canonical import canonical_json

SAFE_INT = 2**53 - 1
# Any code point but the surrogates, astral planes included (emoji, CJK extension B, …).
text = st.text(st.characters(codec="utf-8"), max_size=12)
# Keys that share prefixes and mix BMP characters above the surrogate range (U+E000…) with
# astral ones: UTF-16 order and code-point order disagree on them (RFC 8785 §3.2.3).
keys = text | st.sampled_from(["", "a", "aa", "\ue000", "\uffff", "\U00010000", "\U0001f600"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE_INT, SAFE_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=500)
@given(json_values)
@example({"\ufb33": 1, "\U0001f600": 2, "\u20ac": 3, "\r": 4, "1": 5, "\u0080": 6})
@example([5e-324, 1e21, 1e-7, 1e-6, 9007199254740992.0, 295147905179352830000.0, -0.0])
@example('\u0000\u001f\u007f\u2028\u2029"\\/\b\f\n\r\t')
def test_our_encoder_writes_the_bytes_the_rfc8785_package_writes(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_double_is_written_as_the_package_writes_it(value: float) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [sys.float_info.max, sys.float_info.min, math.ulp(0.0), 1e16, 1.5e16, 1e20, 1.2345e20,
     0.1 + 0.2, 1e-5, 123e-20, 2**53 - 1.0, -(2**52) + 0.5],
)  # fmt: skip
def test_doubles_at_the_edges_of_each_notation_agree(value: float) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("value", [SAFE_INT, -SAFE_INT, 0, 1, -1])
def test_integers_of_the_exact_range_agree(value: int) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)
