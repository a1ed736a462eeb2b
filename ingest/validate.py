"""Turn one received MQTT message into a validated value or a dead letter (SPEC §3).

Pure functions, no I/O: the caller passes the registry (elevator → site) and the receive time.
Decoding is one msgspec pass into a dict and one typed conversion, so a sample costs a few
microseconds. Fields beyond the protocol are kept (`extra`), never rejected.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from core.messages import Event, Rejected, Sample, Status
from core.protocol import (
    MAX_FUTURE_SKEW_S,
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    SAMPLE_RANGES,
    DeviceEvent,
    DeviceStatus,
    TelemetrySample,
    Topic,
    parse_topic,
)
from core.stored_json import depth_exceeds

_decode_object = msgspec.json.Decoder(dict[str, Any]).decode
SAMPLE_FIELDS: Final = frozenset(TelemetrySample.__struct_fields__)
EVENT_FIELDS: Final = frozenset(DeviceEvent.__struct_fields__)

MAX_BOOT_LENGTH: Final = 64
# Protocol payloads are flat objects; extra fields may nest a little. A bound far below the
# decoder's and the JSON encoder's recursion limits keeps a hostile payload from raising
# RecursionError (or worse, exhausting the C stack) anywhere downstream.
MAX_JSON_DEPTH: Final = 16
# How much of a payload over the size limit is kept in its dead letter (with size and hash).
OVERSIZED_PREFIX_BYTES: Final = 1024
# Device time older than this (default) is a `stale_timestamp`: one device must not make the
# hypertable create a chunk per message by sending dates from long ago (docs/ingest.md).
DEFAULT_MAX_AGE_S: Final = 7 * 86_400.0
MAX_SEQ: Final = 2**63 - 1  # bigint
# Every elevator publishes on the same three topics over and over.
_parse_topic = functools.lru_cache(maxsize=65_536)(parse_topic)


def unprocessable(
    topic: str,
    payload: bytes,
    received_at: dt.datetime,
    exc: BaseException,
    elevator: str | None,
    *,
    reason: str = "unprocessable",
) -> Rejected:
    """The dead letter of a message whose handling raised: the error is named, the batch goes on."""
    detail = f"{type(exc).__name__}: {exc}"[:500]
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejected(
            topic,
            payload[:OVERSIZED_PREFIX_BYTES],
            reason,
            detail,
            elevator,
            received_at,
            len(payload),
            hashlib.sha256(payload).digest(),
        )
    return Rejected(topic, payload, reason, detail, elevator, received_at)


Outcome = Sample | Event | Status | Rejected


def parse_device_time(text: str) -> dt.datetime:
    """An ISO 8601 timestamp with a zone (e.g. `2026-11-28T09:30:00.120Z`) as aware UTC."""
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return moment.astimezone(dt.UTC)


def _range_check(
    ranges: Mapping[str, tuple[float, float]],
) -> Callable[[TelemetrySample], str | None]:
    """The check of a sample's values against `ranges`: None when all lie in range, else
    what is wrong. The bounds are the closure's own, as fast to compare as literals."""
    (floor_lo, floor_hi), (pos_lo, pos_hi), (speed_lo, speed_hi), (load_lo, load_hi) = (
        ranges["floor"], ranges["pos_m"], ranges["speed_mps"], ranges["load_kg"]
    )  # fmt: skip
    (vib_lo, vib_hi), (motor_lo, motor_hi), (brake_lo, brake_hi), (level_lo, level_hi) = (
        ranges["vib_mg"], ranges["motor_c"], ranges["brake_c"], ranges["level_mm"]
    )  # fmt: skip

    def range_error(s: TelemetrySample) -> str | None:
        # The common case in one expression; the loop below only runs to name the culprit.
        if (
            floor_lo <= s.floor <= floor_hi
            and pos_lo <= s.pos_m <= pos_hi
            and speed_lo <= s.speed_mps <= speed_hi
            and load_lo <= s.load_kg <= load_hi
            and (s.vib_mg is None or vib_lo <= s.vib_mg <= vib_hi)
            and (s.motor_c is None or motor_lo <= s.motor_c <= motor_hi)
            and (s.brake_c is None or brake_lo <= s.brake_c <= brake_hi)
            and (s.level_mm is None or level_lo <= s.level_mm <= level_hi)
        ):
            return None
        for name, (low, high) in ranges.items():
            value = getattr(s, name)
            if value is None:
                continue
            if isinstance(value, float) and not math.isfinite(value):
                return f"{name} is not a finite number"
            if not low <= value <= high:
                return f"{name}={value} outside [{low}, {high}]"
        return None

    return range_error


_range_error: Final = _range_check(SAMPLE_RANGES)


def _envelope_error(boot: str, seq: int, version: int) -> str | None:
    if version != PROTOCOL_VERSION:
        return f"unsupported protocol version v={version}"
    if not boot or len(boot) > MAX_BOOT_LENGTH:
        return f"boot must be 1 to {MAX_BOOT_LENGTH} characters"
    if not 0 <= seq <= MAX_SEQ:
        return f"seq must be between 0 and {MAX_SEQ}"
    return None


