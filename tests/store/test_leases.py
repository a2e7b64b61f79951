"""Which processes are alive is told by a lock the kernel holds, never by a pid or a clock."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from bot.core.catalog import Catalog
from bot.core.jobs import Actor, Job, JobState, ReplyTarget
from bot.core.request import build_request
from bot.store.db import Database
from bot.store.jobs_repo import JobRepository

OTHER = "0ther0process"
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
async def jobs(tmp_path):
    db = await Database(tmp_path / "imagine.db").open()
    repository = JobRepository(db, tmp_path)
    await repository.register()
    yield repository
    await db.close()


def a_job(job_id: str) -> Job:
    return Job(id=job_id, actor=Actor("test", "alice", "team1"),
               request=build_request("a red fox", None, Catalog()), cost=1,
               state=JobState.RUNNING, target=ReplyTarget("test", "c1"), created_at=time.time())


async def another_process_owns(jobs: JobRepository, job_id: str, *, pid: int,
                               heartbeat_at: float) -> None:
    """A row in `processes` for OTHER, and a running job that belongs to it."""
    def write(conn):
        conn.execute("INSERT INTO processes (id, pid, host, started_at, heartbeat_at) "
                     "VALUES (?, ?, ?, ?, ?)", (OTHER, pid, socket.gethostname(), 0, heartbeat_at))
        jobs.insert(conn, a_job(job_id))
        conn.execute("UPDATE jobs SET owner = ? WHERE id = ?", (OTHER, job_id))

    await jobs.db.transaction(write)


def hold_lock_in_a_process(jobs: JobRepository) -> subprocess.Popen[str]:
    """A real process holding OTHER's lock file, as a live bot holds its own."""
    path = jobs.lease.folder / f"{OTHER}.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


async def owner_of(jobs: JobRepository, job_id: str) -> str | None:
    return (await jobs.db.read("SELECT owner FROM jobs WHERE id = ?", (job_id,)))[0][0]


async def test_a_process_holding_its_lock_keeps_its_jobs_however_old_its_heartbeat(jobs):
    holder = hold_lock_in_a_process(jobs)
    try:
        await another_process_owns(jobs, "j1", pid=holder.pid, heartbeat_at=0.0)

        assert await jobs.claim_orphans() == []
        assert await owner_of(jobs, "j1") == OTHER
    finally:
        holder.kill()
        holder.wait()


async def test_the_jobs_of_a_killed_process_are_taken_over_once_the_kernel_drops_its_lock(jobs):
    holder = hold_lock_in_a_process(jobs)
    await another_process_owns(jobs, "j1", pid=holder.pid, heartbeat_at=time.time())
    assert await jobs.claim_orphans() == []
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()

    taken = await jobs.claim_orphans()

    assert [job.id for job in taken] == ["j1"]
    assert taken[0].state is JobState.QUEUED
    assert await owner_of(jobs, "j1") == jobs.owner
    assert not (jobs.lease.folder / f"{OTHER}.lock").exists()


async def test_a_stale_row_whose_pid_now_belongs_to_another_live_process_is_taken_over(jobs):
    stranger = await asyncio.create_subprocess_exec("sleep", "60")  # alive, under the old pid
    try:
        await another_process_owns(jobs, "j1", pid=stranger.pid, heartbeat_at=time.time())
        (jobs.lease.folder / f"{OTHER}.lock").touch()  # left by the dead process, unlocked

        taken = await jobs.claim_orphans()

        assert [job.id for job in taken] == ["j1"]
        assert stranger.returncode is None  # the premise: that pid is a live process
    finally:
        stranger.kill()
        await stranger.wait()


async def test_a_row_with_this_processs_own_pid_but_no_lock_is_taken_over(jobs):
    # As after a container restart: the new PID 1 finds the old PID 1's row.
    await another_process_owns(jobs, "j1", pid=os.getpid(), heartbeat_at=time.time())

    taken = await jobs.claim_orphans()

    assert [job.id for job in taken] == ["j1"]
    rows = await jobs.db.read("SELECT id FROM processes")
    assert [row["id"] for row in rows] == [jobs.owner]


async def test_a_clean_stop_removes_the_row_and_the_lock_file(jobs):
    lock = jobs.lease.folder / f"{jobs.owner}.lock"
    assert lock.exists() and jobs.lease.held

    await jobs.unregister()

    assert await jobs.db.read("SELECT id FROM processes") == []
    assert not lock.exists() and not jobs.lease.held


async def test_a_live_process_is_not_judged_gone_by_another_repository_on_the_same_file(
        jobs, tmp_path):
    # Two processes' worth of repositories in one test process: flock locks belong to the
    # open file, so they exclude each other here as between processes.
    db = await Database(tmp_path / "imagine.db").open()
    try:
        beside = JobRepository(db, tmp_path)
        await beside.register()
        await jobs.db.transaction(lambda conn: jobs.insert(conn, a_job("mine")))

        assert await beside.claim_orphans() == []
        assert await owner_of(jobs, "mine") == jobs.owner
    finally:
        await db.close()


async def test_handed_back_jobs_have_no_owner_and_go_to_the_next_claimer(jobs, tmp_path):
    await jobs.db.transaction(lambda conn: jobs.insert(conn, a_job("j1")))
    await jobs.db.write("UPDATE jobs SET state = 'running' WHERE id = 'j1'")

    handed = await jobs.hand_back()

    assert [(job.id, job.state) for job in handed] == [("j1", JobState.QUEUED)]
    assert await owner_of(jobs, "j1") is None
    db = await Database(tmp_path / "imagine.db").open()
    try:
        successor = JobRepository(db, tmp_path)
        await successor.register()
        assert [job.id for job in await successor.claim_orphans()] == ["j1"]
    finally:
        await db.close()


async def test_a_claim_deletes_the_rows_of_every_process_that_is_gone(jobs):
    for n in range(3):
        await jobs.db.write("INSERT INTO processes (id, pid, host, started_at, heartbeat_at) "
                            "VALUES (?, 1, 'h', 0, 0)", (f"gone{n}",))

    await jobs.claim_orphans()

    assert [row["id"] for row in await jobs.db.read("SELECT id FROM processes")] == [jobs.owner]
