"""Device protocol v1: MQTT topics, identifiers and the shape of samples and events (SPEC §3).

The simulator and the collector share this module and nothing else of each other.
Payload structs are msgspec types so that decoding and type checking happen in one fast pass;
fields a device sends beyond these are kept by the collector, not rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

PROTOCOL_VERSION: Final = 1
TOPIC_PREFIX: Final = "lift/v1"
MAX_PAYLOAD_BYTES: Final = 64 * 1024
MAX_FUTURE_SKEW_S: Final = 300.0

# A site or elevator id: one MQTT topic level. The one pattern of the platform: the API's
# `api.types.Identifier` and every other check are built from it.
ID_PATTERN: Final = r"[A-Za-z0-9_-]{1,64}"
_ID_RE: Final = re.compile(rf"^{ID_PATTERN}$")

# What a sample's values may be (inclusive): the physically possible readings of a car;
# anything outside is a broken sensor or encoder, dead-lettered by the collector rather than
# detected as a fault. The floor range is deliberately wider than the floors a building may
# number (`core.registry.FLOOR_RANGE`, which the registry and the API check): a car beyond
# its top or bottom landing must reach the detectors as overtravel (SPEC §4), not be
# refused. The ranges also keep every value inside its column type: binary COPY does not
# range-check, and a floor of 40,000 would be stored in the smallint column as -25,536.
SAMPLE_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "floor": (-50, 500),
    "pos_m": (-100.0, 2000.0),
    "speed_mps": (0.0, 25.0),
    "load_kg": (0.0, 20_000.0),
    "vib_mg": (0.0, 100_000.0),
    "motor_c": (-60.0, 400.0),
    "brake_c": (-60.0, 400.0),
    "level_mm": (-5000.0, 5000.0),
}

TopicKind = Literal["telemetry", "event", "status", "alert"]
DEVICE_TOPIC_KINDS: Final = ("telemetry", "event", "status")
_TOPIC_RE: Final = re.compile(
    rf"^{TOPIC_PREFIX}/(?P<site>{ID_PATTERN})/(?P<elevator>{ID_PATTERN})/"
    r"(?P<kind>telemetry|event|status|alert)$"
)

Direction = Literal["up", "down", "idle"]
DoorState = Literal["closed", "opening", "open", "closing"]
PowerSource = Literal["mains", "battery", "off"]
Mode = Literal[
    "normal",
    "inspection",
    "maintenance",
    "fire",
    "emergency_power",
    "earthquake",
    "out_of_service",
]
EventType = Literal["alarm_button", "fault_code", "door_cycle", "mode_change", "landing_call"]


def is_valid_id(value: str) -> bool:
    """True when `value` may be used as a site or elevator id."""
    return _ID_RE.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed `lift/v1/{site}/{elevator}/{kind}` topic."""

    site: str
    elevator: str
    kind: TopicKind

    def __str__(self) -> str:
        return topic_for(self.site, self.elevator, self.kind)


def parse_topic(topic: str) -> Topic | None:
    """The parts of a protocol topic, or None when the topic is outside the scheme."""
    match = _TOPIC_RE.fullmatch(topic)
    if match is None:
        return None
    kind: TopicKind = match["kind"]  # type: ignore[assignment]
    return Topic(site=match["site"], elevator=match["elevator"], kind=kind)


def topic_for(site: str, elevator: str, kind: TopicKind) -> str:
    """The topic one elevator publishes `kind` messages on."""
    return f"{TOPIC_PREFIX}/{site}/{elevator}/{kind}"


class TelemetrySample(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """One periodic state sample of an elevator (SPEC §3)."""

    v: int
    boot: str
    seq: int
    ts: str
    floor: int
    pos_m: float
    speed_mps: float
    dir: Direction
    door: DoorState
    door_zone: bool
    door_lock: bool
    safety_chain: bool
    power: PowerSource
    load_kg: float
    occupied: bool
    mode: Mode
    vib_mg: float | None = None
    motor_c: float | None = None
    brake_c: float | None = None
    level_mm: float | None = None


class DeviceEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """A discrete event; type-specific fields (`code`, `open_s`, `from`, …) travel as extras."""

    v: int
    boot: str
    seq: int
    ts: str
    type: EventType


class DeviceStatus(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """The retained online/offline status message and Last Will."""

    state: Literal["online", "offline"]
