"""The SQLite database: one connection on one thread, WAL, a busy timeout, migrations.

Repository methods that take a Transaction run inside the caller's transaction (on the
database thread); their async methods are self-contained.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.core.ports import Transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
DATABASE_THREAD = "imagine-sqlite"  # the name of each database's own thread

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
    """
    ALTER TABLE jobs ADD COLUMN money_estimate REAL;   -- Segmind credits expected (paid backends)
    ALTER TABLE jobs ADD COLUMN money REAL;            -- Segmind credits it cost, once done
    ALTER TABLE jobs ADD COLUMN money_measured INTEGER NOT NULL DEFAULT 0;  -- 1: from the header
    ALTER TABLE jobs ADD COLUMN gpu_seconds REAL;      -- our worker's time, for jobs it ran
    CREATE INDEX jobs_backend_created ON jobs (backend, created_at);
    CREATE INDEX jobs_created ON jobs (created_at);
    CREATE TABLE alert_incidents (           -- a condition that holds until it clears
        name   TEXT PRIMARY KEY,              -- low-credits | failing:<backend>
        number INTEGER NOT NULL DEFAULT 0,    -- incidents so far; the current one while active
        active INTEGER NOT NULL DEFAULT 0,
        since  REAL
    );
    CREATE TABLE alerts_sent (               -- each alert once per admin channel
        key     TEXT NOT NULL,                -- budget-warn:<period> | low-credits#<n> | ...
        sink    TEXT NOT NULL,                -- discord:<channel> | slack:<channel>
        sent_at REAL NOT NULL,
        text    TEXT NOT NULL,
        PRIMARY KEY (key, sink)
    );
    """,
    """
    ALTER TABLE jobs ADD COLUMN provenance TEXT;  -- JSON (Provenance); NULL before /settings
    CREATE TABLE user_defaults (             -- /settings: a user's own defaults in a scope
        scope           TEXT NOT NULL,
        user_id         TEXT NOT NULL,
        model           TEXT,                -- NULL: not set (the next layer applies)
        aspect_ratio    TEXT,
        steps           INTEGER,
        cfg             REAL,
        negative_prompt TEXT,
        image_format    TEXT,
        visibility      TEXT,                -- channel | me (Discord)
        updated_at      REAL NOT NULL,
        PRIMARY KEY (scope, user_id)
    );
    CREATE TABLE workspace_defaults (        -- /settings for a whole server or workspace (admins)
        scope           TEXT PRIMARY KEY,
        model           TEXT,
        aspect_ratio    TEXT,
        steps           INTEGER,
        cfg             REAL,
        negative_prompt TEXT,
        image_format    TEXT,
        visibility      TEXT,
        updated_at      REAL NOT NULL
    );
    """,
)


class Database:
    """One SQLite connection, owned by one thread of its own.

    Every call runs a function on that thread (see _DatabaseThread), so statements never
    interleave and the event loop never blocks on the disk. A
    transaction is one such function between BEGIN IMMEDIATE and COMMIT: it costs one thread
    hop however many statements it holds, and nothing can run between its statements.
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._thread: _DatabaseThread | None = None

    async def open(self) -> Database:
        """Open (creating the folder), switch to WAL and apply pending migrations."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = _DatabaseThread(f"{DATABASE_THREAD} {self.path.name}")
        try:
            self._conn = await self._thread.call(self._connect)
            await self.run(_use_wal, self.busy_timeout_ms / 1000)
            await self._migrate()
        except BaseException:
            await self.close()  # no connection or thread outlives a failed open
            raise
        return self

    def _connect(self) -> sqlite3.Connection:
        # Made on the thread that will use it; check_same_thread stays on as a guard.
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    async def close(self) -> None:
        """Close the connection and its thread."""
        if self._conn is not None:
            await self.run(lambda conn: conn.close())
            self._conn = None
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    async def transaction(self, work: Callable[[Transaction], T], *,
                          before: Callable[[], object] | None = None) -> T:
        """Run `work(tx)` between BEGIN IMMEDIATE and COMMIT (ROLLBACK if it raises) and
        return its result, after `before()` if given (outside the write lock, in the same
        hop). Both run on the database thread: they must not touch the event loop."""
        return await self.run(_in_transaction, work, before)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(conn, *args)` on the database thread in one hop (reads of several
        statements; a lone statement in autocommit)."""
        conn, thread = self._conn, self._thread
        if conn is None or thread is None:
            raise RuntimeError("Database.open() was not called")
        return await thread.call(functools.partial(work, conn, *args))

    async def write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """One statement, atomic on its own (autocommit); returns the number of rows changed."""
        return await self.run(lambda conn: conn.execute(sql, params).rowcount)

    async def write_returning(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """One statement with RETURNING, atomic on its own; returns the rows."""
        return await self.read(sql, params)

    async def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """A query in one round trip."""
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    async def _migrate(self) -> None:
        applied = await self.transaction(_apply_migrations)
        for number in applied:
            log.info("database %s migrated to version %d", self.path, number)

    async def journal_mode(self) -> str:
        """The journal mode in force (doctor and tests check it is 'wal')."""
        rows = await self.read("PRAGMA journal_mode")
        return str(rows[0][0]) if rows else ""


class _DatabaseThread:
    """One thread that runs functions in the order they come, for one event loop at a time:
    a SimpleQueue in, call_soon_threadsafe out. (asyncio's run_in_executor does the same over
    a ThreadPoolExecutor at about twice the cost per call, and this is the hot path.)"""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        # A daemon: a database someone forgot to close must not keep the process alive.
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    async def call(self, work: Callable[[], T]) -> T:
        """Run `work()` on the thread and return its result (or raise its error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, work))
        return await future

    def stop(self) -> None:
        """End the thread once the calls already queued have run."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, work = call
            try:
                outcome: tuple[Any, BaseException | None] = (work(), None)
            except BaseException as error:  # handed to the caller, who decides
                outcome = (None, error)
            try:
                loop.call_soon_threadsafe(_settle, future, *outcome)
            except RuntimeError:  # the loop closed meanwhile: nobody is waiting
                pass


_Call = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[], Any]]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch the file to WAL unless it already is, retrying while another process holds a
    lock: SQLite answers a journal-mode change with 'database is locked' at once, without
    consulting the busy timeout, so a bot starting beside a writing one would otherwise die."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


def _in_transaction(conn: sqlite3.Connection, work: Callable[[Transaction], T],
                    before: Callable[[], object] | None) -> T:
    if before is not None:
        before()
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


def _apply_migrations(conn: Transaction) -> list[int]:
    """Apply the migrations past the file's user_version; returns the versions applied."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    applied = []
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        code = re.sub(r"--[^\n]*", "", script)  # comments may hold semicolons
        for statement in filter(str.strip, code.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        applied.append(number)
    return applied
