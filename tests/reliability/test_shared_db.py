"""One SQLite file shared by two real bot processes (`python -m bot run`): WAL, a busy timeout,
and quotas that stay exact when both spend them at once.

Discord and Slack scopes differ (discord:GUILD, slack:TEAM), so exactness across processes is
tested with two Discord processes on one file (each with its own loopback Discord whose guild has
the same id, so one member spends one account from both); a Discord and a Slack process on one
file then each keep their own workspace's allowance exact while writing side by side.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.app import DB_NAME
from bot.store.db import Database
from tests.fakes.discord import FakeDiscord, FakeUser
from tests.fakes.segmind import FakeSegmind
from tests.fakes.slack import FakeSlack
from tests.reliability.books import check_books, rows, scalar
from tests.reliability.botproc import SLACK_READY, BotProcess, bot_env
from tests.reliability.support import until

pytestmark = pytest.mark.timeout(90)

KEY = "shared-db-segmind-key"
ALLOWANCE = 9
MEMBER = FakeUser(2_000_001, "member")
NO_CREDITS = "That costs 1 credits and you have 0 left"


def settings(allowance: int = ALLOWANCE, concurrency: int = 4) -> dict[str, str]:
    return {"IMAGINE_QUOTA__DEFAULT_ALLOWANCE": str(allowance),
            "IMAGINE_QUOTA__MAX_QUEUED_PER_USER": "100",
            "IMAGINE_SEGMIND__CONCURRENCY": str(concurrency)}


def final_followups(fake: FakeDiscord) -> dict[str, str]:
    """interaction token -> "images" or the sentence of its follow-up."""
    out: dict[str, str] = {}
    for captured in fake.requests("followup"):
        if captured.token and captured.token not in out:
            out[captured.token] = "images" if captured.files else str(
                captured.payload.get("content"))
    return out


def discord_and_slack(tmp_path: Path, segmind: FakeSegmind, discord_: FakeDiscord,
                      slack: FakeSlack, discord_settings: dict[str, str],
                      slack_settings: dict[str, str]) -> tuple[BotProcess, BotProcess]:
    """A Discord bot process and a Slack bot process on one data folder (not yet started)."""
    data = tmp_path / "data"
    discord_bot = BotProcess(bot_env(data, segmind_url=segmind.base_url, segmind_key=KEY,
                                     discord=discord_, settings=discord_settings),
                             tmp_path / "discord.log")
    slack_bot = BotProcess(bot_env(data, segmind_url=segmind.base_url, segmind_key=KEY,
                                   slack=slack, settings=slack_settings),
                           tmp_path / "slack.log", ready_line=SLACK_READY)
    return discord_bot, slack_bot


async def test_two_processes_spending_one_account_give_exactly_the_allowance(tmp_path):
    data = tmp_path / "data"
    async with FakeSegmind(api_key=KEY, latency_s=0.05) as segmind, \
            FakeDiscord(token="token-a") as first, FakeDiscord(token="token-b") as second:
        bots = [BotProcess(bot_env(data, segmind_url=segmind.base_url, segmind_key=KEY,
                                   discord=fake, settings=settings()), tmp_path / f"{name}.log")
                for name, fake in (("a", first), ("b", second))]
        await asyncio.gather(*(bot.start() for bot in bots))
        try:
            sent = await asyncio.gather(*(
                fake.slash("imagine", by=MEMBER, prompt=f"a fox number {i}")
                for i in range(12) for fake in (first, second)))
            await until(lambda: len(final_followups(first)) + len(final_followups(second))
                        == len(sent), 60, "every request answered")
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))

    answers = list(final_followups(first).values()) + list(final_followups(second).values())
    assert answers.count("images") == ALLOWANCE
    refusals = [a for a in answers if a != "images"]
    assert len(refusals) == len(sent) - ALLOWANCE
    assert all(a.startswith(NO_CREDITS) for a in refusals), refusals
    db = data / DB_NAME
    assert scalar(db, "SELECT used FROM quota_accounts") == ALLOWANCE
    assert check_books(db).balanced
    assert scalar(db, "PRAGMA journal_mode") == "wal"
    assert "database is locked" not in bots[0].log_text() + bots[1].log_text()


async def test_a_discord_and_a_slack_process_on_one_file_keep_both_workspaces_exact(tmp_path):
    data = tmp_path / "data"
    users = {f"U0SLACK{i}": {"name": f"s{i}"} for i in range(3)}
    async with FakeSegmind(api_key=KEY, latency_s=0.05) as segmind, \
            FakeDiscord(token="token-d") as discord_, FakeSlack(users=users) as slack:
        discord_bot, slack_bot = discord_and_slack(tmp_path, segmind, discord_, slack,
                                                   settings(allowance=4), settings(allowance=4))
        await asyncio.gather(discord_bot.start(), slack_bot.start())
        members = [FakeUser(2_100_000 + i, f"d{i}") for i in range(3)]
        try:
            await asyncio.gather(
                *(discord_.slash("imagine", by=user, prompt=f"a fox {i}")
                  for i in range(8) for user in members),
                *(slack.slash_command("/imagine", f"a fox {i}", user=user, channel="C0")
                  for i in range(8) for user in users))
            await until(lambda: len(final_followups(discord_)) == 24
                        and len(slack.calls_to("files.completeUploadExternal"))
                        + len(slack.calls_to("chat.postEphemeral")) == 24, 60,
                        "every request answered")
        finally:
            await asyncio.gather(discord_bot.stop(), slack_bot.stop())

    db = data / DB_NAME
    reserved = {r["scope"].split(":")[0] + "/" + r["user_id"]: r["n"] for r in rows(
        db, "SELECT scope, user_id, COUNT(*) AS n FROM ledger WHERE kind = 'reserve' "
            "GROUP BY scope, user_id")}
    assert sorted(reserved.values()) == [4] * 6  # each of the six members: exactly four jobs
    assert {key.split("/")[0] for key in reserved} == {"discord", "slack"}
    assert check_books(db).balanced
    assert check_books(db).undelivered == []
    assert "database is locked" not in discord_bot.log_text() + slack_bot.log_text()


async def test_the_database_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    db = await Database(tmp_path / DB_NAME).open()
    try:
        [journal] = await db.read("PRAGMA journal_mode")
        [timeout] = await db.read("PRAGMA busy_timeout")
    finally:
        await db.close()

    assert journal[0] == "wal"
    assert timeout[0] >= 5000  # milliseconds a writer waits for the other process's lock


async def test_restarting_one_process_leaves_the_other_processs_jobs_alone(tmp_path):
    db = tmp_path / "data" / DB_NAME

    def states() -> dict[str, list[str | None]]:
        """state -> the owners of the jobs in it."""
        out: dict[str, list[str | None]] = {}
        for job in rows(db, "SELECT state, owner FROM jobs"):
            out.setdefault(job["state"], []).append(job["owner"])
        return out

    async with FakeSegmind(api_key=KEY, latency_s=1.0) as segmind, \
            FakeDiscord(token="token-d") as discord_, FakeSlack() as slack:
        discord_bot, slack_bot = discord_and_slack(tmp_path, segmind, discord_, slack,
                                                   settings(concurrency=1), settings(concurrency=6))

        def results() -> list[object]:
            """Every post of a result that carries its images."""
            return [c for c in discord_.captured
                    if c.kind in ("followup", "channel_message") and c.files]

        await asyncio.gather(discord_bot.start(), slack_bot.start())
        try:
            discord_owner = scalar(db, "SELECT id FROM processes WHERE pid = ?",
                                   (discord_bot.pid,))
            for i in range(6):
                await discord_.slash("imagine", by=FakeUser(2_200_000 + i, f"d{i}"),
                                     prompt=f"a fox {i}")
            await until(lambda: {state: len(owners) for state, owners in states().items()}
                        == {"done": 1, "running": 1, "queued": 4}, 30,
                        "one done, one running, four waiting")
            now = states()
            assert now["running"] + now["queued"] == [discord_owner] * 5  # the Discord bot's
            await slack_bot.stop()
            await slack_bot.start()
            await until(lambda: len(results()) >= 6, 60, "all six results posted")
        finally:
            await asyncio.gather(discord_bot.stop(), slack_bot.stop())

    assert len(results()) == 6
    assert len(segmind.requests) == 6  # each job generated once
    assert states() == {"done": [discord_owner] * 6}  # none was taken over by the Slack bot



async def test_requests_that_arrive_together_never_exceed_the_per_user_queue_limit(
        discord_bot, fake_discord, fake_segmind, tmp_path):
    await discord_bot(quota={"max_queued_per_user": 3}, segmind={"concurrency": 1})
    fake_segmind.latency_s = 5.0  # nothing finishes while the requests arrive

    sent = await asyncio.gather(*(fake_discord.slash("imagine", by=MEMBER, prompt=f"fox {i}")
                                  for i in range(10)))
    await until(lambda: len(job_rows(tmp_path)) + len(
        [t for t, a in final_followups(fake_discord).items() if a != "images"]) == len(sent),
        20, "every request queued or refused")

    assert len(job_rows(tmp_path)) == 3


def job_rows(tmp_path: Path) -> list[dict[str, object]]:
    """The job rows of the in-process bot's database."""
    return rows(tmp_path / "data" / DB_NAME, "SELECT id FROM jobs")
