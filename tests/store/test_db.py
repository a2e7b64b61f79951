"""The database's transactions on a real SQLite file: all or nothing, and never interleaved."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from bot.store.db import Database


@pytest.fixture
async def db(tmp_path):
    database = await Database(tmp_path / "t.db").open()
    await database.write("CREATE TABLE counter (n INTEGER NOT NULL)")
    await database.write("INSERT INTO counter VALUES (0)")
    yield database
    await database.close()


def read_then_add_one(conn: sqlite3.Connection) -> int:
    """A read-modify-write in Python: only safe if nothing runs between its statements."""
    n = conn.execute("SELECT n FROM counter").fetchone()[0]
    conn.execute("UPDATE counter SET n = ?", (n + 1,))
    return n + 1


async def test_a_transaction_returns_what_its_work_returns(db):
    assert await db.transaction(read_then_add_one) == 1


async def test_a_transaction_whose_work_raises_leaves_nothing_behind(db):
    def add_then_fail(conn: sqlite3.Connection) -> None:
        read_then_add_one(conn)
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        await db.transaction(add_then_fail)
    assert (await db.read("SELECT n FROM counter"))[0][0] == 0


async def test_concurrent_transactions_never_interleave_their_statements(db):
    await asyncio.gather(*(db.transaction(read_then_add_one) for _ in range(200)))
    assert (await db.read("SELECT n FROM counter"))[0][0] == 200


async def test_the_connection_is_usable_after_a_failed_transaction(db):
    with pytest.raises(sqlite3.OperationalError):
        await db.transaction(lambda conn: conn.execute("SELECT * FROM no_such_table"))
    assert await db.transaction(read_then_add_one) == 1


def _hold_write_lock(path, journal: str) -> sqlite3.Connection:
    """Another process's connection in the middle of a write transaction."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute(f"PRAGMA journal_mode = {journal}")
    other.execute("CREATE TABLE IF NOT EXISTS busy (n INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO busy VALUES (1)")
    return other


async def test_a_new_file_switches_to_wal_once_another_writer_lets_go(tmp_path):
    path = tmp_path / "t.db"
    other = _hold_write_lock(path, "delete")
    asyncio.get_running_loop().call_later(0.5, other.execute, "COMMIT")
    database = await Database(path, busy_timeout_ms=10_000).open()
    try:
        assert await database.journal_mode() == "wal"
    finally:
        await database.close()
        other.close()


async def test_a_wal_file_opens_while_another_process_holds_its_write_lock(tmp_path):
    path = tmp_path / "t.db"
    other = _hold_write_lock(path, "wal")
    asyncio.get_running_loop().call_later(0.5, other.execute, "COMMIT")
    database = await Database(path, busy_timeout_ms=10_000).open()
    try:
        assert await database.journal_mode() == "wal"
        assert (await database.read("SELECT COUNT(*) FROM busy"))[0][0] == 1
    finally:
        await database.close()
        other.close()


async def test_opening_gives_up_with_locked_once_the_busy_timeout_has_passed(tmp_path):
    path = tmp_path / "t.db"
    other = _hold_write_lock(path, "delete")
    database = Database(path, busy_timeout_ms=300)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await database.open()
        with pytest.raises(RuntimeError, match="open"):  # closed again, its thread gone
            await database.read("SELECT 1")
    finally:
        other.execute("COMMIT")
        other.close()


async def test_the_work_before_a_transaction_runs_without_holding_the_write_lock(db):
    def another_writer_gets_in() -> None:
        other = sqlite3.connect(db.path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # 'database is locked' at once if we held it
            other.execute("UPDATE counter SET n = n + 10")
            other.execute("COMMIT")
        finally:
            other.close()

    assert await db.transaction(read_then_add_one, before=another_writer_gets_in) == 11
