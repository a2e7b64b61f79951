"""The jobs table: every job is written before the user is answered."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.core.defaults import Provenance
from bot.core.jobs import CANCELLED, Actor, Job, JobAction, JobState, ReplyTarget
from bot.core.ports import Transaction
from bot.core.request import ImagineRequest
from bot.store.db import Database
from bot.store.leases import ProcessLease

_UNFINISHED = (JobState.QUEUED.value, JobState.RUNNING.value)
_FINISHED = (JobState.DONE.value, JobState.FAILED.value, JobState.CANCELLED.value)
# Rows written before ReplyTarget.adapter_state kept the adapters' fields at its top level.
_OLD_ADAPTER_FIELDS = ("interaction_token", "interaction_expires_at", "application_id")


class JobRepository:
    """Reads and writes job rows; state changes are conditional so each happens once.

    Several bot processes may share one database (a Discord one and a Slack one): each job
    belongs to the process that runs it (`owner`), and a process only takes over the jobs of
    processes that are gone (see bot/store/leases.py for how that is known).
    """

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir
        self.owner = uuid.uuid4().hex[:12]  # this process
        self.lease = ProcessLease(db.path, self.owner)

    def insert(self, conn: Transaction, job: Job) -> None:
        """Write a new job row inside the caller's transaction."""
        conn.execute(
            "INSERT INTO jobs (id, state, platform, scope, user_id, actor, request, target, cost, "
            "backend, parent_id, action, created_at, owner, provenance) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job.id, job.state.value, job.actor.platform, job.actor.scope, job.actor.user_id,
             json.dumps(dataclasses.asdict(job.actor)), job.request.model_dump_json(),
             json.dumps(dataclasses.asdict(job.target)), job.cost, job.backend, job.parent_id,
             job.action, job.created_at, self.owner, job.provenance.to_json()),
        )

    async def get(self, job_id: str) -> Job | None:
        """The job with this id, if any."""
        rows = await self.db.read("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._job(rows[0]) if rows else None

    async def unfinished(self) -> list[Job]:
        """This process's queued and running jobs, oldest first."""
        rows = await self.db.read(
            "SELECT * FROM jobs WHERE owner = ? AND state IN (?, ?) ORDER BY created_at",
            (self.owner, *_UNFINISHED),
        )
        return [self._job(row) for row in rows]

    async def register(self) -> None:
        """Take this process's lease (a row and a held lock) so others leave its jobs alone."""
        await self.db.transaction(self.lease.acquire)

    async def heartbeat(self) -> bool:
        """Stamp this process's row; False if someone had removed it (it is written again)."""
        return await self.db.transaction(self.lease.renew)

    async def unregister(self) -> None:
        """Give up the lease on a clean stop: the next process takes the jobs over."""
        await self.db.transaction(self.lease.release)

    def drop_lease(self) -> None:
        """Let go of the lock alone, as the kernel does when this process is killed."""
        self.lease.drop()

    async def claim_orphans(self) -> list[Job]:
        """Take over the unfinished jobs of processes that are gone (running ones go back to
        queued) and jobs handed back on a stop; jobs of live processes are left alone.
        Returns the jobs taken."""
        def claim(conn: Transaction) -> list[Job]:
            self.lease.bury_the_dead(conn)
            rows = conn.execute(
                "UPDATE jobs SET owner = ?, state = ? WHERE state IN (?, ?) AND (owner IS NULL "
                "OR owner NOT IN (SELECT id FROM processes)) RETURNING *",
                (self.owner, JobState.QUEUED.value, *_UNFINISHED),
            ).fetchall()
            return [self._job(row) for row in rows]

        return await self.db.transaction(claim)

    async def hand_back(self) -> list[Job]:
        """Return this process's unfinished jobs to the queue with no owner (a clean stop), so
        whichever process starts or beats next takes them at once. Returns the jobs."""
        rows = await self.db.write_returning(
            "UPDATE jobs SET owner = NULL, state = ? WHERE owner = ? AND state IN (?, ?) "
            "RETURNING *",
            (JobState.QUEUED.value, self.owner, *_UNFINISHED),
        )
        return [self._job(row) for row in rows]

    async def undelivered(self, platform: str) -> list[Job]:
        """Finished jobs whose result never reached the chat (a crash between the two)."""
        rows = await self.db.read(
            "SELECT * FROM jobs WHERE platform = ? AND delivered = 0 AND state IN (?, ?, ?) "
            "ORDER BY created_at",
            (platform, *_FINISHED),
        )
        return [self._job(row) for row in rows]

    async def finished_among(self, job_ids: Iterable[str]) -> list[Job]:
        """Those of these jobs that are final (finished by another process, e.g. cancelled
        from the command line)."""
        ids = list(job_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self.db.read(
            f"SELECT * FROM jobs WHERE id IN ({marks}) AND state IN (?, ?, ?)", (*ids, *_FINISHED))
        return [self._job(row) for row in rows]

    async def of_user(self, scope: str, user_id: str, *, unfinished: bool = False,
                      limit: int = 10) -> list[Job]:
        """A user's jobs, newest first: all of them, or only those queued or running."""
        states = _UNFINISHED if unfinished else (*_UNFINISHED, *_FINISHED)
        marks = ",".join("?" * len(states))
        rows = await self.db.read(
            f"SELECT * FROM jobs WHERE scope = ? AND user_id = ? AND state IN ({marks}) "
            "ORDER BY created_at DESC LIMIT ?", (scope, user_id, *states, limit))
        return [self._job(row) for row in rows]

    async def unfinished_by_backend(self) -> dict[str, dict[JobState, int]]:
        """Queued and running jobs per backend, over every process sharing the database."""
        rows = await self.db.read(
            "SELECT backend, state, COUNT(*) FROM jobs WHERE state IN (?, ?) "
            "GROUP BY backend, state", _UNFINISHED)
        totals: dict[str, dict[JobState, int]] = {}
        for backend, state, count in rows:
            totals.setdefault(backend, {})[JobState(state)] = count
        return totals

    def count_queued(self, conn: Transaction, scope: str, user_id: str) -> int:
        """How many jobs the user has waiting or running (inside the caller's transaction)."""
        row = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE scope = ? AND user_id = ? AND state IN (?, ?)",
            (scope, user_id, *_UNFINISHED),
        ).fetchone()
        return int(row[0])

    async def mark_running(self, job_id: str, backend: str, started_at: float) -> Job | None:
        """queued -> running (since `started_at`, when a backend slot took it) for a job this
        process owns; None if it was cancelled, finished, or taken over by another process."""
        rows = await self.db.write_returning(
            "UPDATE jobs SET state = ?, backend = ?, attempts = attempts + 1, started_at = ? "
            "WHERE id = ? AND state = ? AND owner = ? RETURNING *",
            (JobState.RUNNING.value, backend, started_at, job_id, JobState.QUEUED.value,
             self.owner),
        )
        return self._job(rows[0]) if rows else None

    def cancel_queued(self, conn: Transaction, job_id: str) -> bool:
        """queued -> cancelled, whichever process owns it; False once it runs or ended."""
        cursor = conn.execute(
            "UPDATE jobs SET state = ?, error = ?, refunded = 1, finished_at = ? "
            "WHERE id = ? AND state = ?",
            (JobState.CANCELLED.value, CANCELLED, time.time(), job_id, JobState.QUEUED.value))
        return cursor.rowcount == 1

    def finish(
        self,
        conn: Transaction,
        job_id: str,
        state: JobState,
        *,
        images: tuple[Path, ...] = (),
        error: str | None = None,
        refunded: bool = False,
        backend_seconds: float | None = None,
    ) -> bool:
        """Move an unfinished job to a final state once; False if it was already final."""
        cursor = conn.execute(
            "UPDATE jobs SET state = ?, images = ?, error = ?, refunded = ?, finished_at = ?, "
            "backend_seconds = COALESCE(?, backend_seconds) WHERE id = ? AND state IN (?, ?)",
            (state.value, json.dumps([str(p) for p in images]), error, int(refunded), time.time(),
             backend_seconds, job_id, *_UNFINISHED),
        )
        return cursor.rowcount == 1

    async def mark_delivered(self, job_id: str) -> None:
        """The adapter has posted the result (or the failure) to the chat."""
        await self.db.write("UPDATE jobs SET delivered = 1 WHERE id = ?", (job_id,))

    async def update_target(self, job_id: str, target: ReplyTarget) -> None:
        """Remember where the job's progress message is, for edits after a restart."""
        await self.db.write(
            "UPDATE jobs SET target = ? WHERE id = ?",
            (json.dumps(dataclasses.asdict(target)), job_id),
        )

    async def mark_deleted(self, job_id: str) -> None:
        """Hide a job's result (its files are removed by the caller)."""
        await self.db.write("UPDATE jobs SET deleted = 1, images = '[]' WHERE id = ?", (job_id,))

    async def clear_images(self, job_id: str) -> None:
        """Forget a job's image files (retention); the job and its buttons stay."""
        await self.db.write("UPDATE jobs SET images = '[]' WHERE id = ?", (job_id,))

    def record_credits(self, conn: Transaction, backend: str, remaining: float) -> None:
        """Remember a backend's last x-remaining-credits (doctor runs in another process)."""
        conn.execute(
            "INSERT INTO backend_status (name, remaining_credits, seen_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET remaining_credits = excluded.remaining_credits, "
            "seen_at = excluded.seen_at",
            (backend, remaining, time.time()),
        )

    async def last_credits(self, backend: str) -> tuple[float, float] | None:
        """(remaining credits, unix time seen) for a backend, if ever seen."""
        rows = await self.db.read(
            "SELECT remaining_credits, seen_at FROM backend_status WHERE name = ?", (backend,)
        )
        return (rows[0][0], rows[0][1]) if rows and rows[0][0] is not None else None

    async def expired_images(self, before: float) -> list[Job]:
        """Finished jobs older than `before` that still hold image files."""
        rows = await self.db.read(
            "SELECT * FROM jobs WHERE finished_at < ? AND images <> '[]'", (before,)
        )
        return [self._job(row) for row in rows]

    def _job(self, row: sqlite3.Row) -> Job:
        actor: dict[str, Any] = json.loads(row["actor"])
        target: dict[str, Any] = json.loads(row["target"])
        return Job(
            id=row["id"],
            actor=Actor(**actor),
            request=ImagineRequest.model_validate_json(row["request"]),
            cost=row["cost"],
            state=JobState(row["state"]),
            target=_reply_target(target),
            created_at=row["created_at"],
            backend=row["backend"],
            parent_id=row["parent_id"],
            action=JobAction(row["action"]),
            attempts=row["attempts"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            images=tuple(Path(p) for p in json.loads(row["images"])),
            error=row["error"],
            refunded=bool(row["refunded"]),
            delivered=bool(row["delivered"]),
            deleted=bool(row["deleted"]),
            backend_seconds=row["backend_seconds"],
            provenance=Provenance.from_json(row["provenance"]),  # NULL in rows before /settings
        )


def _reply_target(stored: dict[str, Any]) -> ReplyTarget:
    """The ReplyTarget of a stored row; older rows' adapter fields become its adapter_state."""
    old_state = {name: stored.pop(name) for name in _OLD_ADAPTER_FIELDS if name in stored}
    old_state.update(stored.pop("extra", None) or {})
    if old_state and not stored.get("adapter_state"):
        stored["adapter_state"] = json.dumps(
            {name: value for name, value in old_state.items() if value is not None})
    return ReplyTarget(**stored)
