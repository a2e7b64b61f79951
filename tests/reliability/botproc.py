"""`python -m bot run` as a real child process pointed at loopback fakes (crash and shared-db tests).

    bot = BotProcess(bot_env(data, segmind_url=..., discord=fake), tmp / "bot.log")
    await bot.start()            # returns once the adapter logged that it is connected
    bot.kill()                   # SIGKILL, synchronous: safe to call from inside a fake's handler
    await bot.start()            # again, on the same data folder
    await bot.stop()             # SIGINT (a clean shutdown), SIGKILL if it hangs

A `prefix` runs the bot under another command, e.g. `unshare --pid --fork --mount-proc`, which
makes it PID 1 of a new PID namespace as in a container; signals then go to the bot itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.helpers import env_without_settings

ROOT = Path(__file__).resolve().parents[2]
DISCORD_READY = "discord connected as"
SLACK_READY = "Slack connected over Socket Mode"


def bot_env(
    data_dir: Path,
    *,
    segmind_url: str | None,
    segmind_key: str | None = None,
    discord: FakeDiscord | None = None,
    slack: FakeSlack | None = None,
    settings: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a bot process: our data folder, the fakes' URLs and their tokens."""
    env = env_without_settings()
    env["IMAGINE_STORAGE__PATH"] = str(data_dir)
    env["IMAGINE_CONFIG"] = str(data_dir / "absent.toml")
    env["IMAGINE_DISPATCH__BACKOFF_BASE_S"] = "0.05"
    env["IMAGINE_DISPATCH__BACKOFF_CAP_S"] = "0.2"
    env["IMAGINE_METRICS__PORT"] = "0"  # several bots run at once; a test that needs it sets it
    if segmind_url:
        env["IMAGINE_SEGMIND__BASE_URL"] = segmind_url
        env["SEGMIND_API_KEY"] = segmind_key or "crash-segmind-key"
    if discord is not None:
        env["DISCORD_TOKEN"] = discord.token
        env["IMAGINE_DISCORD__API_BASE_URL"] = discord.api_base_url
        env["IMAGINE_DISCORD__GATEWAY_URL"] = discord.gateway_url
    if slack is not None:
        env["SLACK_BOT_TOKEN"] = slack.bot_token
        env["SLACK_APP_TOKEN"] = slack.app_token
        env["IMAGINE_SLACK__API_BASE_URL"] = slack.base_url
    env.update(settings or {})
    env.update(secrets or {})
    return env


class BotProcess:
    """One bot process at a time on a data folder; every run appends to the same log file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, ready_line: str = DISCORD_READY,
                 log_level: str = "INFO", prefix: tuple[str, ...] = ()) -> None:
        self.env = env
        self.prefix = prefix
        self.log_path = log_path
        self.ready_line = ready_line
        self.log_level = log_level
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.kills = 0
        self.ready = asyncio.Event()  # set while a started process is connected

    @property
    def pid(self) -> int | None:
        """The running process's id (the prefix command's, when there is one)."""
        return self.process.pid if self.process is not None else None

    @property
    def bot_pid(self) -> int | None:
        """The bot's own process id: the process itself, or the child the prefix forked."""
        pid = self.pid
        if not self.prefix or pid is None:
            return pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            return None
        return int(children[0]) if children else None

    def send(self, sig: signal.Signals) -> None:
        """Send a signal to the bot itself (to the prefix command once the bot is gone)."""
        pid = self.bot_pid or self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def start(self, within_s: float = 60.0) -> None:
        """Start the bot and wait until its chat adapter says it is connected."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.prefix, sys.executable, "-m", "bot", "--log-level", self.log_level, "run",
                env=self.env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL, stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + within_s
        while self.ready_line not in self.log_text(offset):
            if self.process.returncode is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}:\n"
                                   f"{self.log_text(offset)[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bot was not ready in {within_s:g} s:\n"
                                   f"{self.log_text(offset)[-3000:]}")
            await asyncio.sleep(0.05)
        self.ready.set()

    def kill(self) -> None:
        """SIGKILL now (no clean-up runs in the bot); synchronous, so a fake's handler can call it."""
        self.ready.clear()
        if self.process is not None and self.process.returncode is None:
            self.send(signal.SIGKILL)
            self.kills += 1

    async def wait_exit(self) -> int:
        """Wait for the process to end; its exit status."""
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, within_s: float = 20.0) -> None:
        """Ask the bot to stop (SIGINT, as Ctrl-C), killing it if it does not within_s."""
        self.ready.clear()
        if self.process is None or self.process.returncode is not None:
            return
        self.send(signal.SIGINT)
        try:
            await asyncio.wait_for(self.process.wait(), within_s)
        except TimeoutError:
            self.kill()
            await self.process.wait()

    def log_text(self, offset: int = 0) -> str:
        """What the bot processes wrote, from `offset` bytes on."""
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
