"""What a collector makes of one MQTT message: a sample, an event, a status, or a rejection.

`ingest.validate` builds them, the writer stores them a `Batch` at a time, and detection
(handed to the writer through `ingest.writer.Detection`) judges them; they live here so that
neither side imports the other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from core.protocol import TelemetrySample


@dataclass(frozen=True, slots=True)
class Sample:
    """A valid telemetry sample of a registered elevator."""

    elevator: str
    site: str
    time: dt.datetime
    received_at: dt.datetime
    data: TelemetrySample
    extra: dict[str, Any] | None
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """A valid device event; `body` holds the type-specific fields."""

    elevator: str
    site: str
    boot: str
    seq: int
    time: dt.datetime
    received_at: dt.datetime
    type: str
    body: dict[str, Any]
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Status:
    """An online/offline status message (retained, or the broker's Last Will)."""

    elevator: str
    site: str
    online: bool
    received_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message for the dead-letter table."""

    topic: str
    payload: bytes
    reason: str
    detail: str
    elevator: str | None
    received_at: dt.datetime
    payload_size: int = -1  # bytes as received when `payload` is only a prefix
    payload_sha256: bytes | None = None  # of the payload as received, when cut

    @property
    def size(self) -> int:
        """Size of the payload as received."""
        return self.payload_size if self.payload_size >= 0 else len(self.payload)

    @property
    def sha256(self) -> bytes:
        """SHA-256 of the payload as received."""
        if self.payload_sha256 is not None:
            return self.payload_sha256
        return hashlib.sha256(self.payload).digest()


@dataclass(slots=True)
class Batch:
    """Messages handled together: the writer commits one, detection judges its new rows."""

    samples: list[Sample] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
