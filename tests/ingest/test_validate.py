from __future__ import annotations

import datetime as dt
import random

import msgspec
import pytest

from core.protocol import topic_for
from ingest.validate import Event, Rejected, Sample, Status, validate
from simulators.bad_input import bad_message

NOW = dt.datetime(2026, 11, 28, 9, 30, 5, tzinfo=dt.UTC)
REGISTRY = {"e1": "s1"}
TOPIC = topic_for("s1", "e1", "telemetry")
GOOD = {
    "v": 1, "boot": "b7e2", "seq": 1042, "ts": "2026-11-28T09:30:00.120Z",
    "floor": 5, "pos_m": 12.04, "speed_mps": 1.48, "dir": "up",
    "door": "closed", "door_zone": False, "door_lock": True, "safety_chain": True,
    "power": "mains", "load_kg": 320.0, "occupied": True, "mode": "normal",
    "vib_mg": 12.5, "motor_c": 45.1, "brake_c": 40.2, "level_mm": None,
}  # fmt: skip


def _check(payload: bytes, topic: str = TOPIC) -> object:
    return validate(topic, payload, received_at=NOW, sites_by_elevator=REGISTRY)


def _with(**changes: object) -> bytes:
    return msgspec.json.encode({**GOOD, **changes})


def test_spec_sample_is_accepted_with_device_time() -> None:
    outcome = _check(msgspec.json.encode(GOOD))
    assert isinstance(outcome, Sample)
    assert outcome.time == dt.datetime(2026, 11, 28, 9, 30, 0, 120000, tzinfo=dt.UTC)
    assert outcome.received_at == NOW
    assert outcome.extra is None
    assert outcome.payload == msgspec.json.encode(GOOD)


def test_unknown_fields_are_kept() -> None:
    outcome = _check(_with(fw="3.2.1", cabin_c=24))
    assert isinstance(outcome, Sample)
    assert outcome.extra == {"fw": "3.2.1", "cabin_c": 24}


def test_integers_are_accepted_for_float_fields() -> None:
    assert isinstance(_check(_with(speed_mps=1, load_kg=0)), Sample)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"v": 1, "boot":', "malformed_json"),
        (b"\xff\xfe garbage", "malformed_json"),
        (b"[1, 2]", "malformed_json"),
        (_with(floor="five"), "invalid_field"),
        (_with(door_zone=1), "invalid_field"),
        (_with(dir="sideways"), "invalid_field"),
        (_with(seq=None), "invalid_field"),
        (msgspec.json.encode({k: v for k, v in GOOD.items() if k != "mode"}), "invalid_field"),
        (_with(speed_mps=-0.5), "out_of_range"),
        (_with(floor=9999), "out_of_range"),
        (_with(v=2), "out_of_range"),
        (_with(boot=""), "out_of_range"),
        (_with(seq=-1), "out_of_range"),
        (_with(seq=2**63), "out_of_range"),
        (_with(ts="2026-11-28T09:45:00Z"), "future_timestamp"),
        (_with(ts="yesterday"), "invalid_field"),
        (_with(ts="2026-11-28T09:30:00"), "invalid_field"),
        (_with(boot="a\u0000b"), "invalid_field"),
        (_with(padding="x" * 70_000), "too_large"),
    ],
)
def test_bad_sample_is_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    outcome = _check(payload)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason
    assert outcome.payload == payload
    assert outcome.topic == TOPIC
    assert outcome.detail


def test_timestamp_within_five_minutes_ahead_is_accepted() -> None:
    assert isinstance(_check(_with(ts="2026-11-28T09:34:00Z")), Sample)


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        (topic_for("s1", "nobody", "telemetry"), "unknown_elevator"),
        (topic_for("s2", "e1", "telemetry"), "wrong_site"),
        ("lift/v1/s1/e1/junk", "bad_topic"),
        (topic_for("s1", "e1", "alert"), "bad_topic"),
        ("something/else", "bad_topic"),
    ],
)
def test_message_on_a_wrong_topic_is_rejected(topic: str, reason: str) -> None:
    outcome = _check(msgspec.json.encode(GOOD), topic)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason


def test_event_keeps_its_type_specific_fields() -> None:
    payload = msgspec.json.encode(
        {"v": 1, "boot": "b", "seq": 7, "ts": "2026-11-28T09:30:00Z", "type": "fault_code",
         "code": 5}
    )  # fmt: skip
    outcome = _check(payload, topic_for("s1", "e1", "event"))
    assert isinstance(outcome, Event)
    assert (outcome.type, outcome.body, outcome.seq) == ("fault_code", {"code": 5}, 7)


def test_unknown_event_type_is_rejected() -> None:
    payload = msgspec.json.encode(
        {"v": 1, "boot": "b", "seq": 7, "ts": "2026-11-28T09:30:00Z", "type": "party"}
    )
    outcome = _check(payload, topic_for("s1", "e1", "event"))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "invalid_field"


def test_status_and_last_will_are_understood() -> None:
    topic = topic_for("s1", "e1", "status")
    online = _check(b'{"state":"online","ts":"2026-11-28T09:30:00Z"}', topic)
    offline = _check(b'{"state":"offline"}', topic)
    assert isinstance(online, Status)
    assert online.online
    assert isinstance(offline, Status)
    assert not offline.online


@pytest.mark.parametrize("seed", range(300))
def test_generated_bad_input_never_validates_and_never_raises(seed: int) -> None:
    rng = random.Random(seed)
    for kind in ("malformed_json", "wrong_type", "out_of_range", "unknown_elevator",
                 "bad_topic", "oversized", "future_timestamp", "random_bytes"):  # fmt: skip
        bad = bad_message(kind, site="s1", elevator="e1", now=NOW, rng=rng)
        outcome = validate(bad.topic, bad.payload, received_at=NOW, sites_by_elevator=REGISTRY)
        assert isinstance(outcome, Rejected), (kind, bad.payload[:80])


@pytest.mark.parametrize("code", [[1], {}, True, -1, 10**400, 70_000, "", "x" * 33, None])
def test_fault_code_event_with_an_unusable_code_is_rejected(code: object) -> None:
    payload = msgspec.json.encode(
        {"v": 1, "boot": "b", "seq": 7, "ts": "2026-11-28T09:30:00Z", "type": "fault_code",
         "code": code}
    )  # fmt: skip
    outcome = _check(payload, topic_for("s1", "e1", "event"))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "invalid_field"
    assert "code" in outcome.detail


@pytest.mark.parametrize("code", [0, 65_535, "E-17"])
def test_fault_code_event_with_a_number_or_short_vendor_code_is_accepted(code: object) -> None:
    payload = msgspec.json.encode(
        {"v": 1, "boot": "b", "seq": 7, "ts": "2026-11-28T09:30:00Z", "type": "fault_code",
         "code": code}
    )  # fmt: skip
    assert isinstance(_check(payload, topic_for("s1", "e1", "event")), Event)
