"""One generation at a time on the device; the rest wait in arrival order.

A single thread owns the GPU (a ThreadPoolExecutor with one worker); an asyncio task hands it
jobs first in, first out. A job whose client went away is skipped if it is still waiting,
and stopped at its next denoising step if it is running.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bot.worker")

_ids = itertools.count(1)


@dataclass
class WorkItem:
    """One request's work: `run` is called on the GPU thread with the job's cancel check."""

    run: Callable[[Callable[[], bool]], Any]
    label: str = ""
    id: int = field(default_factory=lambda: next(_ids))
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        """Ask the job to stop (skipped if waiting, stopped at its next step if running)."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class GenerationQueue:
    """A FIFO of jobs run one at a time on one thread; started lazily in the running loop."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagine-gpu")
        self._waiting: asyncio.Queue[tuple[WorkItem, asyncio.Future[Any]]] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._running: WorkItem | None = None
        self._waiting_count = 0
        self.cancelled = 0  # jobs stopped because their client went away

    @property
    def depth(self) -> int:
        """Jobs waiting plus the one running."""
        return self._waiting_count + (1 if self._running is not None else 0)

    async def submit(self, job: WorkItem) -> Any:
        """Queue `job` and wait for its result; cancelling the wait cancels the job."""
        waiting = self._ensure_started()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting_count += 1
        await waiting.put((job, future))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            job.cancel()
            raise

    async def close(self) -> None:
        """Stop taking jobs, cancel the running one and release the GPU thread."""
        if self._running is not None:
            self._running.cancel()
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
            self._consumer = None
        await asyncio.to_thread(self._executor.shutdown, True)

    def _ensure_started(self) -> asyncio.Queue[tuple[WorkItem, asyncio.Future[Any]]]:
        if self._waiting is None or self._consumer is None or self._consumer.done():
            self._waiting = asyncio.Queue()
            self._consumer = asyncio.create_task(self._consume(self._waiting))
        return self._waiting

    async def _consume(self, waiting: asyncio.Queue[tuple[WorkItem, asyncio.Future[Any]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job, future = await waiting.get()
            self._waiting_count -= 1
            if job.cancelled or future.done():
                self._skip(job, future)
                continue
            self._running = job
            try:
                result = await loop.run_in_executor(
                    self._executor, job.run, job.cancel_event.is_set
                )
            except Exception as exc:
                if job.cancelled:
                    self._skip(job, future)
                elif not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self._running = None

    def _skip(self, job: WorkItem, future: asyncio.Future[Any]) -> None:
        self.cancelled += 1
        log.info("job %d (%s) cancelled: its client went away", job.id, job.label)
        if not future.done():
            future.cancel()
