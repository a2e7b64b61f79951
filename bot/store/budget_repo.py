"""Money per job, the period's spend, and the record of admin alerts (SQL only).

The rules are in bot/core/budget.py and bot/core/alerts.py. Every spend is read from the
jobs table inside the caller's transaction, so processes sharing the database agree on it.
"""

from __future__ import annotations

import time

from bot.core.budget import Money
from bot.core.jobs import JobState
from bot.core.ports import Transaction
from bot.store.db import Database

_WAITING = (JobState.QUEUED.value, JobState.RUNNING.value)

# Queued and running jobs count at their estimate (they are admitted already); finished ones
# at what they cost (failed and cancelled ones: nothing, unless something was recorded).
_SPENT = (
    "SELECT COALESCE(SUM(CASE WHEN state IN (?, ?) THEN COALESCE(money_estimate, 0) "
    "ELSE COALESCE(money, 0) END), 0) FROM jobs WHERE backend IN ({backends}) AND created_at >= ?"
)


class BudgetRepository:
    """Implements BudgetStore and AlertStore over the jobs, backend_status, alert_incidents and
    alerts_sent tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- money (BudgetStore) --------------------------------------------------------------

    def spent(self, tx: Transaction, backends: frozenset[str], since: float) -> float:
        """Segmind credits of jobs created since `since` on `backends` (inside tx)."""
        names = sorted(backends)
        sql = _SPENT.format(backends=", ".join("?" * len(names)))
        return float(tx.execute(sql, (*_WAITING, *names, since)).fetchone()[0])

    async def spent_now(self, backends: frozenset[str], since: float) -> float:
        """spent(), as a read of its own."""
        return await self.db.run(lambda conn: self.spent(conn, backends, since))

    def set_estimate(self, tx: Transaction, job_id: str, credits: float) -> None:
        """Note what a just-inserted job is expected to cost."""
        tx.execute("UPDATE jobs SET money_estimate = ? WHERE id = ?", (credits, job_id))

    def record(self, tx: Transaction, job_id: str, money: Money) -> None:
        """Write what a finished job cost."""
        tx.execute(
            "UPDATE jobs SET money = ?, money_measured = ?, gpu_seconds = ? WHERE id = ?",
            (money.credits, int(money.measured), money.gpu_seconds, job_id),
        )

    def busy_elsewhere(self, tx: Transaction, job_id: str, backend: str, since: float) -> bool:
        """Whether another process's job on `backend` was running at some time after `since`
        (then a drop in the account's credits may be partly its)."""
        row = tx.execute(
            "SELECT 1 FROM jobs WHERE backend = ? AND id <> ? AND started_at IS NOT NULL "
            "AND owner IS NOT (SELECT owner FROM jobs WHERE id = ?) "
            "AND (state = ? OR finished_at >= ?) LIMIT 1",
            (backend, job_id, job_id, JobState.RUNNING.value, since),
        ).fetchone()
        return row is not None

    # --- alerts (AlertStore) --------------------------------------------------------------

    def remaining_credits(self, tx: Transaction, backend: str) -> float | None:
        """The backend's last x-remaining-credits, as any process saw it."""
        row = tx.execute("SELECT remaining_credits FROM backend_status WHERE name = ?",
                         (backend,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def outcomes(self, tx: Transaction, backends: tuple[str, ...],
                 window: int) -> dict[str, tuple[int, int]]:
        """Per backend: (failed, finished) among its last `window` done or failed jobs (by
        creation, which the (backend, created_at) index serves without a scan)."""
        out = {}
        for name in backends:
            row = tx.execute(
                "SELECT COALESCE(SUM(state = ?), 0), COUNT(*) FROM (SELECT state FROM jobs "
                "WHERE backend = ? AND state IN (?, ?) ORDER BY created_at DESC LIMIT ?)",
                (JobState.FAILED.value, name, JobState.DONE.value, JobState.FAILED.value,
                 window),
            ).fetchone()
            if row[1]:
                out[name] = (int(row[0]), int(row[1]))
        return out

    def incident(self, tx: Transaction, name: str, active: bool) -> int | None:
        """Open an incident when `active` and none is open, close it when not; returns the
        open incident's number, or None."""
        if active:
            tx.execute(
                "INSERT INTO alert_incidents (name, number, active, since) VALUES (?, 1, 1, ?) "
                "ON CONFLICT (name) DO UPDATE SET number = number + 1, active = 1, "
                "since = excluded.since WHERE active = 0",
                (name, time.time()),
            )
            row = tx.execute("SELECT number FROM alert_incidents WHERE name = ?",
                             (name,)).fetchone()
            return int(row[0])
        tx.execute("UPDATE alert_incidents SET active = 0 WHERE name = ? AND active = 1", (name,))
        return None

    def claim(self, tx: Transaction, key: str, sink: str, text: str) -> bool:
        """Record that `sink` gets alert `key`; False when it already had it."""
        cursor = tx.execute(
            "INSERT INTO alerts_sent (key, sink, sent_at, text) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key, sink) DO NOTHING",
            (key, sink, time.time(), text),
        )
        return int(cursor.rowcount) == 1

    async def unclaim(self, key: str, sink: str) -> None:
        """Forget a claim whose post failed, so the next check tries again."""
        await self.db.write("DELETE FROM alerts_sent WHERE key = ? AND sink = ?", (key, sink))
