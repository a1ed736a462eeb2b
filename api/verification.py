"""Whole-log verification as one job per API process, however many ask for it.

Verifying the whole log reads every entry and recomputes every hash: seconds of work and
a database connection for as long. Run once per request, twenty concurrent requests took
twenty connections and the CPU from every other caller. Here the first request starts the
job in a worker thread (off the event loop); a request arriving while it runs waits for
the same job and receives the same report, which names when it started and finished.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Finished(Generic[T]):
    """A job's result and when the job ran."""

    result: T
    started_at: dt.datetime
    finished_at: dt.datetime


class VerificationJob:
    """At most one running job; concurrent callers share it (one event loop)."""

    def __init__(self) -> None:
        self._running: asyncio.Future[Finished[object]] | None = None
        self.runs = 0  # jobs started, for metrics and tests

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self._running is not None

    async def result(self, start: Callable[[], Awaitable[T]]) -> Finished[T]:
        """The running job's result, starting it with `start()` when none runs."""
        if self._running is None:
            self.runs += 1

            async def timed() -> Finished[object]:
                started = dt.datetime.now(dt.UTC)
                value = await start()
                return Finished(value, started, dt.datetime.now(dt.UTC))

            job = asyncio.ensure_future(timed())
            self._running = job

            def done(_: asyncio.Future[Finished[object]]) -> None:
                self._running = None

            job.add_done_callback(done)
        # A caller that goes away does not cancel the job the others wait for.
        finished = await asyncio.shield(self._running)
        return finished  # type: ignore[return-value]
