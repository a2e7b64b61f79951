"""Delivers job events to adapters: per platform (survives restarts) and per job (the CLI)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from bot.core.jobs import JobEvent

log = logging.getLogger(__name__)

Listener = Callable[[JobEvent], Awaitable[None]]


class EventBus:
    """Fan-out of job events. Each job's events reach a listener in order, one at a time;
    a slow or failing listener never blocks the dispatcher or other jobs."""

    def __init__(self) -> None:
        self._platform: dict[str, list[Listener]] = defaultdict(list)
        self._job_queues: dict[str, set[asyncio.Queue[JobEvent]]] = defaultdict(set)
        self._lanes: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def listen(self, platform: str, listener: Listener) -> None:
        """Receive every event of jobs whose reply target is on `platform`."""
        self._platform[platform].append(listener)

    def unlisten(self, platform: str, listener: Listener) -> None:
        """Stop delivering to `listener`."""
        if listener in self._platform.get(platform, []):
            self._platform[platform].remove(listener)

    def emit_to(self, listener: Listener, event: JobEvent) -> None:
        """Hand an event to one listener only, in the job's lane (replays)."""
        self._schedule([listener], event)


    def subscribe(self, job_id: str) -> asyncio.Queue[JobEvent]:
        """A queue that receives this job's events from now on."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._job_queues[job_id].add(queue)
        return queue

    def emit(self, event: JobEvent) -> None:
        """Hand an event to its listeners without waiting for them."""
        job = event.job
        for queue in self._job_queues.get(job.id, ()):
            queue.put_nowait(event)
        listeners = self._platform.get(job.target.platform, [])
        if listeners:
            self._schedule(list(listeners), event)

    def _schedule(self, listeners: list[Listener], event: JobEvent) -> None:
        job = event.job
        lane = self._lanes.setdefault(job.id, asyncio.Lock())
        task = asyncio.get_running_loop().create_task(self._deliver(lane, listeners, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, lane: asyncio.Lock, listeners: list[Listener], event: JobEvent) -> None:
        async with lane:  # asyncio.Lock is FIFO, so a job's events keep their order
            for listener in listeners:
                try:
                    await listener(event)
                except Exception:
                    log.exception("listener failed on %s for job %s",
                                  type(event).__name__, event.job.id)
        if event.job.state.finished and not lane.locked():
            self._lanes.pop(event.job.id, None)

    async def drain(self) -> None:
        """Wait until every event handed out so far has been delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
