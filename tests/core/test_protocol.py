from __future__ import annotations

import msgspec
import pytest

from core.protocol import TelemetrySample, is_valid_id, parse_topic, topic_for

SAMPLE = (
    b'{"v": 1, "boot": "b7e2", "seq": 1042, "ts": "2026-11-28T09:30:00.120Z",'
    b' "floor": 5, "pos_m": 12.04, "speed_mps": 1.48, "dir": "up",'
    b' "door": "closed", "door_zone": false, "door_lock": true, "safety_chain": true,'
    b' "power": "mains", "load_kg": 320.0, "occupied": true, "mode": "normal",'
    b' "vib_mg": 12.5, "motor_c": 45.1, "brake_c": 40.2, "level_mm": null}'
)


def test_topic_round_trips() -> None:
    topic = topic_for("nc01", "nc01-b01-e1", "telemetry")
    parsed = parse_topic(topic)
    assert parsed is not None
    assert (parsed.site, parsed.elevator, parsed.kind) == ("nc01", "nc01-b01-e1", "telemetry")


@pytest.mark.parametrize(
    "topic",
    [
        "lift/v2/s/e/telemetry",
        "lift/v1/s/e/unknown",
        "lift/v1/s/e/telemetry/extra",
        "lift/v1/s.x/e/telemetry",
        "lift/v1/" + "s" * 65 + "/e/event",
        "lift/v1//e/status",
    ],
)
def test_topics_outside_the_scheme_are_rejected(topic: str) -> None:
    assert parse_topic(topic) is None


def test_ids_follow_the_protocol_alphabet() -> None:
    assert is_valid_id("A-z_09")
    assert is_valid_id("x" * 64)
    assert not is_valid_id("x" * 65)
    assert not is_valid_id("svc.collector")
    assert not is_valid_id("")


def test_spec_sample_decodes() -> None:
    sample = msgspec.json.decode(SAMPLE, type=TelemetrySample)
    assert sample.seq == 1042
    assert sample.level_mm is None
    assert sample.dir == "up"


def test_unknown_fields_do_not_reject_a_sample() -> None:
    payload = SAMPLE[:-1] + b', "fw": "3.2.1"}'
    assert msgspec.json.decode(payload, type=TelemetrySample).floor == 5


def test_wrong_enum_value_is_rejected_with_the_field_named() -> None:
    payload = SAMPLE.replace(b'"dir": "up"', b'"dir": "sideways"')
    with pytest.raises(msgspec.ValidationError, match=r"\$\.dir"):
        msgspec.json.decode(payload, type=TelemetrySample)
