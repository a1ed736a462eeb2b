"""What the elevator model and its faults share: the car's phases, a trip, and its numbers.

Numbers (door times, door zone, levelling tolerance, temperatures) come from
`docs/simulator.md`, which cites their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from simulators.physics import TripProfile

ACTIVE_STEP_S: Final = 0.1
DOOR_ZONE_M: Final = 0.10
DOOR_OPEN_S: Final = 2.0
DOOR_CLOSE_S: Final = 3.0
DOOR_HOLD_S: Final = 3.0
TRANSFER_S_PER_PASSENGER: Final = 1.2
START_DELAY_S: Final = 0.5
REOPEN_PROBABILITY: Final = 0.08
LEVEL_SIGMA_MM: Final = 2.5
LEVEL_HEALTHY_LIMIT_MM: Final = 8.0
AMBIENT_C: Final = 25.0
MOTOR_TAU_S: Final = 900.0
BRAKE_TAU_S: Final = 600.0
MAINTENANCE_INTERVAL_S: Final = 14 * 86_400.0
MAINTENANCE_VISIT_S: Final = 3_600.0
OVERTRAVEL_M: Final = 0.4


class Phase(StrEnum):
    """What the car is doing."""

    IDLE = "idle"
    DOOR_OPENING = "door_opening"
    DOOR_OPEN = "door_open"
    DOOR_CLOSING = "door_closing"
    START_DELAY = "start_delay"
    MOVING = "moving"
    EMERGENCY_STOP = "emergency_stop"  # braking to a standstill after a protection trips
    HALTED = "halted"  # stopped by a fault or protection device, out of service
    RESCUE = "rescue"  # creeping to the nearest landing after a halt
    DRIFT = "drift"  # moving with the brake not holding (unintended movement)
    OVERSPEED = "overspeed"  # running away above rated speed until the governor trips


@dataclass(slots=True)
class Trip:
    """A run of the car from `start_pos_m` towards landing `target`, starting at `start_s`."""

    profile: TripProfile
    start_s: float
    start_pos_m: float
    sign: int
    target: int
