"""Each state change happens once: a job that became final while its backend call ran keeps
its outcome when the late answer comes in (no flip to done, no second charge or refund, no
second final event)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.app import build_service
from bot.config import Settings
from bot.core.jobs import Job, JobRunning, JobState
from bot.core.service import ImagineService
from tests.fakes.segmind import FakeSegmind
from tests.helpers import Recorder, actor, target
from tests.reliability.books import rows
from tests.reliability.support import until


async def running_at_segmind(settings: Settings, fake: FakeSegmind) -> tuple[
        ImagineService, Recorder, Job]:
    """A started service whose one job is running, its call held at the fake Segmind."""
    fake.gate = asyncio.Event()
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    job = await service.imagine(actor(), "a red fox", None, target())
    await recorder.wait(lambda: any(isinstance(e, JobRunning) and e.job.id == job.id
                                    for e in recorder.events))
    await until(lambda: len(fake.requests) == 1, 10, "the call held at Segmind")
    return service, recorder, job


async def settled_elsewhere(settings: Settings, job_id: str, state: JobState) -> None:
    """Another process on the same file finishes the job first (refunding a failure,
    charging a success), as the dispatcher does."""
    other = await build_service(settings)
    try:
        def settle(conn: Any) -> None:
            if state is JobState.DONE:
                assert other.jobs.finish(conn, job_id, JobState.DONE)
                other.quota.commit(conn, job_id)
            else:
                assert other.jobs.finish(conn, job_id, state, error="Stopped elsewhere.",
                                         refunded=True)
                assert other.quota.refund(conn, job_id)

        await other.db.transaction(settle)
    finally:
        await other.stop()


def books(db: Path, job_id: str) -> dict[str, Any]:
    """The job's row, its ledger rows and the quota accounts, as stored."""
    return {"job": rows(db, "SELECT * FROM jobs WHERE id = ?", (job_id,)),
            "ledger": rows(db, "SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)),
            "accounts": rows(db, "SELECT * FROM quota_accounts")}


async def test_images_that_arrive_after_the_job_failed_elsewhere_change_nothing(
        settings_for, fake_segmind):
    settings = settings_for()
    service, recorder, job = await running_at_segmind(settings, fake_segmind)
    try:
        await settled_elsewhere(settings, job.id, JobState.FAILED)
        before = books(service.db.path, job.id)
        fake_segmind.gate.set()  # the images come back
    finally:
        await service.stop(drain_s=30)  # returns once the answer has been handled

    assert fake_segmind.images_served == 1  # the late answer really came
    after = books(service.db.path, job.id)
    assert after == before
    assert [row["kind"] for row in after["ledger"]] == ["reserve", "refund"]
    assert after["job"][0]["state"] == "failed"
    assert recorder.final(job.id) == []  # this process announces no result
    assert not (settings.storage.path / "images" / job.id).exists()


async def test_images_that_arrive_after_the_job_was_cancelled_elsewhere_change_nothing(
        settings_for, fake_segmind):
    settings = settings_for()
    service, recorder, job = await running_at_segmind(settings, fake_segmind)
    try:
        await settled_elsewhere(settings, job.id, JobState.CANCELLED)
        before = books(service.db.path, job.id)
        fake_segmind.gate.set()
    finally:
        await service.stop(drain_s=30)

    assert fake_segmind.images_served == 1
    after = books(service.db.path, job.id)
    assert after == before
    assert after["job"][0]["state"] == "cancelled"
    assert recorder.final(job.id) == []


async def test_a_failure_that_arrives_after_the_job_was_done_elsewhere_changes_nothing(
        settings_for, fake_segmind):
    settings = settings_for()
    service, recorder, job = await running_at_segmind(settings, fake_segmind)
    try:
        await settled_elsewhere(settings, job.id, JobState.DONE)
        before = books(service.db.path, job.id)
        fake_segmind.faults = [400]  # the held call ends in a refusal (not retried)
        fake_segmind.gate.set()
    finally:
        await service.stop(drain_s=30)

    assert fake_segmind.faults == []  # the refusal really came
    after = books(service.db.path, job.id)
    assert after == before
    assert [row["kind"] for row in after["ledger"]] == ["reserve", "commit"]
    assert after["job"][0]["state"] == "done"
    assert recorder.final(job.id) == []  # no failure notice, no refund
