"""Drive a `Fleet` against the wall clock and hand its messages to a sink.

Sinks: `JsonLinesSink` writes one JSON object per message (`--dry-run`), and `MqttSink`
publishes through `FleetPublisher`. `replay()` sends a recorded JSON-lines file again, byte
for byte, at its original pace scaled by the speed-up.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from core.protocol import topic_for
from simulators.fleet import TICK_S, DeviceMessage, Fleet
from simulators.publisher import FleetPublisher

PROGRESS_EVERY_S = 1.0
# Without a speed-up the fleet runs as fast as it can, one simulated minute per step.
UNPACED_STEP_S = 60.0


class MessageSink(Protocol):
    """Where simulated messages go."""

    def send(self, message: DeviceMessage, *, speedup: float) -> None:
        """Deliver one message."""

    def pump(self, timeout_s: float) -> None:
        """Let the sink do I/O for up to `timeout_s`."""


@dataclass(slots=True)
class Progress:
    """Counters for the progress line."""

    sim_s: float = 0.0
    sent: int = 0
    faults: int = 0
    wall_s: float = 0.0

    def line(self) -> str:
        """`sim 00:05:00  sent 12,345  3,456 msg/s  faults 2`."""
        rate = self.sent / self.wall_s if self.wall_s > 0 else 0.0
        h, rem = divmod(int(self.sim_s), 3600)
        m, s = divmod(rem, 60)
        return (
            f"sim {h:02d}:{m:02d}:{s:02d}  sent {self.sent:,}  {rate:,.0f} msg/s  "
            f"faults injected {self.faults}"
        )


class JsonLinesSink:
    """Writes `{"t_s", "topic", "retain", "payload"}` lines; the payload text is exact."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle

    def send(self, message: DeviceMessage, *, speedup: float) -> None:
        """Write one line."""
        topic = topic_for(message.site, message.elevator, message.kind)
        self.write(message.t_s, topic, message.payload, retain=message.kind == "status")

    def write(self, t_s: float, topic: str, payload: bytes, *, retain: bool) -> None:
        """Write one line for any payload (bytes that are not UTF-8 are replaced)."""
        record = {
            "t_s": t_s,
            "topic": topic,
            "retain": retain,
            "payload": payload.decode(errors="replace"),
        }
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")

    def pump(self, timeout_s: float) -> None:
        """Nothing to do between lines."""


class MqttSink:
    """Publishes through one MQTT identity per elevator."""

    def __init__(self, publisher: FleetPublisher) -> None:
        self._publisher = publisher

    def send(self, message: DeviceMessage, *, speedup: float) -> None:
        """Publish telemetry and events; an `offline` status means the device loses its link."""
        if message.kind == "status":
            if b"offline" in message.payload:
                # The broker, not the device, announces the loss: drop the link without
                # DISCONNECT and let the Last Will speak; reconnect when the fault ends.
                self._publisher.drop(message.elevator, down_s=math.inf)
            else:
                self._publisher.reconnect(message.elevator)
            return
        self._publisher.publish(message.elevator, message.kind, message.payload)

    def pump(self, timeout_s: float) -> None:
        """Service the sockets."""
        self._publisher.pump(timeout_s)


def run_fleet(
    fleet: Fleet,
    sink: MessageSink,
    *,
    duration_s: float,
    speedup: float | None,
    on_progress: Callable[[Progress], None] | None = None,
) -> Progress:
    """Run `fleet` for `duration_s` simulated seconds; paced when `speedup` is given."""
    progress = Progress()
    wall_start = time.monotonic()
    last_report = wall_start
    pace = speedup or 0.0
    while fleet.t_s < duration_s - 1e-9:
        now = time.monotonic()
        if pace > 0:
            target = min(duration_s, (now - wall_start) * pace)
            target = math.floor(target / TICK_S) * TICK_S
            if target <= fleet.t_s + 1e-9:
                sink.pump(min(0.05, TICK_S / pace))
                continue
        else:
            target = min(duration_s, fleet.t_s + UNPACED_STEP_S)
        for message in fleet.advance_to(target):
            sink.send(message, speedup=pace)
            progress.sent += 1
        sink.pump(0.0)
        progress.sim_s = fleet.t_s
        progress.faults = fleet.faults_injected
        progress.wall_s = time.monotonic() - wall_start
        if on_progress is not None and now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            on_progress(progress)
    progress.wall_s = time.monotonic() - wall_start
    return progress


def read_recording(lines: Iterable[str]) -> list[tuple[float, str, bytes, bool]]:
    """(t_s, topic, payload, retain) from a `--dry-run` recording."""
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            records.append(
                (
                    float(record["t_s"]),
                    str(record["topic"]),
                    str(record["payload"]).encode(),
                    bool(record.get("retain", False)),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"recording line {number}: {exc}") from None
    return records


def replay(
    path: Path,
    publisher: FleetPublisher,
    *,
    elevator_of: Callable[[str], str | None],
    speedup: float | None,
) -> int:
    """Publish a recording again, byte for byte; returns the number of messages sent."""
    with path.open(encoding="utf-8") as handle:
        records = read_recording(handle)
    start = time.monotonic()
    sent = 0
    for t_s, topic, payload, retain in records:
        elevator = elevator_of(topic)
        if elevator is None:
            continue
        if speedup:
            while (time.monotonic() - start) * speedup < t_s:
                publisher.pump(0.01)
        publisher.publish_raw(elevator, topic, payload, retain=retain)
        sent += 1
        publisher.pump(0.0)
    return sent
