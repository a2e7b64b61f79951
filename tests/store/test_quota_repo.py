"""Quota accounts on a real SQLite file: allowances, periods, grants, refunds, the ledger."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core.errors import InsufficientCredits, UserBlocked
from bot.core.quota import UNLIMITED, Period, QuotaRules
from bot.store.db import MIGRATIONS, Database
from bot.store.quota_repo import QuotaRepository

SCOPE = "discord:1"
MONDAY = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)


@pytest.fixture
async def quota(tmp_path):
    db = await Database(tmp_path / "q.db").open()
    yield QuotaRepository(db, QuotaRules(allowance=10, period=Period.DAY))
    await db.close()


async def reserve(quota: QuotaRepository, credits: int, job: str, *, user: str = "u",
                  now: datetime = MONDAY, admin: bool = False) -> None:
    await quota.db.transaction(
        lambda conn: quota.reserve(conn, scope=SCOPE, user_id=user, credits=credits,
                                   job_id=job, now=now, is_admin=admin))


async def test_the_database_runs_in_wal_mode_with_a_busy_timeout(quota):
    assert await quota.db.journal_mode() == "wal"
    [row] = await quota.db.read("PRAGMA busy_timeout")
    assert row[0] >= 5000


async def test_reopening_the_database_does_not_run_migrations_twice(tmp_path):
    first = await Database(tmp_path / "m.db").open()
    await first.close()
    again = await Database(tmp_path / "m.db").open()
    [row] = await again.read("PRAGMA user_version")
    assert row[0] == len(MIGRATIONS)
    await again.close()


async def test_a_reservation_past_the_balance_is_refused_and_changes_nothing(quota):
    await reserve(quota, 8, "j1")
    with pytest.raises(InsufficientCredits) as refused:
        await reserve(quota, 3, "j2")
    assert "costs 3 credits and you have 2 left" in refused.value.sentence()
    assert (await quota.status(SCOPE, "u", now=MONDAY)).balance == 2


async def test_the_allowance_comes_back_at_the_next_utc_day(quota):
    await reserve(quota, 10, "j1")
    tomorrow = datetime(2026, 11, 17, 0, 0, 1, tzinfo=UTC)
    assert (await quota.status(SCOPE, "u", now=tomorrow)).balance == 10


async def test_a_weekly_allowance_resets_on_monday(quota):
    await quota.set_user(SCOPE, "u", 10, Period.WEEK)
    await reserve(quota, 10, "j1")
    sunday = datetime(2026, 11, 22, 23, 59, tzinfo=UTC)
    assert (await quota.status(SCOPE, "u", now=sunday)).balance == 0
    next_monday = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    status = await quota.status(SCOPE, "u", now=next_monday)
    assert status.balance == 10 and status.resets_at == datetime(2026, 11, 30, tzinfo=UTC)


async def test_granted_credits_are_spent_after_the_allowance_and_never_reset(quota):
    await quota.grant(SCOPE, "u", 5)
    await reserve(quota, 12, "j1")  # 10 from the allowance, 2 from the grant
    tomorrow = datetime(2026, 11, 17, 9, 0, tzinfo=UTC)
    assert (await quota.status(SCOPE, "u", now=tomorrow)).balance == 13


async def test_a_refund_gives_back_allowance_and_grant_as_they_were_taken(quota):
    await quota.grant(SCOPE, "u", 5)
    await reserve(quota, 12, "j1")
    assert await quota.db.transaction(lambda conn: quota.refund(conn, "j1"))
    assert (await quota.status(SCOPE, "u", now=MONDAY)).balance == 15


async def test_a_job_is_refunded_at_most_once(quota):
    await reserve(quota, 4, "j1")
    assert await quota.db.transaction(lambda conn: quota.refund(conn, "j1"))
    assert not await quota.db.transaction(lambda conn: quota.refund(conn, "j1"))
    assert (await quota.status(SCOPE, "u", now=MONDAY)).balance == 10


async def test_a_committed_job_cannot_be_refunded(quota):
    await reserve(quota, 4, "j1")
    await quota.db.transaction(lambda conn: quota.commit(conn, "j1"))
    assert not await quota.db.transaction(lambda conn: quota.refund(conn, "j1"))
    assert await quota.ledger_totals() == {"reserve": 4, "commit": 4}


async def test_a_workspace_override_applies_to_everyone_and_a_user_override_wins(quota):
    await quota.set_workspace(SCOPE, 100, Period.MONTH)
    await quota.set_user(SCOPE, "vip", 500, None)
    assert (await quota.status(SCOPE, "someone", now=MONDAY)).balance == 100
    vip = await quota.status(SCOPE, "vip", now=MONDAY)
    assert vip.balance == 500 and vip.period is Period.MONTH


async def test_an_unlimited_user_is_never_refused_and_the_ledger_still_records(quota):
    await quota.set_user(SCOPE, "u", UNLIMITED, None)
    for i in range(5):
        await reserve(quota, 10, f"j{i}")
    assert (await quota.status(SCOPE, "u", now=MONDAY)).unlimited
    assert (await quota.ledger_totals())["reserve"] == 50


async def test_admins_are_unlimited_when_the_config_says_so(quota):
    await reserve(quota, 50, "j1", admin=True)
    assert (await quota.status(SCOPE, "u", is_admin=True, now=MONDAY)).balance is None


async def test_a_blocked_user_cannot_reserve_until_unblocked(quota):
    await quota.set_blocked(SCOPE, "u", True)
    with pytest.raises(UserBlocked):
        await reserve(quota, 1, "j1")
    await quota.set_blocked(SCOPE, "u", False)
    await reserve(quota, 1, "j2")


async def test_quotas_are_separate_per_workspace(quota):
    await reserve(quota, 10, "j1")
    await quota.db.transaction(
        lambda conn: quota.reserve(conn, scope="slack:T1", user_id="u", credits=10, job_id="j2",
                                   now=MONDAY))
    assert (await quota.status(SCOPE, "u", now=MONDAY)).balance == 0
    assert (await quota.status("slack:T1", "u", now=MONDAY)).balance == 0


async def ledger(quota: QuotaRepository, job: str | None = None) -> list[tuple[Any, ...]]:
    """The ledger rows (kind, credits, from_allowance, from_grant, period_start, note, job_id),
    of one job or of the admins' changes (no job), in order."""
    rows = await quota.db.read(
        "SELECT kind, credits, from_allowance, from_grant, period_start, note, job_id "
        "FROM ledger WHERE job_id IS ? ORDER BY id", (job,))
    return [tuple(row) for row in rows]


