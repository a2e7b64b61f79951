"""The charge is conditional: it applies only to the account as it was read, so writers on
separate connections (two processes on one file) can never spend past the allowance."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.core.errors import InsufficientCredits
from bot.core.quota import Period, QuotaRules
from bot.store.db import Database
from bot.store.quota_repo import QuotaRepository

SCOPE = "discord:1"
MONDAY = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
ALLOWANCE = 10
RULES = QuotaRules(allowance=ALLOWANCE, period=Period.DAY)


@pytest.fixture
async def two_connections(tmp_path: Path):
    """Two Databases on one file, each with its own connection and thread, as two processes."""
    first = await Database(tmp_path / "q.db").open()
    try:
        second = await Database(tmp_path / "q.db").open()
    except BaseException:
        await first.close()
        raise
    yield QuotaRepository(first, RULES), QuotaRepository(second, RULES)
    await second.close()
    await first.close()


def reserving(quota: QuotaRepository, credits: int, job_id: str) -> Callable[[Any], Any]:
    """The work of one reservation for user u, to run in a transaction (or outside one)."""
    return lambda conn: quota.reserve(conn, scope=SCOPE, user_id="u", credits=credits,
                                      job_id=job_id, now=MONDAY)


async def account_and_reserves(quota: QuotaRepository) -> tuple[int, list[tuple[str, int]]]:
    """The account's `used`, and (job id, credits from the allowance) of each reserve row."""
    [account] = await quota.db.read("SELECT used FROM quota_accounts WHERE user_id = 'u'")
    reserves = await quota.db.read(
        "SELECT job_id, from_allowance FROM ledger WHERE kind = 'reserve' ORDER BY id")
    return account["used"], [(row["job_id"], row["from_allowance"]) for row in reserves]


async def test_reservations_racing_on_two_connections_never_pass_the_allowance(two_connections):
    async def reserve_once(quota: QuotaRepository, job_id: str) -> str:
        try:
            await quota.db.transaction(reserving(quota, 1, job_id))
        except InsufficientCredits:
            return "refused"
        return "charged"

    outcomes = await asyncio.gather(
        *(reserve_once(two_connections[i % 2], f"j{i}") for i in range(60)),
        return_exceptions=True)

    assert [o for o in outcomes if o not in ("charged", "refused")] == []  # no other failure
    assert outcomes.count("charged") == ALLOWANCE
    used, reserves = await account_and_reserves(two_connections[0])
    assert used == ALLOWANCE == sum(credits for _, credits in reserves)
    assert len(reserves) == ALLOWANCE


class ChangedAfterItsRead:
    """A real connection outside any transaction, so what it reads can go stale, that lets
    another writer in once: after the first read, just before the first write that follows."""

    def __init__(self, conn: sqlite3.Connection, meanwhile: Callable[[], None]) -> None:
        self.conn = conn
        self.meanwhile: Callable[[], None] | None = meanwhile
        self.has_read = False

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        is_read = sql.lstrip().upper().startswith("SELECT")
        if self.has_read and not is_read and self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        cursor = self.conn.execute(sql, parameters)
        self.has_read = self.has_read or is_read
        return cursor


async def test_a_charge_whose_account_changed_after_it_was_read_is_refused(two_connections):
    a, b = two_connections
    await a.db.transaction(reserving(a, 8, "j0"))  # 2 of the 10 credits left
    loop = asyncio.get_running_loop()
    b_spent: list[object] = []

    def b_spends_the_last_two() -> None:  # on A's database thread, between A's read and write
        b_spent.append(asyncio.run_coroutine_threadsafe(
            b.db.transaction(reserving(b, 2, "jb")), loop).result(timeout=30))

    with pytest.raises(InsufficientCredits):
        await a.db.run(lambda conn: reserving(a, 2, "ja")(ChangedAfterItsRead(conn,
                                                                             b_spends_the_last_two)))

    assert len(b_spent) == 1  # B's charge really came in between
    used, reserves = await account_and_reserves(a)
    assert used == ALLOWANCE
    assert reserves == [("j0", 8), ("jb", 2)]


async def test_a_reservation_holds_the_write_lock_from_its_read_to_its_charge(tmp_path):
    a = QuotaRepository(await Database(tmp_path / "q.db").open(), RULES)
    b = QuotaRepository(await Database(tmp_path / "q.db", busy_timeout_ms=0).open(), RULES)
    loop = asyncio.get_running_loop()
    b_tried: list[str] = []

    def b_tries_to_spend() -> None:  # on A's database thread, between A's read and write
        try:
            asyncio.run_coroutine_threadsafe(
                b.db.transaction(reserving(b, 1, "jb")), loop).result(timeout=30)
            b_tried.append("charged")
        except sqlite3.OperationalError as error:  # busy_timeout 0: no waiting for the lock
            b_tried.append(str(error))

    try:
        await a.db.transaction(
            lambda conn: reserving(a, 1, "ja")(ChangedAfterItsRead(conn, b_tries_to_spend)))
        used, reserves = await account_and_reserves(a)
    finally:
        await b.db.close()
        await a.db.close()

    assert b_tried == ["database is locked"]
    assert (used, reserves) == (1, [("ja", 1)])
