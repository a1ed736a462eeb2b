"""Passenger arrivals for residential buildings by time of day; pure, seeded, no I/O.

Residents leave home in the morning and return in the evening, so a residential building's
morning peak runs down to the entrance floor and its evening peak runs up from it; midday
and night carry light two-way traffic (Barney & Al-Sharif, "Elevator Traffic Handbook":
residential traffic is dominated by these two peaks). Arrivals follow a non-homogeneous
Poisson process drawn by thinning.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

DAY_S = 86_400.0
# Passengers per hour per served floor above the entrance, by hour of the local day.
HOURLY_RATE_PER_FLOOR: tuple[float, ...] = (
    0.05, 0.03, 0.02, 0.02, 0.03, 0.15,   # 00-05
    0.6, 1.6, 1.4, 0.6, 0.4, 0.5,         # 06-11 (morning outgoing peak 07-09)
    0.6, 0.5, 0.4, 0.4, 0.6, 1.2,         # 12-17
    1.6, 1.3, 0.8, 0.5, 0.3, 0.1,         # 18-23 (evening incoming peak 17-20)
)  # fmt: skip
# Share of trips leaving home (down to the entrance) by hour; the rest come home or go
# between floors.
OUTGOING_SHARE: tuple[float, ...] = (
    0.3, 0.3, 0.3, 0.3, 0.5, 0.7,
    0.85, 0.85, 0.8, 0.6, 0.5, 0.5,
    0.45, 0.45, 0.45, 0.4, 0.35, 0.2,
    0.15, 0.2, 0.3, 0.3, 0.3, 0.3,
)  # fmt: skip
INTERFLOOR_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class ResidentialTraffic:
    """Arrival process of one building's elevator."""

    landings: Sequence[int]
    entrance: int
    start_hour: float
    rate_scale: float = 1.0

    def rate_per_s(self, t_s: float) -> float:
        """Arrival rate (passengers/s) at simulated time `t_s`."""
        hour = int(((self.start_hour * 3600.0 + t_s) % DAY_S) // 3600)
        homes = max(1, len(self.landings) - 1)
        return HOURLY_RATE_PER_FLOOR[hour] * homes * self.rate_scale / 3600.0

    def _max_rate(self) -> float:
        homes = max(1, len(self.landings) - 1)
        return max(HOURLY_RATE_PER_FLOOR) * homes * self.rate_scale / 3600.0

    def next_arrival(self, after_s: float, rng: random.Random) -> tuple[float, int, int]:
        """(time, origin, destination) of the next passenger after `after_s`."""
        peak = self._max_rate()
        if peak <= 0:
            return (math.inf, self.entrance, self.entrance)
        t = after_s
        while True:
            t += rng.expovariate(peak)
            if rng.random() * peak <= self.rate_per_s(t):
                return (t, *self._trip(t, rng))

    def _trip(self, t_s: float, rng: random.Random) -> tuple[int, int]:
        homes = [f for f in self.landings if f != self.entrance]
        home = rng.choice(homes)
        if rng.random() < INTERFLOOR_SHARE and len(homes) > 1:
            other = rng.choice([f for f in homes if f != home])
            return home, other
        hour = int(((self.start_hour * 3600.0 + t_s) % DAY_S) // 3600)
        if rng.random() < OUTGOING_SHARE[hour]:
            return home, self.entrance
        return self.entrance, home
