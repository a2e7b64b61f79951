"""The jobs table on a real SQLite file: a job reaches a final state once, and only once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bot.core.catalog import Catalog
from bot.core.jobs import Actor, Job, JobState, ReplyTarget
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
    assert (job.state, job.images, job.backend_seconds) == (JobState.DONE, (image,), 1.5)


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
