"""Sign-in attempts limited per username and client address, with exponential back-off.

Three keys count failures, each with its own allowance: a username at one client address
(strict: a few failures), a client address whatever the usernames, and a username from all
addresses together (much higher: it bounds a guesser spread over many addresses). Keying the
strict lockout on the pair means a guesser elsewhere cannot lock a crew member out by
failing a few times per back-off: the right password from another address still goes
through until the username's own, higher, limit is reached.

Every attempt counts as a failure while its password is being checked, so a burst of
concurrent guesses is limited as well as a sequence. When a key reaches its number of
allowed failures, it is refused for `backoff_s`; every further failure after that doubles
the wait, up to `backoff_max_s`. While refused, even the right password is answered 429
without being checked (no hashing is spent on it). A successful sign-in clears the failures
of the username at that address; the address and the username overall keep theirs (one
valid sign-in must not reset the count of a guesser elsewhere). Failures are forgotten
`FORGET_AFTER_S` after the last one.

State lives in the API process (the counts are per worker) and is bounded: at most
`MAX_KEYS` keys are kept, the least recently touched ones go first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

FORGET_AFTER_S: Final = 3600.0
MAX_KEYS: Final = 100_000


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    """How many failures each key is allowed and how long it then waits: `user_failures`
    for a username at one address, `address_failures` for an address, and
    `user_total_failures` for a username from all addresses together."""

    user_failures: int = 5
    address_failures: int = 20
    user_total_failures: int = 50
    backoff_s: float = 30.0
    backoff_max_s: float = 900.0


@dataclass(slots=True)
class _Record:
    failures: int = 0
    pending: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class SignInLimiter:
    """Counts sign-in failures per username at an address, per client address and per
    username (one event loop)."""

    def __init__(
        self, policy: SignInPolicy, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._records: OrderedDict[tuple[str, ...], _Record] = OrderedDict()

    def _record(self, key: tuple[str, ...], now: float) -> _Record:
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
            while len(self._records) > MAX_KEYS:
                self._records.popitem(last=False)
        else:
            self._records.move_to_end(key)
        if record.failures and not record.pending and now - record.last_failure > FORGET_AFTER_S:
            record.failures, record.blocked_until = 0, 0.0
        return record

    def _keys(self, username: str, address: str) -> list[tuple[tuple[str, ...], int]]:
        return [(("user at address", username, address), self.policy.user_failures),
                (("address", address), self.policy.address_failures),
                (("user", username), self.policy.user_total_failures)]  # fmt: skip

    def begin(self, username: str, address: str) -> float | None:
        """Seconds to wait before trying again, or None: the attempt may go ahead and is
        counted until `finish` says how it ended."""
        now = self._clock()
        wait = 0.0
        for key, allowed in self._keys(username, address):
            record = self._record(key, now)
            if record.blocked_until > now:
                wait = max(wait, record.blocked_until - now)
            elif record.pending and record.failures + record.pending >= max(
                allowed, 1 + record.failures
            ):
                # The allowance is taken by attempts being checked (after a back-off, one
                # attempt at a time).
                wait = max(wait, 1.0)
        if wait > 0:
            return float(math.ceil(wait))
        for key, _ in self._keys(username, address):
            self._record(key, now).pending += 1
        return None

    def finish(self, username: str, address: str, *, succeeded: bool | None) -> None:
        """Record how an attempt that `begin` let through ended (None: it could not be
        checked, e.g. the database was down, and counts neither way)."""
        now = self._clock()
        for key, allowed in self._keys(username, address):
            record = self._record(key, now)
            record.pending = max(0, record.pending - 1)
            if succeeded is None:
                continue
            if succeeded:
                if key[0] == "user at address":
                    record.failures, record.blocked_until = 0, 0.0
                continue
            record.failures += 1
            record.last_failure = now
            if record.failures >= allowed:
                doublings = min(record.failures - allowed, 30)
                wait = min(self.policy.backoff_s * 2**doublings, self.policy.backoff_max_s)
                record.blocked_until = now + wait
