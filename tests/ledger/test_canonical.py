"""RFC 8785 canonical JSON: the RFC's own examples, then properties on random JSON values."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.canonical import canonical_json
from ledger.entries import entry_bytes


def test_rfc8785_number_examples_serialise_like_ecmascript() -> None:
    # RFC 8785 Appendix B (IEEE 754 → JSON).
    cases = {
        -0.0: "0", 5e-324: "5e-324", 1.7976931348623157e308: "1.7976931348623157e+308",
        9007199254740992.0: "9007199254740992", 295147905179352830000.0: "295147905179352830000",
        1e21: "1e+21", 1e-7: "1e-7", 0.000001: "0.000001", 333333333.3333333: "333333333.3333333",
        4.50: "4.5", 2e-3: "0.002", 1e23: "1e+23",
    }  # fmt: skip
    for value, text in cases.items():
        assert canonical_json(value) == text.encode()


def test_rfc8785_sorts_keys_by_utf16_code_units_and_escapes_minimally() -> None:
    # RFC 8785 §3.2.3's example: by UTF-16 code units the emoji (0xD83D…) sorts before
    # U+FB33, though its code point (U+1F600) is larger.
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "ö": 7}
    keys = list(json.loads(canonical_json(value)))
    assert keys == ["\r", "1", "\u0080", "ö", "\u20ac", "\U0001f600", "\ufb33"]
    assert canonical_json('a\u0001"\\\n') == b'"a\\u0001\\"\\\\\\n"'


def test_values_that_are_not_json_are_refused() -> None:
    for bad in (math.nan, math.inf, b"bytes", {1: "int key"}, object()):
        with pytest.raises(ValueError, match=r"JSON|string"):
            canonical_json(bad)


def test_entry_content_may_not_override_the_envelope() -> None:
    with pytest.raises(ValueError, match="kind"):
        entry_bytes("alert_event", {"kind": "forged"}, "00", prev=b"")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(json_values)
def test_canonical_bytes_parse_back_to_the_same_value(value: object) -> None:
    # Integers compare equal to the doubles they stand for: ECMAScript writes 2.8e16 as
    # 27964769841959750, the shortest digits of that double.
    assert json.loads(canonical_json(value), parse_int=float) == value


@given(st.dictionaries(st.text(max_size=6), st.integers(), max_size=8))
def test_key_order_does_not_change_the_bytes(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(reordered) == canonical_json(value)
