"""Quota accounts and the ledger: reserve / commit / refund, allowances, grants, blocks."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.core.errors import UserBlocked
from bot.core.ports import Transaction
from bot.core.quota import Account, Period, QuotaRules, QuotaStatus, period_start
from bot.store.db import Database


@dataclass(frozen=True)
class Reservation:
    job_id: str
    credits: int
    unlimited: bool


class QuotaRepository:
    """Every credit change goes through here and is written to the ledger with its job id."""

    def __init__(self, db: Database, rules: QuotaRules) -> None:
        self.db = db
        self.rules = rules

    def reserve(
        self,
        conn: Transaction,
        *,
        scope: str,
        user_id: str,
        credits: int,
        job_id: str,
        is_admin: bool = False,
        now: datetime | None = None,
    ) -> Reservation:
        """Hold `credits` inside the caller's transaction, or raise InsufficientCredits."""
        now = now or datetime.now(UTC)
        account, needs_roll = self._account(conn, scope, user_id, now)
        if account.blocked:
            raise UserBlocked()
        self._roll(conn, scope, user_id, account, needs_roll)
        start = account.start.isoformat()
        if self.rules.unlimited(account, is_admin=is_admin):
            self._ledger(conn, scope, user_id, job_id, "reserve", credits, 0, 0, start,
                         "unlimited")
            return Reservation(job_id, credits, unlimited=True)
        charge = self.rules.charge(account, credits, now)
        # One conditional UPDATE: it only applies if nothing changed since the read and the
        # balance still covers the cost, so the balance can never go negative.
        cursor = conn.execute(
            "UPDATE quota_accounts SET used = used + ?, granted = granted - ? "
            "WHERE scope = ? AND user_id = ? AND used = ? AND granted = ? AND blocked = 0 "
            "AND granted >= ?",
            (charge.from_allowance, charge.from_grant, scope, user_id, account.used,
             account.granted, charge.from_grant),
        )
        if cursor.rowcount != 1:
            raise self.rules.refusal(account, credits, now)
        self._ledger(conn, scope, user_id, job_id, "reserve", credits,
                     charge.from_allowance, charge.from_grant, start, None)
        return Reservation(job_id, credits, unlimited=False)

    def commit(self, conn: Transaction, job_id: str) -> None:
        """Turn a job's reservation into a charge (inside the caller's transaction)."""
        conn.execute(
            "INSERT INTO ledger (at, scope, user_id, job_id, kind, credits, period_start, note) "
            "SELECT ?, scope, user_id, job_id, 'commit', credits, period_start, note "
            "FROM ledger WHERE job_id = ? AND kind = 'reserve' AND NOT EXISTS "
            "(SELECT 1 FROM ledger WHERE job_id = ? AND kind IN ('commit', 'refund'))",
            (time.time(), job_id, job_id),
        )

    def refund(self, conn: Transaction, job_id: str) -> bool:
        """Give a job's reserved credits back; True when there was something to refund."""
        held = self._reservation(conn, job_id)
        if held is None:
            return False
        scope, user_id = held["scope"], held["user_id"]
        if held["note"] != "unlimited":
            # Allowance credits come back only within the period they were taken from;
            # after a reset the allowance is whole again anyway.
            conn.execute(
                "UPDATE quota_accounts SET "
                "used = MAX(used - CASE WHEN period_start = ? THEN ? ELSE 0 END, 0), "
                "granted = granted + ? WHERE scope = ? AND user_id = ?",
                (held["period_start"], held["from_allowance"], held["from_grant"], scope, user_id),
            )
        self._ledger(conn, scope, user_id, job_id, "refund", held["credits"],
                     held["from_allowance"], held["from_grant"], held["period_start"],
                     held["note"])
        return True

    async def status(
        self, scope: str, user_id: str, *, is_admin: bool = False, now: datetime | None = None
    ) -> QuotaStatus:
        """The user's balance, allowance, period and reset time."""
        return await self.db.run(
            lambda conn: self.status_in(conn, scope, user_id, is_admin=is_admin, now=now))

    def status_in(
        self, conn: Transaction, scope: str, user_id: str, *, is_admin: bool = False,
        now: datetime | None = None,
    ) -> QuotaStatus:
        """status() inside the caller's transaction; reads only."""
        now = now or datetime.now(UTC)
        account, _ = self._account(conn, scope, user_id, now)
        return self.rules.status(account, scope, user_id, is_admin=is_admin, now=now)

    async def set_user(
        self, scope: str, user_id: str, allowance: int | None, period: Period | None
    ) -> None:
        """Override one user's allowance (UNLIMITED for none, None to clear) and period."""
        await self._change_account(
            scope, user_id, "allowance = ?, period = ?",
            (allowance, period.value if period else None), "adjust", 0,
            f"allowance={allowance} period={period}")

    async def set_workspace(self, scope: str, allowance: int | None, period: Period | None) -> None:
        """Override the allowance and period for everyone in a workspace."""
        await self.db.write(
            "INSERT INTO workspace_quota (scope, allowance, period) VALUES (?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET allowance = excluded.allowance, "
            "period = excluded.period",
            (scope, allowance, period.value if period else None),
        )

    async def grant(self, scope: str, user_id: str, credits: int) -> None:
        """Add one-off credits that do not reset."""
        await self._change_account(scope, user_id, "granted = granted + ?", (credits,), "grant",
                                   credits, None)

    async def reset(self, scope: str, user_id: str) -> None:
        """Forget what the user used this period."""
        await self._change_account(scope, user_id, "used = 0", (), "adjust", 0, "reset")

    async def set_blocked(self, scope: str, user_id: str, blocked: bool) -> None:
        """Block or unblock a user in a workspace."""
        await self._change_account(scope, user_id, "blocked = ?", (int(blocked),), "adjust", 0,
                                   "block" if blocked else "unblock")

    async def top(self, scope: str, limit: int = 10, since: float = 0.0) -> list[tuple[str, int]]:
        """The users who spent the most credits (committed) since a unix time."""
        rows = await self.db.read(
            "SELECT user_id, SUM(credits) AS spent FROM ledger WHERE scope = ? AND kind = 'commit' "
            "AND at >= ? GROUP BY user_id ORDER BY spent DESC, user_id LIMIT ?",
            (scope, since, limit),
        )
        return [(row["user_id"], int(row["spent"])) for row in rows]

    async def ledger_totals(self) -> dict[str, int]:
        """Credits per ledger kind, for checking that reserves = commits + refunds + held."""
        rows = await self.db.read("SELECT kind, SUM(credits) AS total FROM ledger GROUP BY kind")
        return {row["kind"]: int(row["total"]) for row in rows}

    async def _change_account(self, scope: str, user_id: str, assignments: str,
                              values: tuple, kind: str, credits: int, note: str | None) -> None:
        """An admin's change to one account (created if new), written to the ledger.
        `assignments` is SQL written in this module, never user input."""

        def change(conn: Transaction) -> None:
            self._roll(conn, scope, user_id, *self._account(conn, scope, user_id, datetime.now(UTC)))
            conn.execute(f"UPDATE quota_accounts SET {assignments} WHERE scope = ? AND user_id = ?",
                         (*values, scope, user_id))
            self._ledger(conn, scope, user_id, None, kind, credits, 0,
                         credits if kind == "grant" else 0, None, note)

        await self.db.transaction(change)

    def _account(self, conn: Transaction, scope: str, user_id: str,
                 now: datetime) -> tuple[Account, bool]:
        """The user's effective allowance and period (their override, else the workspace's,
        else the config's) and their usage in the current period, in one query; and whether
        the row must be written (no row yet, or its period has passed) before charging."""
        row = conn.execute(
            "SELECT a.used, a.granted, a.blocked, a.period_start, "
            "COALESCE(a.allowance, w.allowance) AS allowance, "
            "COALESCE(a.period, w.period) AS period FROM (SELECT 1) "
            "LEFT JOIN quota_accounts a ON a.scope = ? AND a.user_id = ? "
            "LEFT JOIN workspace_quota w ON w.scope = ?",
            (scope, user_id, scope),
        ).fetchone()
        period = Period(row["period"]) if row["period"] else self.rules.period
        start = period_start(period, now)
        current = row["period_start"] == start.isoformat()
        account = Account(
            allowance=self.rules.allowance if row["allowance"] is None else int(row["allowance"]),
            period=period, start=start, used=int(row["used"]) if current else 0,
            granted=int(row["granted"] or 0), blocked=bool(row["blocked"]),
        )
        return account, not current

    def _roll(self, conn: Transaction, scope: str, user_id: str, account: Account,
              needs_roll: bool) -> None:
        """Create the account, or start its new period (used = 0), when that is due."""
        if needs_roll:
            conn.execute(
                "INSERT INTO quota_accounts (scope, user_id, period_start) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, user_id) DO UPDATE SET used = 0, "
                "period_start = excluded.period_start",
                (scope, user_id, account.start.isoformat()),
            )

    def _reservation(self, conn: Transaction, job_id: str) -> sqlite3.Row | None:
        """The job's reservation if it is still held (neither committed nor refunded)."""
        rows = conn.execute(
            "SELECT * FROM ledger WHERE job_id = ? AND kind IN ('reserve', 'commit', 'refund') "
            "ORDER BY id", (job_id,)).fetchall()
        if len(rows) != 1 or rows[0]["kind"] != "reserve":
            return None
        return rows[0]

    def _ledger(
        self, conn: Transaction, scope: str, user_id: str, job_id: str | None,
        kind: str, credits: int, from_allowance: int, from_grant: int,
        period_start_iso: str | None, note: str | None,
    ) -> None:
        conn.execute(
            "INSERT INTO ledger (at, scope, user_id, job_id, kind, credits, from_allowance, "
            "from_grant, period_start, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), scope, user_id, job_id, kind, credits, from_allowance, from_grant,
             period_start_iso, note),
        )
