from __future__ import annotations

import datetime as dt
import hashlib
import json
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.messages import Event, Rejected, Sample, Status
from core.protocol import topic_for
from core.stored_json import depth_exceeds
from ingest.validate import MAX_JSON_DEPTH, OVERSIZED_PREFIX_BYTES, validate
from simulators.bad_input import bad_message
from tests.factories import event_payload

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
    if reason == "too_large":  # only a prefix is kept, with the size and hash of the whole
        assert outcome.payload == payload[:OVERSIZED_PREFIX_BYTES]
    else:
        assert outcome.payload == payload
    assert (outcome.size, outcome.sha256) == (len(payload), hashlib.sha256(payload).digest())
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
    payload = event_payload("fault_code", boot="b", seq=7, ts="2026-11-28T09:30:00Z", code=5)
    outcome = _check(payload, topic_for("s1", "e1", "event"))
    assert isinstance(outcome, Event)
    assert (outcome.type, outcome.body, outcome.seq) == ("fault_code", {"code": 5}, 7)


def test_unknown_event_type_is_rejected() -> None:
    payload = event_payload("party", boot="b", seq=7, ts="2026-11-28T09:30:00Z")
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
    payload = event_payload("fault_code", boot="b", seq=7, ts="2026-11-28T09:30:00Z", code=code)
    outcome = _check(payload, topic_for("s1", "e1", "event"))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "invalid_field"
    assert "code" in outcome.detail


@pytest.mark.parametrize("code", [0, 65_535, "E-17"])
def test_fault_code_event_with_a_number_or_short_vendor_code_is_accepted(code: object) -> None:
    payload = event_payload("fault_code", boot="b", seq=7, ts="2026-11-28T09:30:00Z", code=code)
    assert isinstance(_check(payload, topic_for("s1", "e1", "event")), Event)


# -- hostile payloads (docs/security.md: a device) ----------------------------------------------


def _sample_text(**changes: object) -> str:
    return json.dumps({**GOOD, **changes}, separators=(",", ":"))


POISON = [
    pytest.param(b'{"a":"\xc3"}', "malformed_json", id="invalid-utf8-in-a-string"),
    pytest.param(b"[" * 1000 + b"]" * 1000, "too_deep", id="arrays-1000-deep"),
    pytest.param(
        _sample_text()[:-1].encode() + b',"x":' + b"[" * 985 + b"]" * 985 + b"}",
        "too_deep",
        id="valid-sample-with-an-extra-field-985-deep",
    ),
    # "type" makes these events on the event topic too (an extra field in telemetry), so both
    # paths reach the time.
    pytest.param(
        _sample_text(type="door_cycle", ts="0001-01-01T00:00:00+00:01").encode(),
        "invalid_field",
        id="ts-before-year-1",
    ),
    pytest.param(
        _sample_text(type="door_cycle", ts="9999-12-31T23:59:59-01:00").encode(),
        "invalid_field",
        id="ts-after-year-9999",
    ),
    pytest.param(b'{"a":' * 100_00 + b"1" + b"}" * 100_00, "too_deep", id="objects-10000-deep"),
]


@pytest.mark.parametrize(("payload", "reason"), POISON)
@pytest.mark.parametrize("kind", ["telemetry", "event"])
def test_poison_payload_is_a_dead_letter_not_an_exception(
    payload: bytes, reason: str, kind: str
) -> None:
    outcome = _check(payload, topic_for("s1", "e1", kind))  # type: ignore[arg-type]
    assert isinstance(outcome, Rejected)
    assert outcome.reason == reason
    if reason == "invalid_field":  # the poison times: refused for the time, not the shape
        assert outcome.detail.startswith("ts "), outcome.detail


def test_nesting_within_the_bound_is_kept_as_an_extra_field() -> None:
    nested: object = 1
    for _ in range(MAX_JSON_DEPTH - 1):  # the sample object itself is the first level
        nested = [nested]
    outcome = _check(_with(x=nested))
    assert isinstance(outcome, Sample)
    assert outcome.extra == {"x": nested}


