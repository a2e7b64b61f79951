"""Runs queued jobs: fair order, per-backend concurrency, retries with backoff, events, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import random
import shutil
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.alerts import AlertWatch
from bot.core.backend import GenerationResult, ImageBackend
from bot.core.budget import BudgetBook
from bot.core.errors import (
    BackendError,
    BackendTransient,
    BackendUnavailable,
    ImagineError,
    NotCancellable,
    RateLimited,
)
from bot.core.events import EventBus, Listener
from bot.core.fair_queue import FairQueue
from bot.core.jobs import (
    CANCELLED,
    Job,
    JobDone,
    JobEvent,
    JobFailed,
    JobHandedBack,
    JobQueued,
    JobRunning,
    JobState,
)
from bot.core.ports import JobStore, QuotaLedger, Store, Transaction
from bot.core.quota import QuotaStatus
from bot.core.routing import Router
from bot.core.telemetry import Telemetry

log = logging.getLogger(__name__)

# What a user is told when an error of ours, not the backend's, stopped their job.
CRASHED = "Something went wrong on our side."

Finishing = Callable[[], Coroutine[Any, Any, None]]  # what ends a job once its backend answered


@dataclass(frozen=True)
class DispatchPolicy:
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    progress_interval_s: float = 2.0
    initial_eta_s: float = 10.0
    heartbeat_s: float = 10.0

    def backoff(self, attempt: int, error: BackendTransient, rng: random.Random) -> float:
        """Exponential backoff with jitter; a 429's Retry-After wins when it is longer."""
        delay = min(self.backoff_cap_s, self.backoff_base_s * 2**attempt) * rng.uniform(0.5, 1.5)
        if isinstance(error, RateLimited) and error.retry_after_s:
            delay = max(delay, min(error.retry_after_s, self.backoff_cap_s))
        return delay


