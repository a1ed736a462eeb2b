"""When each simulated device next tries to connect: back-off after failures, spread in time.

Pure bookkeeping, no I/O: the fleet publisher asks which devices are due and makes the
attempts itself. Retries back off exponentially, and each device waits a different fraction
of the delay, so a broker restart does not bring every device back in the same millisecond.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

RECONNECT_MIN_DELAY_S: Final = 0.5
RECONNECT_MAX_DELAY_S: Final = 10.0
_GOLDEN_RATIO_FRACTION: Final = 0.6180339887498949

Device = TypeVar("Device", bound=Hashable)


def retry_delay_s(failed_attempts: int, index: int) -> float:
    """How long the device at `index` of its fleet waits after `failed_attempts` in a row."""
    doublings = min(failed_attempts, 16)  # bounded: 2.0 ** 1024 overflows
    base_s = min(RECONNECT_MAX_DELAY_S, RECONNECT_MIN_DELAY_S * 2.0**doublings)
    # Golden-ratio spread: devices retry at distinct fractions of the delay, not together.
    spread = (index * _GOLDEN_RATIO_FRACTION) % 1.0
    return base_s * (0.5 + 0.5 * spread)


class ConnectSchedule(Generic[Device]):
    """Due times of connection attempts, earliest first; a device's latest one counts."""

    def __init__(self) -> None:
        """Start with nothing scheduled."""
        self._heap: list[tuple[float, int, Device, int]] = []
        self._order = itertools.count()
        self._generations: dict[Device, int] = {}

    def __bool__(self) -> bool:
        """True while any entry is left, superseded ones included."""
        return bool(self._heap)

    def schedule(self, device: Device, due_s: float) -> None:
        """Make `device` due at `due_s` (monotonic seconds), replacing what it had scheduled."""
        generation = self._generations.get(device, 0) + 1
        self._generations[device] = generation
        heapq.heappush(self._heap, (due_s, next(self._order), device, generation))

    def earliest_s(self) -> float:
        """The earliest due time, possibly of a superseded entry (`pop_due` drops those)."""
        return self._heap[0][0]

    def pop_due(self, now_s: float) -> Device | None:
        """The next device due by `now_s`, removed from the schedule; None if none is due."""
        while self._heap and self._heap[0][0] <= now_s:
            _, _, device, generation = heapq.heappop(self._heap)
            if generation == self._generations[device]:
                return device
        return None

    def clear(self) -> None:
        """Drop every entry; devices scheduled later start afresh."""
        self._heap.clear()