def test_nesting_one_past_the_bound_is_too_deep() -> None:
    nested: object = 1
    for _ in range(MAX_JSON_DEPTH):
        nested = [nested]
    outcome = _check(_with(x=nested))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "too_deep"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    outcome = _check(_with(note="[[[[{{{{" * 20 + '\\"]]]'))
    assert isinstance(outcome, Sample)


def test_depth_scan_is_linear_on_an_unterminated_string_of_escapes() -> None:
    payload = b"[" * (MAX_JSON_DEPTH + 1) + b'"' + b'\\"' * 30_000
    started = dt.datetime.now()
    assert depth_exceeds(payload, MAX_JSON_DEPTH)
    assert depth_exceeds(b"[1," + payload, MAX_JSON_DEPTH)
    assert (dt.datetime.now() - started).total_seconds() < 1.0


@given(st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c, max_size=3)))
def test_depth_scan_agrees_with_the_structure(value: object) -> None:
    def depth(v: object) -> int:
        return 1 + max(map(depth, v), default=0) if isinstance(v, list) else 0

    payload = json.dumps(value).encode()
    assert depth_exceeds(payload, 3) == (depth(value) > 3)


def test_device_time_older_than_the_bound_is_stale() -> None:
    old = _with(ts="2026-11-20T09:30:00Z")  # eight days before NOW
    outcome = _check(old)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "stale_timestamp"
    kept = validate(
        TOPIC, old, received_at=NOW, sites_by_elevator=REGISTRY, max_age_s=10 * 86_400.0
    )
    assert isinstance(kept, Sample)


def test_oversized_payload_keeps_a_prefix_its_size_and_its_hash() -> None:
    payload = b"x" * (1024 * 1024)
    outcome = _check(payload)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "too_large"
    assert outcome.payload == payload[:OVERSIZED_PREFIX_BYTES]
    assert outcome.size == len(payload)
    assert outcome.sha256 == hashlib.sha256(payload).digest()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)
ODD_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00+00:01",
        "9999-12-31T23:59:59-01:00",
        "2026-11-28T09:30:00.120Z",
        "2026-02-30T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "",
        "Z",
        "2026-11-28T09:30:00+24:00",
    ]
) | st.text(max_size=40)


def _adversarial_payloads() -> st.SearchStrategy[bytes]:
    fields = st.dictionaries(st.sampled_from(sorted(GOOD)), JSON_VALUES, max_size=6)
    mutated = st.builds(lambda changes: _with(**changes), fields)
    odd_time = st.builds(lambda ts: _with(ts=ts), ODD_TIMES)
    deep = st.builds(
        lambda n, opener: _sample_text()[:-1].encode() + b',"x":' + opener * n + b"}",
        st.integers(0, 3000),
        st.sampled_from([b"[", b"{", b'{"a":']),
    )
    duplicate_keys = st.builds(
        lambda key, value: _sample_text()[:-1].encode() + f',"{key}":{value}}}'.encode(),
        st.sampled_from(sorted(GOOD)),
        st.sampled_from(["1", '"x"', "null", "1e999", "-1e999", "123456789012345678901234567890"]),
    )
    invalid_utf8 = st.builds(
        lambda raw, at: _with(note="__")[: at % 200] + raw + _with(note="__")[at % 200 :],
        st.binary(min_size=1, max_size=4).filter(lambda b: not _is_utf8(b)),
        st.integers(0, 400),
    )
    return (
        st.binary(max_size=300)
        | mutated
        | odd_time
        | deep
        | duplicate_keys
        | invalid_utf8
        | st.builds(lambda v: json.dumps(v).encode(), JSON_VALUES)
    )


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(_adversarial_payloads(), st.sampled_from(["telemetry", "event", "status"]))
def test_validation_never_raises_on_adversarial_payloads(payload: bytes, kind: str) -> None:
    outcome = _check(payload, topic_for("s1", "e1", kind))  # type: ignore[arg-type]
    assert isinstance(outcome, Sample | Event | Status | Rejected)
    if isinstance(outcome, Sample) and outcome.extra is not None:
        json.dumps(outcome.extra)  # what the writer will store can be encoded