async def test_an_unlimited_users_reservation_and_its_refund_are_ledger_rows_that_say_unlimited(
        quota):
    await quota.set_user(SCOPE, "u", UNLIMITED, None)
    await reserve(quota, 7, "j1")
    assert await quota.db.transaction(lambda conn: quota.refund(conn, "j1"))

    day = "2026-11-16T00:00:00+00:00"
    assert await ledger(quota, "j1") == [("reserve", 7, 0, 0, day, "unlimited", "j1"),
                                         ("refund", 7, 0, 0, day, "unlimited", "j1")]


async def test_an_unlimited_users_job_is_committed_once_in_the_ledger(quota):
    await reserve(quota, 7, "j1", admin=True)
    await quota.db.transaction(lambda conn: quota.commit(conn, "j1"))
    await quota.db.transaction(lambda conn: quota.commit(conn, "j1"))
    assert [row[0] for row in await ledger(quota, "j1")] == ["reserve", "commit"]


async def test_a_refunded_job_cannot_be_committed(quota):
    await reserve(quota, 4, "j1")
    assert await quota.db.transaction(lambda conn: quota.refund(conn, "j1"))
    await quota.db.transaction(lambda conn: quota.commit(conn, "j1"))
    assert await quota.ledger_totals() == {"reserve": 4, "refund": 4}
    assert (await quota.status(SCOPE, "u", now=MONDAY)).balance == 10


async def test_a_reset_gives_the_user_the_whole_allowance_back_and_keeps_the_grants(quota):
    await quota.grant(SCOPE, "u", 5)
    await reserve(quota, 12, "j1", now=datetime.now(UTC))  # 10 from the allowance, 2 granted
    await quota.reset(SCOPE, "u")
    status = await quota.status(SCOPE, "u")
    assert (status.balance, status.granted) == (13, 3)


@pytest.mark.parametrize(("change", "row"), [
    ("grant 5", ("grant", 5, 0, 5, None, None, None)),
    ("allow 5 a week", ("adjust", 0, 0, 0, None, "allowance=5 period=week", None)),
    ("reset", ("adjust", 0, 0, 0, None, "reset", None)),
    ("block", ("adjust", 0, 0, 0, None, "block", None)),
    ("unblock", ("adjust", 0, 0, 0, None, "unblock", None)),
])
async def test_each_admin_change_is_one_ledger_row_saying_what_it_did(quota, change, row):
    actions = {
        "grant 5": lambda: quota.grant(SCOPE, "u", 5),
        "allow 5 a week": lambda: quota.set_user(SCOPE, "u", 5, Period.WEEK),
        "reset": lambda: quota.reset(SCOPE, "u"),
        "block": lambda: quota.set_blocked(SCOPE, "u", True),
        "unblock": lambda: quota.set_blocked(SCOPE, "u", False),
    }
    await actions[change]()
    assert await ledger(quota) == [row]