def worth_announcing(last: int | None, position: int) -> bool:
    """Whether a waiting job should hear its new place: always within the first ten, further
    back only once it moved by a tenth. This bounds progress edits (and the chat API calls
    behind them) to about log(queue length) per job instead of one per job and tick."""
    if last is None:
        return True
    if last == position:
        return False
    return position <= 10 or abs(last - position) >= max(1, last // 10)


class _Lane:
    """One backend's fair queue, its workers, and its measured seconds per job."""

    def __init__(self, backend: ImageBackend, concurrency: int, initial_eta_s: float) -> None:
        self.backend = backend
        self.concurrency = concurrency
        self.queue = FairQueue()
        self.ready = asyncio.Semaphore(0)  # one release per push; cancelled jobs leave a spare
        self.mean_s = initial_eta_s
        self.running = 0  # backend calls in flight
        self.last_positions: dict[str, int] = {}

    def observe(self, seconds: float) -> None:
        self.mean_s = 0.8 * self.mean_s + 0.2 * seconds  # EMA of the backend's latency

    def eta(self, position: int) -> float:
        return -(-position // self.concurrency) * self.mean_s


class Dispatcher:
    """Owns the in-memory queues; SQLite stays the truth, so a restart loses nothing."""

    def __init__(
        self,
        *,
        db: Store,
        jobs: JobStore,
        quota: QuotaLedger,
        router: Router,
        bus: EventBus,
        concurrency: dict[str, int],
        data_dir: Path,
        policy: DispatchPolicy | None = None,
        rng: random.Random | None = None,
        telemetry: Telemetry | None = None,
        budget: BudgetBook | None = None,
        alerts: AlertWatch | None = None,
    ) -> None:
        self.db = db
        self.budget = budget  # records each job's money (None: not recorded)
        self.alerts = alerts  # checked after each job ends
        self.jobs = jobs
        self.quota = quota
        self.router = router
        self.bus = bus
        self.data_dir = data_dir
        self.policy = policy or DispatchPolicy()
        self.rng = rng or random.Random()
        self.telemetry = telemetry or Telemetry()
        self._lanes = {
            name: _Lane(backend, concurrency.get(name, 1), self.policy.initial_eta_s)
            for name, backend in router.backends.items()
        }
        self._jobs: dict[str, Job] = {}  # waiting, by id
        self._workers: list[asyncio.Task[None]] = []
        self._idle: set[asyncio.Task[Any]] = set()  # workers waiting for a job
        self._tasks: list[asyncio.Task[None]] = []  # positions, heartbeat
        self._side_tasks: set[asyncio.Task[None]] = set()
        self._unrecorded: dict[str, Job] = {}  # crashed jobs whose failure is not written yet
        self._started = False
        self._draining = False

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Take over what stopped or crashed processes left unfinished, then start the workers."""
        await self.jobs.register()
        claimed = await self.jobs.claim_orphans()
        pending = await self.jobs.unfinished()
        if pending:
            log.info("resuming %d unfinished jobs (%d taken over)", len(pending), len(claimed))
        for job in pending:
            self.enqueue(job)
        self._draining = False
        for lane in self._lanes.values():
            for _ in range(lane.concurrency):
                self._workers.append(asyncio.create_task(self._work(lane)))
        self._tasks.append(asyncio.create_task(self._report_positions()))
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        self._started = True

    async def stop(self, drain_s: float = 0.0) -> list[Job]:
        """Stop cleanly: take no new job, let running backend calls finish and be delivered
        for up to `drain_s`, then hand every unfinished job back to the queue (a successor
        takes it at once) and give up the lease. Returns the jobs handed back."""
        self._draining = True
        for task in self._idle:
            task.cancel()
        deadline = time.monotonic() + drain_s
        await _wait_until(deadline, self._workers)
        await _wait_until(deadline, self._side_tasks)  # the finishing of the last answers
        await self._cancel_all()
        if not self._started:
            return []
        self._started = False
        try:
            handed_back = await self.jobs.hand_back()
            for job in handed_back:
                self.telemetry.job_handed_back(job)
                self.bus.emit(JobHandedBack(job))
            await self.jobs.unregister()
        except Exception:  # the database may already be gone; the lock goes with the process
            log.warning("could not hand this process's jobs back", exc_info=True)
            return []
        if handed_back:
            log.info("handed %d unfinished jobs back to the queue", len(handed_back))
        return handed_back

    async def abandon(self) -> None:
        """Stop at once and leave the database as it is, as a killed process does: its jobs
        stay under its lease, which other processes take over once its lock is free."""
        self._draining = True
        await self._cancel_all()
        self.jobs.drop_lease()
        self._started = False

    async def _cancel_all(self) -> None:
        tasks = [*self._workers, *self._tasks, *self._side_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._tasks.clear()

    def enqueue(self, job: Job) -> None:
        """Put a stored job in its backend's fair queue and announce its place (once)."""
        if job.id in self._jobs:
            return
        lane = self._lanes.get(job.backend)
        if lane is None:
            try:
                lane = self._lanes[self.router.pick(job.request).name]
            except ImagineError as error:
                self._spawn(self._fail(job, error))
                return
        self._jobs[job.id] = job
        lane.queue.push(job.actor.scope + "/" + job.actor.user_id, job.id)
        lane.ready.release()
        position = lane.queue.position(job.id) or len(lane.queue)
        lane.last_positions[job.id] = position
        self.bus.emit(JobQueued(job, position, lane.eta(position)))

    async def cancel(self, job: Job) -> Job:
        """Cancel a queued job and refund it, whichever process queued it; a running job cannot
        be cancelled (its backend call cannot be recalled)."""
        def cancel(conn: Transaction) -> bool:
            if not self.jobs.cancel_queued(conn, job.id):
                return False
            self.quota.refund(conn, job.id)
            return True

        if not await self.db.transaction(cancel):
            raise NotCancellable()
        self._forget(job.id)
        cancelled = await self.jobs.get(job.id) or job
        self._announce_end(cancelled)
        return cancelled

    def _forget(self, job_id: str) -> None:
        """Drop a job that ended elsewhere from this process's queue (its slot stays spare)."""
        job = self._jobs.pop(job_id, None)
        lane = self._lanes.get(job.backend) if job is not None else None
        if lane is not None:
            lane.queue.remove(job_id)
            lane.last_positions.pop(job_id, None)

    def _announce_end(self, cancelled: Job) -> None:
        self.telemetry.job_ended(cancelled)
        self.telemetry.credits("refunded", cancelled.cost)
        self.bus.emit(JobFailed(cancelled, cancelled.error or CANCELLED, True))

    def waiting(self, job_id: str) -> tuple[int, float] | None:
        """(place in its backend's queue, estimated seconds) of a job waiting in this process."""
        job = self._jobs.get(job_id)
        lane = self._lanes.get(job.backend) if job is not None else None
        position = lane.queue.position(job_id) if lane is not None else None
        if lane is None or position is None:
            return None
        return position, lane.eta(position)

    def queue_depth(self) -> dict[str, int]:
        """Waiting jobs per backend."""
        return {name: len(lane.queue) for name, lane in self._lanes.items()}

    def running(self) -> dict[str, int]:
        """Backend calls in flight per backend."""
        return {name: lane.running for name, lane in self._lanes.items()}

    def expected_wait(self, backend: str) -> float:
        """Seconds a job queued on `backend` now would wait before its call starts: the jobs
        ahead of it in whole rounds of the backend's concurrency, at its measured seconds per
        job (0 while a slot is free). [routing] overflow_after_s compares against this."""
        lane = self._lanes.get(backend)
        if lane is None:
            return 0.0
        return (len(lane.queue) + lane.running) // lane.concurrency * lane.mean_s

    # --- delivery after a restart -------------------------------------------------------------

    def replay(self, platform: str, listener: Listener) -> None:
        """Tell a new listener where `platform`'s waiting jobs stand and hand it the final
        event of every result a crash left undelivered."""
        for lane in self._lanes.values():
            for job_id, position in lane.queue.positions().items():
                job = self._jobs.get(job_id)
                if job is not None and job.target.platform == platform:
                    self.bus.emit_to(listener, JobQueued(job, position, lane.eta(position)))
        self._spawn(self._replay_undelivered(platform, listener))

    async def _replay_undelivered(self, platform: str, listener: Listener) -> None:
        for job in await self.jobs.undelivered(platform):
            event = await self.final_event(job)
            if event is not None:
                log.info("replaying undelivered job %s to %s", job.id, platform)
                self.bus.emit_to(listener, event)

    async def final_event(self, job: Job) -> JobEvent | None:
        """The JobDone or JobFailed that a finished job ended with."""
        if job.state is JobState.DONE:
            status = await self.quota.status(job.actor.scope, job.actor.user_id,
                                             is_admin=job.actor.is_admin)
            return JobDone(job, job.images, status.balance)
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            return JobFailed(job, job.error or "The job failed.", job.refunded)
        return None

    # --- the work -------------------------------------------------------------------------------

    async def _work(self, lane: _Lane) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._draining:
            self._idle.add(me)
            try:
                await lane.ready.acquire()
            finally:
                self._idle.discard(me)
            job_id = lane.queue.pop()
            if job_id is None:
                continue
            lane.last_positions.pop(job_id, None)
            job = self._jobs.pop(job_id, None)
            if job is None:
                continue
            try:
                finishing = await self._run(lane, job)
            except asyncio.CancelledError:
                raise
            except Exception:  # never let one job kill a worker
                log.exception("job %s crashed the dispatcher", job.id)
                await self._crashed(job)
                continue
            if finishing is not None:
                # The backend slot is free as soon as the answer is in: saving the images
                # and the commit run beside the next job, not in front of it.
                self._spawn(self._guarded(job, finishing))

    async def _run(self, lane: _Lane, job: Job) -> Finishing | None:
        """Hold the backend slot for one call; returns the work that finishes the job."""
        taken_at, started = time.time(), time.monotonic()
        # The backend call starts while the job is marked running, so that database round
        # trip is off the job's path. If the job turns out to be final or another process's
        # already (a rare race), the call is abandoned at once.
        generation = asyncio.ensure_future(self._generate(lane.backend, job))
        try:
            running = await self.jobs.mark_running(job.id, lane.backend.name, taken_at)
        except BaseException:
            _abandon(generation)
            raise
        if running is None:
            _abandon(generation)
            return None
        self.telemetry.job_started(running, taken_at - running.created_at)
        self.bus.emit(JobRunning(running))
        lane.running += 1
        try:
            result = await generation
        except ImagineError as error:
            self.telemetry.backend_call(lane.backend.name, job.request.model,
                                        time.monotonic() - started, ok=False)
            return functools.partial(self._fail, running, error)
        finally:
            lane.running -= 1
        seconds = time.monotonic() - started
        lane.observe(seconds)
        self.telemetry.backend_call(lane.backend.name, job.request.model, seconds, ok=True)
        return functools.partial(self._finish, lane, running, result, seconds)

    async def _guarded(self, job: Job, work: Finishing) -> None:
        # `work` makes its coroutine only here: a task cancelled before it first runs (a stop)
        # then leaves no coroutine behind that was never awaited.
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("finishing job %s failed", job.id)
            await self._crashed(job)

    async def _finish(self, lane: _Lane, running: Job, result: GenerationResult,
                      seconds: float) -> None:
        """Save the images, then mark the job done and charge it in one transaction."""
        actor = running.actor
        paths = self._paths(running, result)
        def charge(conn: Transaction) -> QuotaStatus | None:
            if not self.jobs.finish(conn, running.id, JobState.DONE, images=paths,
                                    backend_seconds=seconds):
                return None  # already final (cancelled or failed meanwhile)
            self.quota.commit(conn, running.id)
            if self.budget is not None:
                self.budget.money(conn, running.id, running.request, lane.backend.name, result,
                                  seconds)
            if result.remaining_credits is not None:
                self.jobs.record_credits(conn, lane.backend.name, result.remaining_credits)
            return self.quota.status_in(conn, actor.scope, actor.user_id,
                                        is_admin=actor.is_admin)

        # The images are written before the transaction, so the disk is never waited on under
        # the write lock that other processes share (in the same thread hop, as it is the
        # hot path). A crash between the two leaves files that the job's rerun overwrites.
        status = await self.db.transaction(charge, before=lambda: self._save(paths, result))
        if status is None:  # its images are nobody's: remove them
            await asyncio.to_thread(shutil.rmtree, self.data_dir / "images" / running.id, True)
            return
        done = dataclasses.replace(running, state=JobState.DONE, images=paths,
                                   finished_at=time.time(), backend_seconds=seconds)
        self.telemetry.job_ended(done)
        self.telemetry.credits("charged", done.cost)
        if result.remaining_credits is not None:
            self.telemetry.remaining_credits(lane.backend.name, result.remaining_credits)
        log.info("job %s done in %.2f s on %s (%d images)", done.id, seconds,
                 lane.backend.name, len(paths))
        self.bus.emit(JobDone(done, paths, status.balance))
        if self.alerts is not None:
            self.alerts.nudge()

    async def _generate(self, backend: ImageBackend, job: Job) -> GenerationResult:
        attempt = 0
        while True:
            try:
                return await backend.generate(job.request)
            except BackendTransient as error:
                if attempt >= self.policy.max_retries:
                    raise
                delay = self.policy.backoff(attempt, error, self.rng)
                log.warning("job %s: %s (status %s), retry %d in %.1f s", job.id,
                            type(error).__name__, error.status, attempt + 1, delay)
                self.telemetry.retried(backend.name)
                attempt += 1
                await asyncio.sleep(delay)
            except BackendUnavailable as error:
                log.error("ADMIN: backend %s refuses requests (status %s): %s. Check its API "
                          "key and credits.", backend.name, error.status, error.detail)
                raise

    async def _crashed(self, job: Job) -> None:
        """Fail a job that an error of ours stopped, with a refund. When even that cannot be
        written (the database refuses writes), the heartbeat tries again; the caller goes on."""
        try:
            await self._fail(job, BackendError(CRASHED))
        except Exception:
            log.exception("could not record job %s as failed; the heartbeat tries again", job.id)
            self._unrecorded[job.id] = job

    async def _fail(self, job: Job, error: ImagineError) -> None:

        def refund(conn: Transaction) -> bool:
            refunded = self.quota.refund(conn, job.id)
            error.refunded = refunded
            if not self.jobs.finish(conn, job.id, JobState.FAILED, error=error.sentence(),
                                    refunded=refunded):
                raise _AlreadyFinished()  # roll the refund back: the job was already final
            return refunded

        try:
            refunded = await self.db.transaction(refund)
        except _AlreadyFinished:
            return
        log.info("job %s failed: %s (%s)", job.id, type(error).__name__,
                 getattr(error, "detail", "") or error.user_message)
        failed = await self.jobs.get(job.id) or job
        self.telemetry.job_ended(failed)
        if refunded:
            self.telemetry.credits("refunded", failed.cost)
        self.bus.emit(JobFailed(failed, error.sentence(), refunded))
        if self.alerts is not None:
            self.alerts.nudge()

    def _paths(self, job: Job, result: GenerationResult) -> tuple[Path, ...]:
        folder = self.data_dir / "images" / job.id
        return tuple(folder / f"{index + 1}-{image.seed}.{image.extension}"
                     for index, image in enumerate(result.images))

    def _save(self, paths: tuple[Path, ...], result: GenerationResult) -> None:
        for path, image in zip(paths, result.images, strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".part")
            tmp.write_bytes(image.data)
            tmp.replace(path)  # atomic: a crash never leaves half an image behind

    async def _report_positions(self) -> None:
        """Every few seconds, tell waiting jobs whose place in the queue changed enough."""
        while True:
            await asyncio.sleep(self.policy.progress_interval_s)
            for lane in self._lanes.values():
                for job_id, position in lane.queue.positions().items():
                    if not worth_announcing(lane.last_positions.get(job_id), position):
                        continue
                    lane.last_positions[job_id] = position
                    job = self._jobs.get(job_id)
                    if job is not None:
                        self.bus.emit(JobQueued(job, position, lane.eta(position)))

    async def _heartbeat(self) -> None:
        """Renew this process's lease, and take over the jobs of a sibling process that died."""
        while True:
            await asyncio.sleep(self.policy.heartbeat_s)
            try:
                if not await self.jobs.heartbeat():
                    log.warning("this process's row in the processes table had been removed; "
                                "it was written again")
                for job in await self.jobs.claim_orphans():
                    log.warning("took over job %s from a process that is gone", job.id)
                    self.enqueue(job)
                for job in await self.jobs.finished_among(list(self._jobs)):
                    log.info("job %s was %s elsewhere; dropped from the queue", job.id,
                             job.state.value)
                    self._forget(job.id)
                    self._announce_end(job)
                while self._unrecorded:
                    job_id, job = next(iter(self._unrecorded.items()))
                    await self._fail(job, BackendError(CRASHED))
                    del self._unrecorded[job_id]
            except Exception:
                log.exception("heartbeat failed")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)


class _AlreadyFinished(Exception):
    """Raised inside a transaction to roll it back when the job was already final."""


async def _wait_until(deadline: float, tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Wait for the tasks (a set may grow meanwhile) until they are done or the deadline."""
    while pending := [task for task in tasks if not task.done()]:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await asyncio.wait(pending, timeout=left)


def _abandon(call: asyncio.Future[Any]) -> None:
    """Cancel a call whose result is no longer wanted, without a 'never retrieved' warning."""
    call.cancel()
    if call.done() and not call.cancelled():
        call.exception()
