"""SIGTERM, SIGINT and kill -9 sent to a real `python -m bot run` (Discord), also as PID 1 of
its own PID namespace, as in a container: running jobs finish or are kept, nothing is lost or
charged twice, no progress message keeps saying "Generating…", and the exit is clean."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import DB_NAME
from bot.chat.render import HANDED_BACK
from tests.fakes.discord import FakeDiscord, FakeUser
from tests.fakes.segmind import FakeSegmind
from tests.reliability.books import check_books, rows
from tests.reliability.botproc import BotProcess, bot_env
from tests.reliability.support import until

pytestmark = pytest.mark.timeout(120)

KEY = "signals-segmind-key"
USER = FakeUser(2_300_001, "ann")
PID_1 = ("unshare", "--pid", "--fork", "--mount-proc")  # as root: a new PID namespace


@pytest.fixture(autouse=True)
def _no_bot_outlives_its_test() -> Iterator[None]:
    yield
    for bot in _STARTED:
        bot.kill()  # a no-op for a bot that exited; a failed test must not leave one running
    _STARTED.clear()


_STARTED: list[BotProcess] = []


def a_bot(tmp_path: Path, segmind: FakeSegmind, discord_: FakeDiscord, *, drain_s: float,
          concurrency: int = 1, prefix: tuple[str, ...] = ()) -> BotProcess:
    env = bot_env(tmp_path / "data", segmind_url=segmind.base_url, segmind_key=KEY,
                  discord=discord_, settings={"IMAGINE_DISPATCH__DRAIN_S": str(drain_s),
                                              "IMAGINE_SEGMIND__CONCURRENCY": str(concurrency),
                                              "IMAGINE_QUOTA__MAX_QUEUED_PER_USER": "10"})
    bot = BotProcess(env, tmp_path / "bot.log", prefix=prefix)
    _STARTED.append(bot)
    return bot


def results(discord_: FakeDiscord) -> list[object]:
    """Every message that carried images (follow-ups and channel posts)."""
    return [c for c in discord_.captured
            if c.kind in ("followup", "channel_message") and c.files]


def progress_texts(discord_: FakeDiscord) -> list[str]:
    """What each /imagine's progress message (the deferred response) says now."""
    texts = []
    for callback in discord_.requests("callback"):
        if callback.message is not None:
            message = discord_.messages.get(str(callback.message["id"]))
            texts.append(message["content"] if message else "(deleted)")
    return texts


def job_rows(tmp_path: Path) -> list[dict[str, object]]:
    return rows(tmp_path / "data" / DB_NAME, "SELECT id, state, owner FROM jobs")


async def start_with_a_running_job(bot: BotProcess, discord_: FakeDiscord,
                                   segmind: FakeSegmind) -> None:
    """Start the bot, send one /imagine, and wait until Segmind is working on it."""
    await bot.start()
    await discord_.slash("imagine", by=USER, prompt="a red fox")
    await until(lambda: len(segmind.requests) == 1, 20, "the job running")


async def exit_status(bot: BotProcess, within_s: float) -> int:
    return await asyncio.wait_for(bot.wait_exit(), within_s)


async def test_sigterm_lets_a_running_job_finish_and_post_its_result_then_exits_0(tmp_path):
    async with FakeSegmind(api_key=KEY, latency_s=1.5) as segmind, FakeDiscord() as discord_:
        bot = a_bot(tmp_path, segmind, discord_, drain_s=20)
        await start_with_a_running_job(bot, discord_, segmind)

        bot.send(signal.SIGTERM)
        status = await exit_status(bot, 20 + 5)

    assert status == 0
    assert len(results(discord_)) == 1
    assert [row["state"] for row in job_rows(tmp_path)] == ["done"]
    assert progress_texts(discord_) == ["Done."]
    assert check_books(tmp_path / "data" / DB_NAME).balanced


async def test_a_job_the_drain_cannot_finish_is_kept_said_so_and_run_by_the_next_start(tmp_path):
    async with FakeSegmind(api_key=KEY, latency_s=60) as segmind, FakeDiscord() as discord_:
        bot = a_bot(tmp_path, segmind, discord_, drain_s=1)
        await start_with_a_running_job(bot, discord_, segmind)

        bot.send(signal.SIGTERM)
        assert await exit_status(bot, 1 + 5) == 0
        [kept] = job_rows(tmp_path)
        assert (kept["state"], kept["owner"]) == ("queued", None)  # handed back, lease free
        assert progress_texts(discord_) == [HANDED_BACK]
        assert results(discord_) == []

        segmind.latency_s = 0.05
        await bot.start()
        await until(lambda: len(results(discord_)) == 1, 20, "the result posted")
        await until(lambda: progress_texts(discord_) == ["Done."],
                    10, "the progress message updated by the successor")
        await bot.stop()

    books = check_books(tmp_path / "data" / DB_NAME)
    assert books.balanced and books.states == {"done": 1}


async def test_a_second_signal_stops_at_once_and_the_next_start_runs_the_job(tmp_path):
    async with FakeSegmind(api_key=KEY, latency_s=60) as segmind, FakeDiscord() as discord_:
        bot = a_bot(tmp_path, segmind, discord_, drain_s=60)
        await start_with_a_running_job(bot, discord_, segmind)

        bot.send(signal.SIGTERM)
        await until(lambda: "SIGTERM: stopping" in bot.log_text(), 10, "the first signal seen")
        bot.send(signal.SIGTERM)
        status = await exit_status(bot, 5)

        segmind.latency_s = 0.05
        await bot.start()
        await until(lambda: len(results(discord_)) == 1, 20, "the result posted")
        await bot.stop()

    assert status == 128 + signal.SIGTERM
    books = check_books(tmp_path / "data" / DB_NAME)
    assert books.balanced and books.states == {"done": 1}


def namespace_pid(pid: int) -> int:
    """The pid a process has inside its own PID namespace (the last NSpid field)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid line")


async def test_a_bot_restarted_as_pid_1_after_kill_9_takes_over_every_job_at_start(tmp_path):
    async with FakeSegmind(api_key=KEY, latency_s=60) as segmind, FakeDiscord() as discord_:
        bot = a_bot(tmp_path, segmind, discord_, drain_s=5, concurrency=2, prefix=PID_1)
        await bot.start()
        assert bot.bot_pid is not None and namespace_pid(bot.bot_pid) == 1
        for i in range(4):
            await discord_.slash("imagine", by=USER, prompt=f"a knight {i} --model chroma")
        await until(lambda: len(segmind.requests) == 2 and len(job_rows(tmp_path)) == 4, 20,
                    "two jobs running, two waiting")

        bot.kill()  # PID 1 dies, and its namespace with it: the container is gone
        await bot.wait_exit()
        segmind.latency_s = 0.05
        await bot.start()  # the same host name, and PID 1 again
        assert bot.bot_pid is not None and namespace_pid(bot.bot_pid) == 1
        await until(lambda: len(results(discord_)) == 4, 30, "every job answered")
        await until(lambda: set(progress_texts(discord_)) == {"Done."},
                    10, "every progress message updated")

        bot.send(signal.SIGTERM)  # PID 1 has no default action for it: our handler stops it
        assert await exit_status(bot, 5 + 5) == 0

    books = check_books(tmp_path / "data" / DB_NAME)
    assert books.balanced and books.states == {"done": 4} and books.undelivered == []
