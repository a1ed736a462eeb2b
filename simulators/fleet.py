"""A simulated fleet: many `ElevatorModel`s on one clock, turned into protocol v1 messages.

`Fleet.advance_to(t_s)` runs every elevator to simulated time `t_s` in 0.1 s ticks and returns
the messages devices would publish by then, in a deterministic order: the same specs, seed and
start time give byte-identical output. Telemetry goes out every second while an elevator is
active (moving, doors in motion, someone in the car) and every `idle_interval_s` otherwise;
events go out as they happen. Idle elevators are not stepped at all until their next sample,
call or scheduled change, which is what makes thousands of elevators cheap on one core.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from core.protocol import PROTOCOL_VERSION
from core.registry import ElevatorSpec
from simulators.elevator import ElevatorModel
from simulators.scenario import ScheduledFault
from simulators.traffic import ResidentialTraffic

TICK_S: Final = 0.1
MOVING_INTERVAL_S: Final = 1.0
IDLE_INTERVAL_S: Final = 10.0

MessageKind = Literal["telemetry", "event", "status"]
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """One message an elevator publishes; `status` messages stand for online/Last Will."""

    t_s: float
    site: str
    elevator: str
    kind: MessageKind
    payload: bytes


def derived_seed(seed: int, *parts: str) -> int:
    """A stable per-elevator seed (Python's `hash` is salted per process, this is not)."""
    digest = hashlib.sha256(":".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _arrivals(
    traffic: ResidentialTraffic, rng: random.Random
) -> Callable[[float], tuple[float, int, int]]:
    return lambda after_s: traffic.next_arrival(after_s, rng)


class _Device:
    """One elevator with its identity on the wire (boot id, sequence numbers)."""

    __slots__ = ("boot", "last_sample_s", "model", "seq", "was_silent")

    def __init__(self, model: ElevatorModel, boot: str, first_sample_s: float) -> None:
        self.model = model
        self.boot = boot
        self.seq = 0
        self.last_sample_s = first_sample_s
        self.was_silent = False


class Fleet:
    """Simulated elevators on one clock."""

    def __init__(
        self,
        specs: Sequence[ElevatorSpec],
        *,
        seed: int,
        start: dt.datetime,
        faults: Sequence[ScheduledFault] = (),
        traffic_scale: float = 1.0,
        idle_interval_s: float = IDLE_INTERVAL_S,
        moving_interval_s: float = MOVING_INTERVAL_S,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._epoch_s = start.timestamp()
        self._start_hour = start.astimezone(dt.UTC).hour + start.minute / 60.0
        self.idle_interval_s = idle_interval_s
        self.moving_interval_s = moving_interval_s
        self.t_s = 0.0
        self.devices: list[_Device] = []
        self.by_id: dict[str, _Device] = {}
        for spec in specs:
            rng = random.Random(derived_seed(seed, spec.site, spec.elevator))
            traffic = ResidentialTraffic(
                landings=spec.landings(),
                entrance=1 if 1 in spec.landings() else spec.lowest_floor,
                start_hour=self._start_hour,
                rate_scale=traffic_scale,
            )
            traffic_rng = random.Random(derived_seed(seed, "traffic", spec.elevator))
            model = ElevatorModel(spec, rng, arrivals=_arrivals(traffic, traffic_rng))
            boot = f"{rng.getrandbits(48):012x}"
            device = _Device(model, boot, -rng.uniform(0.0, idle_interval_s))
            self.devices.append(device)
            self.by_id[spec.elevator] = device
        unknown = sorted({f.elevator for f in faults} - set(self.by_id))
        if unknown:
            raise ValueError(f"scenario names unknown elevator(s): {', '.join(unknown[:5])}")
        self._pending = sorted(faults, key=lambda f: f.at_s)
        self.faults_injected = 0

    # -- time ------------------------------------------------------------------------------

    def advance_to(self, t_s: float) -> list[DeviceMessage]:
        """Run the fleet to `t_s` and return what the devices published meanwhile."""
        out: list[DeviceMessage] = []
        tick = self.t_s
        while tick < t_s - 1e-9:
            tick = min(t_s, round(tick + TICK_S, 6))
            self._inject_due(tick)
            for device in self.devices:
                self._advance_device(device, tick, out)
            if not any(device.model.active for device in self.devices):
                # Nothing moves: skip the ticks before the next thing that happens.
                tick = max(tick, min(t_s, self._next_change_s()) - TICK_S)
                tick = round(math.floor(tick / TICK_S + 1e-6) * TICK_S, 6)
        self.t_s = t_s
        return out

    def _next_change_s(self) -> float:
        soonest = self._pending[0].at_s if self._pending else math.inf
        for device in self.devices:
            model = device.model
            soonest = min(soonest, device.last_sample_s + self.idle_interval_s, model.next_wake_s())
        return soonest

    def _inject_due(self, tick: float) -> None:
        while self._pending and self._pending[0].at_s <= tick:
            fault = self._pending.pop(0)
            device = self.by_id[fault.elevator]
            device.model.advance_to(fault.at_s)
            if fault.fault.startswith("mode:"):
                device.model.set_mode(fault.fault.removeprefix("mode:"))
                restore = ScheduledFault(
                    fault.at_s + fault.duration_s, fault.elevator, "mode:normal", 0.0
                )
                if fault.fault != "mode:normal":
                    self._schedule(restore)
            else:
                device.model.inject(fault.fault, fault.duration_s)
            self.faults_injected += 1

    def _schedule(self, fault: ScheduledFault) -> None:
        index = len(self._pending)
        while index > 0 and self._pending[index - 1].at_s > fault.at_s:
            index -= 1
        self._pending.insert(index, fault)

    def _advance_device(self, device: _Device, tick: float, out: list[DeviceMessage]) -> None:
        model = device.model
        interval = self.moving_interval_s if model.active else self.idle_interval_s
        sample_due = tick - device.last_sample_s >= interval - 1e-9
        idle = not sample_due and not model.active and not model.events
        if idle and tick < model.next_wake_s():
            # Nothing changes before its next wake-up, so do not step it at all.
            return
        model.advance_to(tick)
        if model.silent != device.was_silent:
            device.was_silent = model.silent
            state = "offline" if model.silent else "online"
            out.append(self._message(device, tick, "status", {"state": state}))
        if model.events:
            if not model.silent:
                for record in model.events:
                    out.append(self._envelope(device, record.t_s, "event", record.body))
            model.events.clear()
        interval = self.moving_interval_s if model.active else self.idle_interval_s
        if tick - device.last_sample_s >= interval - 1e-9:
            device.last_sample_s = tick
            if not model.silent:
                out.append(self._envelope(device, tick, "telemetry", model.telemetry()))

    # -- encoding --------------------------------------------------------------------------

    def timestamp(self, t_s: float, offset_s: float = 0.0) -> str:
        """ISO 8601 UTC with milliseconds, as devices send it."""
        moment = dt.datetime.fromtimestamp(self._epoch_s + t_s + offset_s, dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _envelope(
        self, device: _Device, t_s: float, kind: MessageKind, body: dict[str, Any]
    ) -> DeviceMessage:
        device.seq += 1
        payload = {
            "v": PROTOCOL_VERSION,
            "boot": device.boot,
            "seq": device.seq,
            "ts": self.timestamp(t_s, device.model.clock_offset_s),
            **body,
        }
        return self._message(device, t_s, kind, payload)

    def _message(
        self, device: _Device, t_s: float, kind: MessageKind, payload: dict[str, Any]
    ) -> DeviceMessage:
        spec = device.model.spec
        return DeviceMessage(round(t_s, 3), spec.site, spec.elevator, kind, _encode(payload))

    def online_messages(self) -> list[DeviceMessage]:
        """The retained `online` status every device publishes when it connects."""
        return [self._message(d, 0.0, "status", {"state": "online"}) for d in self.devices]
