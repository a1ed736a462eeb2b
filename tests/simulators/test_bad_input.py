from __future__ import annotations

import datetime as dt
import random

import msgspec
import pytest

from core.protocol import MAX_FUTURE_SKEW_S, MAX_PAYLOAD_BYTES, TelemetrySample, parse_topic
from simulators.bad_input import BAD_KINDS, bad_message

NOW = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


def _make(kind: str, seed: int) -> tuple[str, bytes]:
    bad = bad_message(kind, site="s1", elevator="e1", now=NOW, rng=random.Random(seed))
    assert bad.kind == kind
    return bad.topic, bad.payload


def _decodes(payload: bytes) -> TelemetrySample | None:
    try:
        return msgspec.json.decode(payload, type=TelemetrySample)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


@pytest.mark.parametrize("seed", range(20))
def test_each_kind_breaks_its_rule(seed: int) -> None:
    topic, payload = _make("malformed_json", seed)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(payload)

    assert _decodes(_make("wrong_type", seed)[1]) is None

    topic, payload = _make("out_of_range", seed)
    sample = _decodes(payload)
    assert sample is None or sample.speed_mps < 0 or sample.floor > 1000 or sample.v != 1

    topic, _ = _make("unknown_elevator", seed)
    parsed = parse_topic(topic)
    assert parsed is not None
    assert parsed.elevator.startswith("unknown-")

    topic, _ = _make("bad_topic", seed)
    assert parse_topic(topic) is None

    assert len(_make("oversized", seed)[1]) > MAX_PAYLOAD_BYTES

    sample = _decodes(_make("future_timestamp", seed)[1])
    assert sample is not None
    sent = dt.datetime.fromisoformat(sample.ts.replace("Z", "+00:00"))
    assert (sent - NOW).total_seconds() > MAX_FUTURE_SKEW_S


def test_duplicate_repeats_the_given_bytes() -> None:
    original = b'{"v":1}'
    bad = bad_message(
        "duplicate", site="s", elevator="e", now=NOW, rng=random.Random(1), duplicate_of=original
    )
    assert bad.payload == original


def test_every_kind_is_generated() -> None:
    for kind in BAD_KINDS:
        assert _make(kind, 3)[1]
    with pytest.raises(ValueError, match="unknown bad-input kind"):
        _make("sneaky", 1)
