"""The jobs table on a real SQLite file: a job reaches a final state once, and only once."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.core.catalog import Catalog
from bot.core.jobs import Actor, Job, JobAction, JobState, ReplyTarget
from bot.core.quota import QuotaRules
from bot.core.request import build_request
from bot.store.db import Database
from bot.store.jobs_repo import JobRepository
from bot.store.quota_repo import QuotaRepository

ALICE = Actor("test", "alice", "team1")


@pytest.fixture
async def stores(tmp_path: Path):
    db = await Database(tmp_path / "imagine.db").open()
    jobs = JobRepository(db, tmp_path)
    await jobs.register()
    yield jobs, QuotaRepository(db, QuotaRules(allowance=10))
    await db.close()


async def queued_and_charged(jobs: JobRepository, quota: QuotaRepository, job_id: str) -> None:
    """A queued job whose credits are reserved, written as the service writes it."""
    job = Job(id=job_id, actor=ALICE, request=build_request("a red fox", None, Catalog()),
              cost=1, state=JobState.QUEUED, target=ReplyTarget("test", "c1"),
              created_at=time.time(), backend="segmind")

    def store(conn: Any) -> None:
        quota.reserve(conn, scope=ALICE.scope, user_id=ALICE.user_id, credits=1, job_id=job_id)
        jobs.insert(conn, job)

    await jobs.db.transaction(store)


async def finish_done(jobs: JobRepository, quota: QuotaRepository, job_id: str,
                      images: tuple[Path, ...]) -> bool:
    """Mark the job done and charge it, as the dispatcher does; whether it was marked."""
    def done(conn: Any) -> bool:
        if not jobs.finish(conn, job_id, JobState.DONE, images=images, backend_seconds=1.5):
            return False
        quota.commit(conn, job_id)
        return True

    return await jobs.db.transaction(done)


async def finish_failed(jobs: JobRepository, quota: QuotaRepository, job_id: str,
                        error: str) -> bool:
    """Mark the job failed and refund it; whether it was marked."""
    def failed(conn: Any) -> bool:
        if not jobs.finish(conn, job_id, JobState.FAILED, error=error, refunded=True):
            return False
        quota.refund(conn, job_id)
        return True

    return await jobs.db.transaction(failed)


async def finish_cancelled(jobs: JobRepository, quota: QuotaRepository, job_id: str) -> bool:
    """Mark the job cancelled and refund it; whether it was marked."""
    def cancelled(conn: Any) -> bool:
        if not jobs.finish(conn, job_id, JobState.CANCELLED, error="cancelled", refunded=True):
            return False
        quota.refund(conn, job_id)
        return True

    return await jobs.db.transaction(cancelled)


async def snapshot(jobs: JobRepository, job_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The job's row and its ledger rows, exactly as stored."""
    [row] = await jobs.db.read("SELECT * FROM jobs WHERE id = ?", (job_id,))
    ledger = await jobs.db.read("SELECT * FROM ledger WHERE job_id = ? ORDER BY id", (job_id,))
    return dict(row), [dict(entry) for entry in ledger]


async def test_finishing_an_unfinished_job_returns_true_and_stores_the_outcome(stores, tmp_path):
    jobs, quota = stores
    await queued_and_charged(jobs, quota, "j1")
    image = tmp_path / "images" / "j1" / "1-5.jpg"

    assert await finish_done(jobs, quota, "j1", (image,))

    job = await jobs.get("j1")
    assert job is not None
    assert (job.state, job.images, job.backend_seconds, job.error, job.refunded) == (
        JobState.DONE, (image,), 1.5, None, False)


@pytest.mark.parametrize("first", ["done", "failed", "cancelled"])
@pytest.mark.parametrize("second", ["done", "failed", "cancelled"])
async def test_a_second_finish_of_a_final_job_is_refused_and_changes_nothing(
        stores, tmp_path, first, second):
    jobs, quota = stores
    await queued_and_charged(jobs, quota, "j1")
    finishes = {
        "done": lambda: finish_done(jobs, quota, "j1", (tmp_path / "images" / "j1" / "1-5.jpg",)),
        "failed": lambda: finish_failed(jobs, quota, "j1", "The image service failed."),
        "cancelled": lambda: finish_cancelled(jobs, quota, "j1"),
    }
    assert await finishes[first]()
    await jobs.mark_delivered("j1")
    before = await snapshot(jobs, "j1")

    assert not await finishes[second]()

    assert await snapshot(jobs, "j1") == before  # state, images, error, refund, ledger, delivered



