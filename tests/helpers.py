"""Small test helpers: collect a job's events, wait for its end, read the ledger."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from bot.core.jobs import Actor, JobDone, JobEvent, JobFailed, ReplyTarget
from bot.core.service import ImagineService

TEST_PLATFORM = "test"


# Every setting and token of the bot comes from variables with these prefixes.
SETTINGS_PREFIXES = ("IMAGINE_", "SEGMIND_", "DISCORD_", "SLACK_")


def env_without_settings() -> dict[str, str]:
    """This process's environment less every setting and token of the bot: a child process
    of a test starts from the settings the test gives it, and nothing else."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}


def actor(user: str = "alice", workspace: str | None = "team1", **kw: Any) -> Actor:
    """A chat user of the test platform."""
    return Actor(TEST_PLATFORM, user_id=user, workspace_id=workspace, display_name=user, **kw)


def target(channel: str = "c1") -> ReplyTarget:
    """A reply target on the test platform."""
    return ReplyTarget(platform=TEST_PLATFORM, channel_id=channel, workspace_id="team1")


class Recorder:
    """A platform listener that records every event it receives, like an adapter would."""

    def __init__(self, service: ImagineService, *, deliver: bool = True) -> None:
        self.events: list[JobEvent] = []
        self.deliver = deliver
        self.service = service
        self._changed = asyncio.Event()
        service.listen(TEST_PLATFORM, self)

    async def __call__(self, event: JobEvent) -> None:
        self.events.append(event)
        if self.deliver and isinstance(event, JobDone | JobFailed):
            await self.service.mark_delivered(event.job.id)
        self._changed.set()

    def final(self, job_id: str) -> list[JobEvent]:
        """The JobDone / JobFailed events seen for a job."""
        return [e for e in self.events
                if e.job.id == job_id and isinstance(e, JobDone | JobFailed)]

    async def wait(self, condition: Callable[[], bool], seconds: float = 10.0) -> None:
        """Wait until `condition()` holds, re-checking after every event."""
        async with asyncio.timeout(seconds):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def wait_final(self, job_id: str, seconds: float = 10.0) -> JobEvent:
        """Wait for the job's first JobDone or JobFailed."""
        await self.wait(lambda: bool(self.final(job_id)), seconds)
        return self.final(job_id)[0]


async def ledger_rows(service: ImagineService, job_id: str | None = None) -> list[dict[str, Any]]:
    """The ledger, optionally for one job."""
    sql = "SELECT * FROM ledger" + (" WHERE job_id = ?" if job_id else "") + " ORDER BY id"
    return [dict(row) for row in await service.db.read(sql, (job_id,) if job_id else ())]
