"""A job's progress message, paced: chat APIs rate-limit edits, and a queue of a hundred jobs
would otherwise edit a hundred messages on every tick.

PacedProgress decides when; the adapter's `show` decides how (Discord edits the interaction's
response or the channel message, Slack posts the message first and then updates it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.core.jobs import Job

log = logging.getLogger(__name__)

Show = Callable[[Job, str], Awaitable[None]]

_REMEMBER_FINISHED = 2048  # late events for this many finished jobs are recognised and dropped


@dataclass
class _Line:
    """One job's progress line: when it was last shown, and the newest text not yet shown."""

    last_shown: float = float("-inf")
    shown_once: bool = False
    pending: tuple[Job, str] | None = None
    flush: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class PacedProgress:
    """Shows each job's newest progress text at most once per `interval_s`.

    An update within the interval is held, and replaced by any newer one, until the interval
    has passed; the last word (`final`) also waits for it. `now` skips the wait (the bot is
    stopping). After `final` or `forget`, a job's late updates are dropped."""

    def __init__(self, show: Show, *, interval_s: float = 2.0) -> None:
        self.show = show
        self.interval_s = interval_s
        self._lines: dict[str, _Line] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()

    def shown(self, job_id: str) -> bool:
        """Whether anything was shown for this job yet (or it already finished)."""
        line = self._lines.get(job_id)
        return job_id in self._finished or (line is not None and line.shown_once)

    async def update(self, job: Job, text: str) -> None:
        """Show `text` now if the interval has passed, else when it has (unless newer text
        comes first). Errors of an immediate show reach the caller."""
        line = self._line(job.id)
        if line is None:
            return
        async with line.lock:
            wait = line.last_shown + self.interval_s - time.monotonic()
            if wait <= 0 and line.flush is None:
                await self._show(line, job, text)
                return
            line.pending = (job, text)
            if line.flush is None:
                line.flush = asyncio.create_task(self._flush_later(job.id, line, max(wait, 0.0)))

    async def first(self, job: Job, text: str) -> None:
        """Show `text` unless something was shown already (errors reach the caller)."""
        line = self._line(job.id)
        if line is None:
            return
        async with line.lock:
            if not line.shown_once:
                await self._show(line, job, text)

    async def now(self, job: Job, text: str) -> None:
        """Show `text` at once, dropping what was held."""
        line = self._line(job.id)
        if line is None:
            return
        async with line.lock:
            self._drop_pending(line)
            await self._show(line, job, text)

    async def final(self, job: Job, text: str) -> None:
        """The last text for this job, once the interval allows; later updates are dropped."""
        line = self._line(job.id)
        if line is None:
            return
        self._finish(job.id)
        async with line.lock:
            self._drop_pending(line)
            wait = line.last_shown + self.interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._show(line, job, text)

    def forget(self, job_id: str) -> None:
        """Show nothing more for this job (its message was replaced or deleted)."""
        line = self._lines.get(job_id)
        if line is not None:
            self._drop_pending(line)
        self._finish(job_id)

    async def close(self) -> None:
        """Drop every held update."""
        for line in self._lines.values():
            self._drop_pending(line)

    def _line(self, job_id: str) -> _Line | None:
        if job_id in self._finished:
            return None
        return self._lines.setdefault(job_id, _Line())

    def _finish(self, job_id: str) -> None:
        self._lines.pop(job_id, None)
        self._finished[job_id] = None
        while len(self._finished) > _REMEMBER_FINISHED:
            self._finished.popitem(last=False)

    async def _show(self, line: _Line, job: Job, text: str) -> None:
        line.last_shown = time.monotonic()
        await self.show(job, text)
        line.shown_once = True  # only once it worked: `first` must retry a refused post

    async def _flush_later(self, job_id: str, line: _Line, wait: float) -> None:
        await asyncio.sleep(wait)
        async with line.lock:
            line.flush = None
            pending, line.pending = line.pending, None
            if pending is None or job_id in self._finished:
                return
            try:
                await self._show(line, *pending)
            except Exception:  # nobody awaits this task: say it here
                log.warning("a held progress edit for job %s failed", job_id, exc_info=True)

    @staticmethod
    def _drop_pending(line: _Line) -> None:
        line.pending = None
        if line.flush is not None and line.flush is not asyncio.current_task():
            line.flush.cancel()
        line.flush = None