async def test_a_reply_target_keeps_the_adapters_state_as_written(stores):
    jobs, quota = stores
    await queued_and_charged(jobs, quota, "j1")
    target = ReplyTarget("test", "c1", message_id="m1", adapter_state='{"any": ["text", 1]}')

    await jobs.update_target("j1", target)

    assert (await jobs.get("j1")).target == target


async def test_a_target_stored_with_top_level_adapter_fields_reads_them_as_adapter_state(stores):
    jobs, quota = stores
    await queued_and_charged(jobs, quota, "j1")
    old_row = {"platform": "discord", "channel_id": "c1", "workspace_id": "g1", "thread_id": None,
               "message_id": "m1", "reply_to_message_id": None, "interaction_token": "tok",
               "interaction_expires_at": 1234.5, "application_id": "99",
               "extra": {"filesize_limit": "8000000"}}
    await jobs.db.write("UPDATE jobs SET target = ? WHERE id = ?", (json.dumps(old_row), "j1"))

    target = (await jobs.get("j1")).target

    assert (target.platform, target.channel_id, target.message_id) == ("discord", "c1", "m1")
    assert json.loads(target.adapter_state) == {
        "interaction_token": "tok", "interaction_expires_at": 1234.5, "application_id": "99",
        "filesize_limit": "8000000"}


async def test_a_job_read_back_has_every_field_it_was_stored_with(stores):
    jobs, _ = stores
    job = Job(id="j2", actor=ALICE, request=build_request("a red fox --seed 7", None, Catalog()), cost=2,
              state=JobState.QUEUED, target=ReplyTarget("test", "c1", message_id="m1"),
              created_at=1000.0, backend="segmind", parent_id="j1", action=JobAction.VARY)
    await jobs.db.transaction(lambda conn: jobs.insert(conn, job))
    assert await jobs.mark_running("j2", "segmind", 1001.0) is not None
    before = time.time()
    await jobs.db.transaction(lambda conn: jobs.finish(
        conn, "j2", JobState.FAILED, error="The image service failed.", refunded=True,
        backend_seconds=2.5))
    await jobs.mark_delivered("j2")

    stored = await jobs.get("j2")

    assert stored is not None and stored.finished_at is not None
    assert before <= stored.finished_at <= time.time()
    assert stored == dataclasses.replace(
        job, state=JobState.FAILED, attempts=1, started_at=1001.0,
        finished_at=stored.finished_at, error="The image service failed.", refunded=True,
        delivered=True, backend_seconds=2.5)


async def test_an_unknown_job_id_reads_as_none(stores):
    jobs, _ = stores
    assert await jobs.get("no-such-job") is None


async def test_the_last_remaining_credits_a_backend_reported_are_read_back_with_when(stores):
    jobs, _ = stores
    before = time.time()
    await jobs.db.transaction(lambda conn: jobs.record_credits(conn, "segmind", 120.5))
    await jobs.db.transaction(lambda conn: jobs.record_credits(conn, "segmind", 99.25))

    seen = await jobs.last_credits("segmind")

    assert seen is not None and seen[0] == 99.25 and before <= seen[1] <= time.time()
    assert await jobs.last_credits("worker") is None


async def test_a_users_waiting_jobs_leave_out_the_finished_ones(stores, tmp_path):
    jobs, quota = stores
    for job_id in ("j1", "j2"):
        await queued_and_charged(jobs, quota, job_id)
    assert await finish_done(jobs, quota, "j1", (tmp_path / "1-5.jpg",))

    waiting = await jobs.of_user(ALICE.scope, ALICE.user_id, unfinished=True)
    every = await jobs.of_user(ALICE.scope, ALICE.user_id)

    assert [job.id for job in waiting] == ["j2"]
    assert sorted(job.id for job in every) == ["j1", "j2"]


async def test_the_jobs_cancelled_elsewhere_are_found_among_those_waiting_here(stores):
    jobs, quota = stores
    for job_id in ("j1", "j2", "j3"):
        await queued_and_charged(jobs, quota, job_id)
    for job_id in ("j1", "j3"):
        assert await jobs.db.transaction(lambda conn, j=job_id: jobs.cancel_queued(conn, j))

    found = await jobs.finished_among(["j1", "j2", "j3"])

    assert sorted((job.id, job.state) for job in found) == [
        ("j1", JobState.CANCELLED), ("j3", JobState.CANCELLED)]
