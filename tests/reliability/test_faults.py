"""Faults at the backend: every job ends done or refunded with a sentence, none is stuck, and
the ledger balances to the credit (reserves = commits + refunds)."""

from __future__ import annotations

import asyncio

from bot.app import build_service
from bot.core.jobs import JobDone, JobFailed, JobState
from tests.helpers import Recorder, actor, target

JOBS = 120
USERS = 12


async def run_jobs(service, recorder: Recorder, jobs: int = JOBS) -> list[str]:
    ids = []
    for i in range(jobs):
        job = await service.imagine(actor(f"user{i % USERS}"), f"fox {i} --n {1 + i % 2}",
                                    None, target())
        ids.append(job.id)
    await recorder.wait(lambda: all(recorder.final(j) for j in ids), seconds=120)
    return ids


async def assert_books_balance(service, ids: list[str], recorder: Recorder) -> None:
    for job_id in ids:
        finals = recorder.final(job_id)
        assert len(finals) == 1, f"job {job_id} ended {len(finals)} times"
        job = await service.jobs.get(job_id)
        assert job.state in (JobState.DONE, JobState.FAILED)
        if isinstance(finals[0], JobFailed):
            assert finals[0].refunded and "refunded" in finals[0].message
            assert "Traceback" not in finals[0].message
    rows = await service.db.read(
        "SELECT job_id, SUM(CASE kind WHEN 'reserve' THEN credits ELSE 0 END) AS reserved, "
        "SUM(CASE kind WHEN 'commit' THEN credits WHEN 'refund' THEN credits ELSE 0 END) AS settled "
        "FROM ledger WHERE job_id IS NOT NULL GROUP BY job_id"
    )
    assert len(rows) == len(ids)
    assert all(row["reserved"] == row["settled"] for row in rows)
    spent = sum(job.cost for job in [await service.jobs.get(j) for j in ids]
                if job.state is JobState.DONE)
    [used] = await service.db.read("SELECT SUM(used) + 0 FROM quota_accounts")
    assert used[0] == spent


async def test_a_mix_of_errors_timeouts_and_broken_answers_ends_every_job_cleanly(
    settings_for, fake_segmind
):
    service = await build_service(settings_for(
        segmind={"concurrency": 6, "timeout_s": 0.3},
        quota={"max_queued_per_user": 100, "default_allowance": 1000},
        dispatch={"max_retries": 2},
    ))
    recorder = Recorder(service)
    fake_segmind.failure_rate = 0.2
    fake_segmind.hang_s = 1.0
    fake_segmind.slow_chunk_s = 0.01
    fake_segmind.faults = (
        [429] * 8 + ["timeout", "slow-body", "not-image", "wrong-content-type", "truncated",
                     "disconnect"] * 4 + [400, 404]
    )
    await service.start()
    try:
        ids = await run_jobs(service, recorder)
        outcomes = [type(recorder.final(j)[0]) for j in ids]
        assert outcomes.count(JobDone) > JOBS // 2  # retries rescue most
        await assert_books_balance(service, ids, recorder)
    finally:
        await service.stop()


async def test_an_expired_key_for_a_while_fails_jobs_with_a_refund_then_service_resumes(
    settings_for, fake_segmind
):
    service = await build_service(settings_for(
        segmind={"concurrency": 4}, quota={"max_queued_per_user": 100},
    ))
    recorder = Recorder(service)
    await service.start()
    try:
        fake_segmind.fail_for(401, seconds=None)
        broken = await run_jobs(service, recorder, jobs=10)
        assert all(isinstance(recorder.final(j)[0], JobFailed) for j in broken)
        assert all("unavailable" in recorder.final(j)[0].message for j in broken)
        fake_segmind.fail_for(406, seconds=None)
        broke = await run_jobs(service, recorder, jobs=10)
        fake_segmind.reset()
        healed = await run_jobs(service, recorder, jobs=10)
        assert all(isinstance(recorder.final(j)[0], JobDone) for j in healed)
        await assert_books_balance(service, broken + broke + healed, recorder)
    finally:
        await service.stop()


async def test_no_job_is_left_queued_or_running_after_a_fault_storm(settings_for, fake_segmind):
    service = await build_service(settings_for(
        segmind={"concurrency": 3}, quota={"max_queued_per_user": 100},
    ))
    recorder = Recorder(service)
    fake_segmind.failure_rate = 0.5
    await service.start()
    try:
        await run_jobs(service, recorder, jobs=40)
        await asyncio.sleep(0.1)
        rows = await service.db.read(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
        assert rows[0][0] == 0
    finally:
        await service.stop()
