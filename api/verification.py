"""Whole-log verification as one job per API process, however many ask for it.

Verifying the whole log reads every entry and recomputes every hash: seconds of work and
a database connection for as long. Run once per request, twenty concurrent requests took
twenty connections and the CPU from every other caller. Here the first request starts the
job in a worker thread (off the event loop), and requests share jobs, but a request only
ever receives the report of a job that began after it arrived: a supervisor who edits and
then asks must not get the OK of a verification that read the log before the edit. A
request arriving while a job runs therefore waits for it and then for one follow-up job,
which every request arriving meanwhile shares. So at most one job runs and one waits; each
report names when its job started and finished.
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


@dataclass(slots=True)
class _Job:
    future: asyncio.Future[Finished[object]]
    begun: bool = False  # once true, the job may have read the log: later callers wait


class VerificationJob:
    """At most one running job and one follow-up; callers share them (one event loop)."""

    def __init__(self) -> None:
        self._latest: _Job | None = None  # the job a new caller would wait for
        self.runs = 0  # jobs started, for metrics and tests

    @property
    def running(self) -> bool:
        """True while a job runs or waits to run."""
        return self._latest is not None

    async def result(self, start: Callable[[], Awaitable[T]]) -> Finished[T]:
        """The result of a job that begins after this call, started with `start()`: the
        pending job when one has not begun yet, else a new one that runs once the job
        running now is done."""
        job = self._latest
        if job is None or job.begun:
            job = self._launch(start, after=job)
        # A caller that goes away does not cancel the job the others wait for.
        finished = await asyncio.shield(job.future)
        return finished  # type: ignore[return-value]

    def _launch(self, start: Callable[[], Awaitable[T]], *, after: _Job | None) -> _Job:
        async def run() -> Finished[object]:
            if after is not None:
                await asyncio.wait([after.future])  # its failure is its own callers'
            job.begun = True
            self.runs += 1
            started = dt.datetime.now(dt.UTC)
            value = await start()
            return Finished(value, started, dt.datetime.now(dt.UTC))

        job = _Job(asyncio.ensure_future(run()))
        self._latest = job

        def done(_: asyncio.Future[Finished[object]]) -> None:
            if self._latest is job:
                self._latest = None

        job.future.add_done_callback(done)
        return job
