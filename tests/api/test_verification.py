"""The whole-log verification job: one at a time, shared by concurrent callers."""

from __future__ import annotations

import asyncio

from api.verification import VerificationJob


def test_concurrent_callers_share_one_run_and_a_later_caller_starts_another() -> None:
    async def scenario() -> tuple[list[int], int, int]:
        job = VerificationJob()
        runs = 0

        async def work() -> int:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.05)
            return runs

        results = await asyncio.gather(*(job.result(work) for _ in range(20)))
        later = await job.result(work)
        return [r.result for r in results], later.result, job.runs

    results, later, runs = asyncio.run(scenario())
    assert results == [1] * 20
    assert later == 2
    assert runs == 2


def test_a_caller_that_goes_away_does_not_cancel_the_shared_run() -> None:
    async def scenario() -> int:
        job = VerificationJob()

        async def work() -> int:
            await asyncio.sleep(0.05)
            return 42

        impatient = asyncio.ensure_future(job.result(work))
        patient = asyncio.ensure_future(job.result(work))
        await asyncio.sleep(0.01)
        impatient.cancel()
        return (await patient).result

    assert asyncio.run(scenario()) == 42