def validate(  # noqa: PLR0911, PLR0912 - one early return per rejection reason
    topic: str,
    payload: bytes,
    *,
    received_at: dt.datetime,
    sites_by_elevator: Mapping[str, str],
    max_age_s: float = DEFAULT_MAX_AGE_S,
) -> Outcome:
    """Classify one message; never raises for bad input."""

    def reject(reason: str, detail: str, elevator: str | None = None) -> Rejected:
        return Rejected(topic, payload, reason, detail, elevator, received_at)

    parsed = _parse_topic(topic)
    if parsed is None or parsed.kind == "alert":
        return reject("bad_topic", "topic is not lift/v1/{site}/{elevator}/telemetry|event|status")
    elevator = parsed.elevator
    if len(payload) > MAX_PAYLOAD_BYTES:
        # Only a prefix is kept: a device must not fill the database with megabyte payloads.
        return Rejected(
            topic,
            payload[:OVERSIZED_PREFIX_BYTES],
            "too_large",
            f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}; first {OVERSIZED_PREFIX_BYTES} kept",
            elevator,
            received_at,
            len(payload),
            hashlib.sha256(payload).digest(),
        )
    site = sites_by_elevator.get(elevator)
    if site is None:
        return reject("unknown_elevator", f"elevator {elevator} is not registered", elevator)
    if site != parsed.site:
        return reject("wrong_site", f"elevator {elevator} belongs to site {site}", elevator)
    if depth_exceeds(payload, MAX_JSON_DEPTH):
        return reject("too_deep", f"JSON nested more than {MAX_JSON_DEPTH} levels", elevator)
    try:
        raw = _decode_object(payload)
    except msgspec.DecodeError as exc:
        return reject("malformed_json", str(exc), elevator)
    except UnicodeDecodeError as exc:
        return reject("malformed_json", f"invalid UTF-8: {exc}", elevator)
    if b"\\u0000" in payload:
        # PostgreSQL text and jsonb cannot hold NUL characters.
        return reject("invalid_field", "NUL character (\\u0000) in a string", elevator)
    try:
        if parsed.kind == "status":
            status = msgspec.convert(raw, DeviceStatus)
            return Status(elevator, site, status.state == "online", received_at)
        if parsed.kind == "event":
            outcome: Sample | Event | Problem = _event(raw, parsed, received_at, payload, max_age_s)
        else:
            outcome = _sample(raw, parsed, received_at, payload, max_age_s)
    except msgspec.ValidationError as exc:
        return reject("invalid_field", str(exc), elevator)
    if isinstance(outcome, tuple):
        return reject(*outcome, elevator)
    return outcome


def _device_time(
    ts: str, received_at: dt.datetime, max_age_s: float
) -> dt.datetime | tuple[str, str]:
    try:
        moment = parse_device_time(ts)
    except (ValueError, OverflowError) as exc:
        # An offset can push a valid local time past year 1 or 9999 (OverflowError).
        return ("invalid_field", f"ts {ts[:64]!r}: {exc}")
    ahead_s = (moment - received_at).total_seconds()
    if ahead_s > MAX_FUTURE_SKEW_S:
        return (
            "future_timestamp",
            f"ts {ts} is more than {MAX_FUTURE_SKEW_S:.0f} s ahead of receive time",
        )
    if -ahead_s > max_age_s:
        return ("stale_timestamp", f"ts {ts} is more than {max_age_s:.0f} s before receive time")
    return moment


Problem = tuple[str, str]  # (reason, detail) of a rejection


def _sample(
    raw: dict[str, Any], topic: Topic, received_at: dt.datetime, payload: bytes, max_age_s: float
) -> Sample | Problem:
    sample = msgspec.convert(raw, TelemetrySample)
    problem = _envelope_error(sample.boot, sample.seq, sample.v) or _range_error(sample)
    if problem is not None:
        return ("out_of_range", problem)
    moment = _device_time(sample.ts, received_at, max_age_s)
    if isinstance(moment, tuple):
        return moment
    extra = None
    if not raw.keys() <= SAMPLE_FIELDS:
        extra = {k: v for k, v in raw.items() if k not in SAMPLE_FIELDS}
    return Sample(
        topic.elevator, topic.site, moment, received_at, sample, extra, str(topic), payload
    )


def _valid_fault_code(code: object) -> bool:
    """A controller fault code: a GB/T 24476 number or a vendor's short code."""
    if isinstance(code, bool):
        return False
    if isinstance(code, int):
        return 0 <= code <= 65_535
    return isinstance(code, str) and 1 <= len(code) <= 32


def _event(
    raw: dict[str, Any], topic: Topic, received_at: dt.datetime, payload: bytes, max_age_s: float
) -> Event | Problem:
    event = msgspec.convert(raw, DeviceEvent)
    problem = _envelope_error(event.boot, event.seq, event.v)
    if problem is not None:
        return ("out_of_range", problem)
    moment = _device_time(event.ts, received_at, max_age_s)
    if isinstance(moment, tuple):
        return moment
    body = {k: v for k, v in raw.items() if k not in EVENT_FIELDS}
    if event.type == "fault_code" and not _valid_fault_code(body.get("code")):
        return ("invalid_field", "code must be an integer 0..65535 or a string of 1..32 characters")
    return Event(
        topic.elevator,
        topic.site,
        event.boot,
        event.seq,
        moment,
        received_at,
        event.type,
        body,
        str(topic),
        payload,
    )
