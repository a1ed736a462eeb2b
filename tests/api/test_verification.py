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


def test_a_caller_arriving_after_a_job_began_gets_a_later_job_that_sees_the_edit() -> None:
    async def scenario() -> tuple[list[str], int]:
        job = VerificationJob()
        log = {"edited": False}

        async def verify() -> str:
            seen = "edited" if log["edited"] else "original"  # the log as the job reads it
            await asyncio.sleep(0.05)
            return seen

        before = asyncio.ensure_future(job.result(verify))
        await asyncio.sleep(0.01)  # the first job has read the log
        log["edited"] = True  # a supervisor's edit, then their verification
        after_edit = [asyncio.ensure_future(job.result(verify)) for _ in range(5)]
        reports = [(await before).result] + [(await call).result for call in after_edit]
        return reports, job.runs

    reports, runs = asyncio.run(scenario())
    assert reports == ["original"] + ["edited"] * 5
    assert runs == 2  # the five callers share one follow-up


def test_a_follow_up_begins_after_the_running_job_and_later_callers_queue_one_more() -> None:
    async def scenario() -> tuple[list[int], list[bool], int]:
        job = VerificationJob()
        running = 0
        overlapped = []
        runs = 0

        async def work() -> int:
            nonlocal running, runs
            runs += 1
            this = runs
            running += 1
            overlapped.append(running > 1)
            await asyncio.sleep(0.05)
            running -= 1
            return this

        first = asyncio.ensure_future(job.result(work))
        await asyncio.sleep(0.01)
        second = [asyncio.ensure_future(job.result(work)) for _ in range(3)]
        await first
        while job.runs < 2:  # until the follow-up has begun
            await asyncio.sleep(0.001)
        third = asyncio.ensure_future(job.result(work))
        results = [(await call).result for call in (first, *second, third)]
        return results, overlapped, job.runs

    results, overlapped, runs = asyncio.run(scenario())
    assert results == [1, 2, 2, 2, 3]
    assert overlapped == [False, False, False]
    assert runs == 3
