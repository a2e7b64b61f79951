"""Money columns, the period's spend, alert incidents and claims, on a real SQLite file; and a
database made before them opening with its jobs intact."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator

import pytest

from bot.core.budget import Money
from bot.store.budget_repo import BudgetRepository
from bot.store.db import MIGRATIONS, Database

PAID = frozenset({"segmind"})


@pytest.fixture
async def db(tmp_path) -> AsyncIterator[Database]:
    database = await Database(tmp_path / "imagine.db").open()
    yield database
    await database.close()


async def add_job(db: Database, job_id: str, *, backend: str = "segmind", state: str = "done",
                  created_at: float | None = None, finished_at: float | None = None,
                  owner: str = "me", estimate: float | None = None, money: float | None = None,
                  started_at: float | None = None) -> None:
    await db.write(
        "INSERT INTO jobs (id, state, platform, scope, user_id, actor, request, target, cost, "
        "backend, created_at, started_at, finished_at, owner, money_estimate, money) "
        "VALUES (?, ?, 'test', 'test:t', 'u', '{}', '{}', '{}', 1, ?, ?, ?, ?, ?, ?, ?)",
        (job_id, state, backend, created_at or time.time(), started_at, finished_at, owner,
         estimate, money))


async def spent(repo: BudgetRepository, since: float = 0.0) -> float:
    return await repo.spent_now(PAID, since)


async def test_a_database_from_before_the_budget_opens_with_its_jobs_and_costs_nothing(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:3], start=1):  # the schema as it shipped
        conn.executescript(re.sub(r"--[^\n]*", "", script))
        conn.execute(f"PRAGMA user_version = {number}")
    conn.execute(
        "INSERT INTO jobs (id, state, platform, scope, user_id, actor, request, target, cost, "
        "backend, created_at) VALUES ('old1', 'done', 'test', 's', 'u', '{}', '{}', '{}', 4, "
        "'segmind', ?)", (time.time(),))
    conn.close()

    db = await Database(path).open()
    try:
        [row] = await db.read("SELECT id, money, money_measured FROM jobs")
        version = (await db.read("PRAGMA user_version"))[0][0]
        assert (row["id"], row["money"], row["money_measured"]) == ("old1", None, 0)
        assert version == len(MIGRATIONS)
        assert await spent(BudgetRepository(db)) == 0.0
    finally:
        await db.close()


async def test_waiting_jobs_count_at_their_estimate_and_finished_ones_at_their_money(db):
    await add_job(db, "q", state="queued", estimate=0.5)
    await add_job(db, "r", state="running", estimate=0.25)
    await add_job(db, "d", state="done", estimate=9.0, money=0.125)
    await add_job(db, "f", state="failed", estimate=9.0)

    assert await spent(BudgetRepository(db)) == 0.875


async def test_jobs_of_our_own_backends_and_of_earlier_periods_are_not_spent(db):
    await add_job(db, "w", backend="worker", money=5.0)
    await add_job(db, "old", created_at=time.time() - 86400, money=5.0)

    assert await spent(BudgetRepository(db), since=time.time() - 3600) == 0.0


async def test_recording_a_jobs_money_writes_it_with_its_source(db):
    await add_job(db, "j", state="done")
    repo = BudgetRepository(db)

    await db.transaction(lambda tx: repo.record(tx, "j", Money(0.03, measured=True)))

    [row] = await db.read("SELECT money, money_measured, gpu_seconds FROM jobs")
    assert tuple(row) == (0.03, 1, None)


async def test_another_processs_running_job_makes_the_drop_unmeasurable(db):
    now = time.time()
    await add_job(db, "mine", state="running", owner="me", started_at=now)
    await add_job(db, "theirs", state="running", owner="them", started_at=now)
    repo = BudgetRepository(db)

    assert await db.transaction(lambda tx: repo.busy_elsewhere(tx, "mine", "segmind", now - 1))


async def test_another_processs_job_that_ended_before_the_drop_began_does_not_count(db):
    now = time.time()
    await add_job(db, "mine", state="running", owner="me", started_at=now)
    await add_job(db, "theirs", owner="them", started_at=now - 60, finished_at=now - 30)
    repo = BudgetRepository(db)

    assert not await db.transaction(lambda tx: repo.busy_elsewhere(tx, "mine", "segmind",
                                                                   now - 10))


async def test_an_incident_keeps_its_number_while_it_lasts_and_the_next_one_gets_a_new_one(db):
    repo = BudgetRepository(db)

    numbers = [await db.transaction(lambda tx, a=active: repo.incident(tx, "low-credits", a))
               for active in (True, True, False, True)]

    assert numbers == [1, 1, None, 2]


async def test_an_alert_is_claimed_once_per_sink(db):
    repo = BudgetRepository(db)

    claims = [await db.transaction(lambda tx, s=sink: repo.claim(tx, "budget-warn:p", s, "t"))
              for sink in ("discord:1", "discord:1", "slack:C1")]

    assert claims == [True, False, True]


async def test_an_unclaimed_alert_can_be_claimed_again(db):
    repo = BudgetRepository(db)
    await db.transaction(lambda tx: repo.claim(tx, "k", "discord:1", "t"))

    await repo.unclaim("k", "discord:1")

    assert await db.transaction(lambda tx: repo.claim(tx, "k", "discord:1", "t"))


async def test_outcomes_count_only_each_backends_last_jobs(db):
    now = time.time()
    for n in range(25):  # the oldest five failed, the last twenty succeeded
        await add_job(db, f"s{n}", state="failed" if n < 5 else "done", created_at=now + n)
    await add_job(db, "w1", backend="worker", state="failed")
    await add_job(db, "w2", backend="worker", state="queued")
    repo = BudgetRepository(db)

    outcomes = await db.transaction(lambda tx: repo.outcomes(tx, ("segmind", "worker", "fleet"),
                                                             20))

    assert outcomes == {"segmind": (0, 20), "worker": (1, 1)}
