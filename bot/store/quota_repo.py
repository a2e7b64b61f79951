"""Quota accounts and the ledger: reserve / commit / refund, allowances, grants, blocks."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiosqlite

from bot.core.errors import InsufficientCredits, UserBlocked
from bot.core.quota import Period, QuotaStatus, period_end, period_start
from bot.store.db import Database

UNLIMITED = -1  # an allowance value meaning "no limit"


@dataclass(frozen=True)
class QuotaDefaults:
    """The config's default allowance and period, and whether admins are unlimited."""

    allowance: int = 50
    period: Period = Period.DAY
    admins_unlimited: bool = True


@dataclass(frozen=True)
class _Account:
    """A user's quota as it stands in the current period (read in one query)."""

    allowance: int
    period: Period
    start: str  # ISO start of the current period
    used: int  # in the current period
    granted: int
    blocked: bool
    needs_roll: bool  # no row yet, or its period has passed: write before charging


@dataclass(frozen=True)
class Reservation:
    job_id: str
    credits: int
    unlimited: bool


class QuotaRepository:
    """Every credit change goes through here and is written to the ledger with its job id."""

    def __init__(self, db: Database, defaults: QuotaDefaults) -> None:
        self.db = db
        self.defaults = defaults

    async def reserve(
        self,
        conn: aiosqlite.Connection,
        *,
        scope: str,
        user_id: str,
        credits: int,
        job_id: str,
        is_admin: bool = False,
        now: datetime | None = None,
    ) -> Reservation:
        """Hold `credits` inside the caller's transaction, or raise InsufficientCredits."""
        account = await self._account(conn, scope, user_id, now or datetime.now(UTC))
        if account.blocked:
            raise UserBlocked()
        await self._roll(conn, scope, user_id, account)
        start = account.start
        if account.allowance == UNLIMITED or (is_admin and self.defaults.admins_unlimited):
            await self._ledger(conn, scope, user_id, job_id, "reserve", credits, 0, 0, start,
                               "unlimited")
            return Reservation(job_id, credits, unlimited=True)
        from_allowance = min(credits, max(account.allowance - account.used, 0))
        from_grant = credits - from_allowance
        # One conditional UPDATE: it only applies if nothing changed since the read and the
        # balance still covers the cost, so the balance can never go negative.
        cursor = await conn.execute(
            "UPDATE quota_accounts SET used = used + ?, granted = granted - ? "
            "WHERE scope = ? AND user_id = ? AND used = ? AND granted = ? AND blocked = 0 "
            "AND granted >= ?",
            (from_allowance, from_grant, scope, user_id, account.used, account.granted,
             from_grant),
        )
        if cursor.rowcount != 1:
            balance = max(account.allowance - account.used, 0) + account.granted
            resets = period_end(account.period, now or datetime.now(UTC))
            raise InsufficientCredits(
                f"That costs {credits} credits and you have {balance} left; your allowance "
                f"resets {resets:%Y-%m-%d %H:%M} UTC. Nothing was charged."
            )
        await self._ledger(conn, scope, user_id, job_id, "reserve", credits,
                           from_allowance, from_grant, start, None)
        return Reservation(job_id, credits, unlimited=False)

    async def commit(self, conn: aiosqlite.Connection, job_id: str) -> None:
        """Turn a job's reservation into a charge (inside the caller's transaction)."""
        await conn.execute(
            "INSERT INTO ledger (at, scope, user_id, job_id, kind, credits, period_start, note) "
            "SELECT ?, scope, user_id, job_id, 'commit', credits, period_start, note "
            "FROM ledger WHERE job_id = ? AND kind = 'reserve' AND NOT EXISTS "
            "(SELECT 1 FROM ledger WHERE job_id = ? AND kind IN ('commit', 'refund'))",
            (time.time(), job_id, job_id),
        )

    async def refund(self, conn: aiosqlite.Connection, job_id: str) -> bool:
        """Give a job's reserved credits back; True when there was something to refund."""
        held = await self._reservation(conn, job_id)
        if held is None:
            return False
        scope, user_id = held["scope"], held["user_id"]
        if held["note"] != "unlimited":
            # Allowance credits come back only within the period they were taken from;
            # after a reset the allowance is whole again anyway.
            await conn.execute(
                "UPDATE quota_accounts SET "
                "used = MAX(used - CASE WHEN period_start = ? THEN ? ELSE 0 END, 0), "
                "granted = granted + ? WHERE scope = ? AND user_id = ?",
                (held["period_start"], held["from_allowance"], held["from_grant"], scope, user_id),
            )
        await self._ledger(conn, scope, user_id, job_id, "refund", held["credits"],
                           held["from_allowance"], held["from_grant"], held["period_start"],
                           held["note"])
        return True

    async def status(
        self, scope: str, user_id: str, *, is_admin: bool = False, now: datetime | None = None
    ) -> QuotaStatus:
        """The user's balance, allowance, period and reset time."""
        return await self.status_in(self.db.conn, scope, user_id, is_admin=is_admin, now=now)

    async def status_in(
        self, conn: aiosqlite.Connection, scope: str, user_id: str, *, is_admin: bool = False,
        now: datetime | None = None,
    ) -> QuotaStatus:
        """status() on the caller's connection (inside its transaction, if any); reads only."""
        now = now or datetime.now(UTC)
        a = await self._account(conn, scope, user_id, now)
        unlimited = a.allowance == UNLIMITED or (is_admin and self.defaults.admins_unlimited)
        balance = None if unlimited else max(a.allowance - a.used, 0) + a.granted
        return QuotaStatus(
            user_id=user_id, scope=scope, allowance=None if unlimited else a.allowance,
            period=a.period, used=a.used, granted=a.granted, balance=balance,
            resets_at=period_end(a.period, now), blocked=a.blocked, unlimited=unlimited,
        )

    async def set_user(
        self, scope: str, user_id: str, allowance: int | None, period: Period | None
    ) -> None:
        """Override one user's allowance (UNLIMITED for none, None to clear) and period."""
        async with self.db.transaction() as conn:
            await self._ensure(conn, scope, user_id)
            await conn.execute(
                "UPDATE quota_accounts SET allowance = ?, period = ? WHERE scope = ? AND user_id = ?",
                (allowance, period.value if period else None, scope, user_id),
            )
            await self._ledger(conn, scope, user_id, None, "adjust", 0, 0, 0, None,
                               f"allowance={allowance} period={period}")

    async def set_workspace(self, scope: str, allowance: int | None, period: Period | None) -> None:
        """Override the allowance and period for everyone in a workspace."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO workspace_quota (scope, allowance, period) VALUES (?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET allowance = excluded.allowance, "
                "period = excluded.period",
                (scope, allowance, period.value if period else None),
            )

    async def grant(self, scope: str, user_id: str, credits: int) -> None:
        """Add one-off credits that do not reset."""
        async with self.db.transaction() as conn:
            await self._ensure(conn, scope, user_id)
            await conn.execute(
                "UPDATE quota_accounts SET granted = granted + ? WHERE scope = ? AND user_id = ?",
                (credits, scope, user_id),
            )
            await self._ledger(conn, scope, user_id, None, "grant", credits, 0, credits, None, None)

    async def reset(self, scope: str, user_id: str) -> None:
        """Forget what the user used this period."""
        async with self.db.transaction() as conn:
            await self._ensure(conn, scope, user_id)
            await conn.execute(
                "UPDATE quota_accounts SET used = 0 WHERE scope = ? AND user_id = ?",
                (scope, user_id),
            )
            await self._ledger(conn, scope, user_id, None, "adjust", 0, 0, 0, None, "reset")

    async def set_blocked(self, scope: str, user_id: str, blocked: bool) -> None:
        """Block or unblock a user in a workspace."""
        async with self.db.transaction() as conn:
            await self._ensure(conn, scope, user_id)
            await conn.execute(
                "UPDATE quota_accounts SET blocked = ? WHERE scope = ? AND user_id = ?",
                (int(blocked), scope, user_id),
            )
            await self._ledger(conn, scope, user_id, None, "adjust", 0, 0, 0, None,
                               "block" if blocked else "unblock")

    async def top(self, scope: str, limit: int = 10, since: float = 0.0) -> list[tuple[str, int]]:
        """The users who spent the most credits (committed) since a unix time."""
        cursor = await self.db.conn.execute(
            "SELECT user_id, SUM(credits) AS spent FROM ledger WHERE scope = ? AND kind = 'commit' "
            "AND at >= ? GROUP BY user_id ORDER BY spent DESC, user_id LIMIT ?",
            (scope, since, limit),
        )
        return [(row["user_id"], int(row["spent"])) for row in await cursor.fetchall()]

    async def ledger_totals(self) -> dict[str, int]:
        """Credits per ledger kind, for checking that reserves = commits + refunds + held."""
        cursor = await self.db.conn.execute(
            "SELECT kind, SUM(credits) AS total FROM ledger GROUP BY kind"
        )
        return {row["kind"]: int(row["total"]) for row in await cursor.fetchall()}

    async def _account(
        self, conn: aiosqlite.Connection, scope: str, user_id: str, now: datetime
    ) -> _Account:
        """The user's effective allowance and period (their override, else the workspace's,
        else the config's) and their usage in the current period, in one query."""
        rows = await conn.execute_fetchall(
            "SELECT a.used, a.granted, a.blocked, a.period_start, "
            "COALESCE(a.allowance, w.allowance) AS allowance, "
            "COALESCE(a.period, w.period) AS period FROM (SELECT 1) "
            "LEFT JOIN quota_accounts a ON a.scope = ? AND a.user_id = ? "
            "LEFT JOIN workspace_quota w ON w.scope = ?",
            (scope, user_id, scope),
        )
        row = next(iter(rows))
        period = Period(row["period"]) if row["period"] else self.defaults.period
        start = period_start(period, now).isoformat()
        current = row["period_start"] == start
        return _Account(
            allowance=self.defaults.allowance if row["allowance"] is None else int(row["allowance"]),
            period=period, start=start, used=int(row["used"]) if current else 0,
            granted=int(row["granted"] or 0), blocked=bool(row["blocked"]),
            needs_roll=not current,
        )

    async def _roll(
        self, conn: aiosqlite.Connection, scope: str, user_id: str, account: _Account
    ) -> None:
        """Create the account, or start its new period (used = 0), when that is due."""
        if account.needs_roll:
            await conn.execute(
                "INSERT INTO quota_accounts (scope, user_id, period_start) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, user_id) DO UPDATE SET used = 0, "
                "period_start = excluded.period_start",
                (scope, user_id, account.start),
            )

    async def _ensure(self, conn: aiosqlite.Connection, scope: str, user_id: str) -> None:
        await self._roll(conn, scope, user_id,
                         await self._account(conn, scope, user_id, datetime.now(UTC)))

    async def _reservation(self, conn: aiosqlite.Connection, job_id: str) -> aiosqlite.Row | None:
        """The job's reservation if it is still held (neither committed nor refunded)."""
        rows = list(await conn.execute_fetchall(
            "SELECT * FROM ledger WHERE job_id = ? AND kind IN ('reserve', 'commit', 'refund') "
            "ORDER BY id", (job_id,)))
        if len(rows) != 1 or rows[0]["kind"] != "reserve":
            return None
        return rows[0]

    async def _ledger(
        self, conn: aiosqlite.Connection, scope: str, user_id: str, job_id: str | None,
        kind: str, credits: int, from_allowance: int, from_grant: int,
        period_start_iso: str | None, note: str | None,
    ) -> None:
        await conn.execute(
            "INSERT INTO ledger (at, scope, user_id, job_id, kind, credits, from_allowance, "
            "from_grant, period_start, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), scope, user_id, job_id, kind, credits, from_allowance, from_grant,
             period_start_iso, note),
        )
