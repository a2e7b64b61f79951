"""The SQLite database: one connection, WAL, a busy timeout, versioned migrations."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

# Append only: each entry is one version. Never edit a migration that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE quota_accounts (
        scope        TEXT NOT NULL,
        user_id      TEXT NOT NULL,
        period_start TEXT NOT NULL,          -- ISO UTC start of the period 'used' counts in
        used         INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
        granted      INTEGER NOT NULL DEFAULT 0 CHECK (granted >= 0),
        allowance    INTEGER,                -- per-user override; NULL: workspace or default
        period       TEXT,                   -- per-user override
        blocked      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, user_id)
    );
    CREATE TABLE workspace_quota (
        scope     TEXT PRIMARY KEY,
        allowance INTEGER,
        period    TEXT
    );
    CREATE TABLE ledger (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             REAL NOT NULL,
        scope          TEXT NOT NULL,
        user_id        TEXT NOT NULL,
        job_id         TEXT,
        kind           TEXT NOT NULL,        -- reserve | commit | refund | grant | adjust
        credits        INTEGER NOT NULL,
        from_allowance INTEGER NOT NULL DEFAULT 0,
        from_grant     INTEGER NOT NULL DEFAULT 0,
        period_start   TEXT,
        note           TEXT
    );
    CREATE INDEX ledger_job ON ledger (job_id);
    CREATE INDEX ledger_user ON ledger (scope, user_id, at);
    CREATE TABLE jobs (
        id            TEXT PRIMARY KEY,
        state         TEXT NOT NULL,
        platform      TEXT NOT NULL,
        scope         TEXT NOT NULL,
        user_id       TEXT NOT NULL,
        actor         TEXT NOT NULL,         -- JSON
        request       TEXT NOT NULL,         -- JSON (ImagineRequest)
        target        TEXT NOT NULL,         -- JSON (ReplyTarget)
        cost          INTEGER NOT NULL,
        backend       TEXT NOT NULL DEFAULT '',
        parent_id     TEXT,
        action        TEXT NOT NULL DEFAULT 'imagine',
        attempts      INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL,
        started_at    REAL,
        finished_at   REAL,
        backend_seconds REAL,
        images        TEXT NOT NULL DEFAULT '[]',  -- JSON list of paths under the data folder
        error         TEXT,
        refunded      INTEGER NOT NULL DEFAULT 0,
        delivered     INTEGER NOT NULL DEFAULT 0,
        deleted       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_state ON jobs (state, created_at);
    CREATE INDEX jobs_undelivered ON jobs (delivered, state);
    """,
    """
    CREATE TABLE backend_status (
        name              TEXT PRIMARY KEY,
        remaining_credits REAL,               -- the service's x-remaining-credits, last seen
        seen_at           REAL NOT NULL
    );
    """,
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;  -- the process that runs the job
    CREATE INDEX jobs_owner ON jobs (owner, state);
    CREATE TABLE processes (                 -- bot processes sharing this file, and their lease
        id           TEXT PRIMARY KEY,
        pid          INTEGER NOT NULL,
        host         TEXT NOT NULL,
        started_at   REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    );
    """,
)


class Database:
    """One aiosqlite connection; transactions are BEGIN IMMEDIATE so writers never race."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: aiosqlite.Connection | None = None
        # One connection serves many coroutines: a transaction must not interleave with
        # another coroutine's statements, so writers take turns.
        self._write_lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database.open() was not called")
        return self._conn

    async def open(self) -> Database:
        """Open (creating the folder), switch to WAL and apply pending migrations."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        await self._conn.execute("PRAGMA journal_mode = WAL")
        await self._conn.execute("PRAGMA synchronous = NORMAL")
        await self._conn.execute("PRAGMA foreign_keys = ON")
        await self._migrate()
        return self

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""
        async with self._write_lock:
            conn = self.conn
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def write(self, sql: str, params: tuple = ()) -> int:
        """One statement, atomic on its own (autocommit); returns the number of rows changed."""
        async with self._write_lock:
            cursor = await self.conn.execute(sql, params)
            return cursor.rowcount

    async def write_returning(self, sql: str, params: tuple = ()) -> list[aiosqlite.Row]:
        """One statement with RETURNING, atomic on its own; returns the rows."""
        async with self._write_lock:
            return list(await self.conn.execute_fetchall(sql, params))

    async def read(self, sql: str, params: tuple = ()) -> list[aiosqlite.Row]:
        """A query in one round trip."""
        return list(await self.conn.execute_fetchall(sql, params))

    async def _migrate(self) -> None:
        async with self.transaction() as conn:
            cursor = await conn.execute("PRAGMA user_version")
            row = await cursor.fetchone()
            version = int(row[0]) if row else 0
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                code = re.sub(r"--[^\n]*", "", script)  # comments may hold semicolons
                for statement in filter(str.strip, code.split(";")):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version = {number}")
                log.info("database %s migrated to version %d", self.path, number)

    async def journal_mode(self) -> str:
        """The journal mode in force (doctor and tests check it is 'wal')."""
        cursor = await self.conn.execute("PRAGMA journal_mode")
        row = await cursor.fetchone()
        return str(row[0]) if row else ""
