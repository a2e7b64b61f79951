"""The read behind /stats: every job of a window of time, with its money and its ledger."""

from __future__ import annotations

import sqlite3

from bot.core.stats import JobFacts
from bot.store.db import Database

_JOBS = (
    "SELECT j.created_at, j.started_at, j.finished_at, j.state, j.backend, j.platform, j.scope, "
    "j.user_id, j.cost, j.money, j.money_measured, j.backend_seconds, j.gpu_seconds, "
    "json_extract(j.request, '$.model') AS model, json_extract(j.request, '$.samples') AS samples, "
    "EXISTS (SELECT 1 FROM ledger l WHERE l.job_id = j.id AND l.kind = 'commit') AS committed, "
    "EXISTS (SELECT 1 FROM ledger l WHERE l.job_id = j.id AND l.kind = 'refund') AS refunded "
    "FROM jobs j WHERE j.created_at >= ? AND j.created_at < ? ORDER BY j.created_at"
)


class StatsRepository:
    """Implements StatsStore: one query per report, in the database's own thread."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def jobs_between(self, since: float, until: float) -> list[JobFacts]:
        """Every job created in [since, until), oldest first."""
        rows = await self.db.read(_JOBS, (since, until))
        return [_facts(row) for row in rows]


def _facts(row: sqlite3.Row) -> JobFacts:
    return JobFacts(
        created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], state=row["state"], backend=row["backend"],
        model=str(row["model"]), platform=row["platform"], scope=row["scope"],
        user_id=row["user_id"], samples=int(row["samples"] or 1), cost=int(row["cost"]),
        committed=bool(row["committed"]), refunded=bool(row["refunded"]),
        money=row["money"], money_measured=bool(row["money_measured"]),
        backend_seconds=row["backend_seconds"], gpu_seconds=row["gpu_seconds"],
    )
