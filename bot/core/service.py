"""ImagineService: the one API every chat adapter and the command line talk to."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.core.alerts import AlertWatch
from bot.core.budget import BudgetBook, BudgetStatus
from bot.core.catalog import SEED_MAX, Catalog
from bot.core.defaults import (
    NO_PROVENANCE,
    Provenance,
    build_with_defaults,
    rerolled,
    workspace_word,
)
from bot.core.dispatcher import Dispatcher
from bot.core.errors import (
    BudgetExhausted,
    ImagineError,
    JobNotFound,
    NotAllowed,
    QueueFull,
    RequestError,
    ShuttingDown,
)
from bot.core.events import EventBus, Listener
from bot.core.flags import parse_flags
from bot.core.jobs import Actor, Job, JobAction, JobState, ReplyTarget
from bot.core.policy import ContentPolicy
from bot.core.ports import DefaultsStore, JobStore, QuotaLedger, Store, Transaction
from bot.core.quota import QuotaStatus, request_cost
from bot.core.request import ImagineRequest, build_request
from bot.core.routing import Router
from bot.core.stats import StatsReport, StatsStore, summarize
from bot.core.user_settings import UserSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSettings:
    max_queued_per_user: int = 5
    variation_strength: float = 0.3  # how far Vary moves from the image (worker only)
    retention_days: float = 30.0


@dataclass(frozen=True)
class QueuedJob:
    """One of a user's unfinished jobs; place and ETA when it waits in this process's queue."""

    job: Job
    place: int | None = None
    eta_s: float | None = None


@dataclass(frozen=True)
class QueueView:
    """What /queue shows: the user's jobs, oldest first, and (queued, running) per backend."""

    mine: tuple[QueuedJob, ...]
    totals: Mapping[str, tuple[int, int]]


class ImagineService:
    """Validates, charges, queues and tracks jobs; adapters only convert to and from chat."""

    def __init__(
        self,
        *,
        db: Store,
        catalog: Catalog,
        quota: QuotaLedger,
        jobs: JobStore,
        router: Router,
        dispatcher: Dispatcher,
        bus: EventBus,
        policy: ContentPolicy,
        settings: ServiceSettings,
        data_dir: Path,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        health_interval_s: float = 30.0,
        budget: BudgetBook | None = None,
        alerts: AlertWatch | None = None,
        stats: StatsStore | None = None,
        defaults: DefaultsStore | None = None,
    ) -> None:
        self.budget = budget  # money per job and the [budget] limit (None: neither)
        self.alerts = alerts  # admin alerts; adapters add their admin channel to it
        self._stats = stats
        self.db = db
        self.catalog = catalog
        self.quota = quota
        self.jobs = jobs
        self.router = router
        self.dispatcher = dispatcher
        self.bus = bus
        self.policy = policy
        self.settings = settings
        self.data_dir = data_dir
        self.user_settings = UserSettings(defaults, catalog)  # /settings
        self._on_stop = on_stop
        self._health_interval_s = health_interval_s
        self._background: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the backends, pick up unfinished jobs from the database and start dispatching."""
        await self.router.check_health()
        await self.purge_expired()
        await self.dispatcher.start()
        self._background.append(asyncio.create_task(self._housekeeping()))

    @property
    def stopping(self) -> bool:
        """Whether stop() has begun: new requests are refused with a sentence."""
        return self._stopping

    async def stop(self, drain_s: float = 0.0, *, deliver_s: float = 10.0) -> None:
        """Refuse new requests, let running jobs finish and be delivered for up to `drain_s`,
        hand the rest back to the queue for the next process, deliver the last events
        (`deliver_s` more at most), and close everything."""
        self._stopping = True
        deadline = time.monotonic() + drain_s
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        await self.dispatcher.stop(drain_s)
        left = max(deadline - time.monotonic(), 0.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.bus.drain(), timeout=left + deliver_s)
        if self.alerts is not None:
            await self.alerts.close()
        await self.router.aclose()
        if self._on_stop is not None:
            await self._on_stop()
        await self.db.close()

    async def purge_expired(self) -> int:
        """Delete image files older than the retention setting; returns how many jobs lost them."""
        before = time.time() - self.settings.retention_days * 86400
        expired = await self.jobs.expired_images(before)
        for job in expired:
            await asyncio.to_thread(shutil.rmtree, self.data_dir / "images" / job.id, True)
            await self.jobs.clear_images(job.id)
        if expired:
            log.info("retention: removed the images of %d jobs", len(expired))
        return len(expired)

    async def _housekeeping(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self._health_interval_s)
            ticks += 1
            try:
                await self.router.check_health()
                if ticks % 120 == 0:  # about hourly at the default interval
                    await self.purge_expired()
            except Exception:
                log.exception("housekeeping failed")

    def listen(self, platform: str, listener: Listener) -> None:
        """Receive every event of `platform`'s jobs from now on; first, the place of each job
        already waiting and any result a restart left undelivered (so the listener may
        register before or after start())."""
        self.bus.listen(platform, listener)
        self.dispatcher.replay(platform, listener)

    def unlisten(self, platform: str, listener: Listener) -> None:
        """Stop sending `platform`'s events to `listener` (an adapter that closed)."""
        self.bus.unlisten(platform, listener)

    def subscribe(self, job_id: str) -> Any:
        """An asyncio.Queue of this job's events (for the command line)."""
        return self.bus.subscribe(job_id)

    # --- requests ---------------------------------------------------------------------------

    async def imagine(
        self,
        actor: Actor,
        text: str,
        options: Mapping[str, Any] | None,
        target: ReplyTarget,
        *,
        nsfw_allowed: bool = False,
    ) -> Job:
        """Validate, check policy and quota, store and queue one job. Raises ImagineError."""
        built = build_with_defaults(text, options, self.catalog,
                                    await self.user_settings.layers(actor),
                                    word=workspace_word(actor.platform))
        return await self._submit(actor, built.request, target, nsfw_allowed=nsfw_allowed,
                                  provenance=built.provenance)

    async def reroll(self, actor: Actor, job_id: str, target: ReplyTarget, *,
                     nsfw_allowed: bool = False) -> Job:
        """The same request with a new random seed; the presser pays."""
        parent = await self.get_job(job_id)
        request = parent.request.model_copy(
            update={"seed": secrets.randbelow(SEED_MAX + 1), "variation_seed": None,
                    "variation_strength": None})
        return await self._submit(actor, request, target, parent=parent, action=JobAction.REROLL,
                                  nsfw_allowed=nsfw_allowed,
                                  provenance=rerolled(parent.provenance))

    async def vary(self, actor: Actor, job_id: str, target: ReplyTarget, *, index: int = 0,
                   nsfw_allowed: bool = False) -> Job:
        """A close variation of image `index`: a variation seed on the worker, else seed + 1."""
        parent = await self.get_job(job_id)
        if not 0 <= index < parent.request.samples:
            raise ImagineError(f"That result has no image {index + 1}.")
        seed = (parent.request.seed + index) % (SEED_MAX + 1)
        backend = self.router.pick(parent.request)
        update: dict[str, Any]
        if backend.supports_variation(parent.request.model):
            update = {"seed": seed, "samples": 1,
                      "variation_seed": secrets.randbelow(SEED_MAX + 1),
                      "variation_strength": self.settings.variation_strength}
        else:
            update = {"seed": (seed + 1) % (SEED_MAX + 1), "samples": 1,
                      "variation_seed": None, "variation_strength": None}
        request = parent.request.model_copy(update=update)
        return await self._submit(actor, request, target, parent=parent, action=JobAction.VARY,
                                  nsfw_allowed=nsfw_allowed,
                                  provenance=rerolled(parent.provenance, new_seed=False))

    async def edit(self, actor: Actor, job_id: str, prompt: str, negative_prompt: str | None,
                   target: ReplyTarget, *, nsfw_allowed: bool = False) -> Job:
        """A new job from an edited prompt, keeping the seed and the other parameters except
        those the new prompt's own flags set (a new --model keeps only seed, size and count)."""
        if not isinstance(prompt, str):
            raise RequestError("prompt", prompt, "text")
        parent = await self.get_job(job_id)
        keep = parent.request.model_dump(
            exclude={"prompt", "negative_prompt", "variation_seed", "variation_strength",
                     "aspect_ratio"})
        if parent.request.aspect_ratio != "custom":
            keep["aspect_ratio"] = parent.request.aspect_ratio
            keep.pop("width"), keep.pop("height")
        flagged = set(parse_flags(prompt).options)
        if flagged & {"aspect_ratio", "width", "height"}:
            for name in ("aspect_ratio", "width", "height"):
                keep.pop(name, None)
        if "model" in flagged:
            keep = {k: v for k, v in keep.items()
                    if k in ("seed", "samples", "aspect_ratio", "width", "height")}
        keep = {k: v for k, v in keep.items() if k not in flagged}
        if negative_prompt:
            keep["negative_prompt"] = negative_prompt
        request = build_request(prompt, keep, self.catalog)
        typed = frozenset(flagged | ({"negative_prompt"} if negative_prompt else set()))
        provenance = rerolled(parent.provenance, new_seed=False, typed=typed, kept=frozenset(keep))
        return await self._submit(actor, request, target, parent=parent, action=JobAction.EDIT,
                                  nsfw_allowed=nsfw_allowed, provenance=provenance)

    async def _submit(self, actor: Actor, request: ImagineRequest, target: ReplyTarget, *,
                      parent: Job | None = None, action: JobAction = JobAction.IMAGINE,
                      nsfw_allowed: bool, provenance: Provenance = NO_PROVENANCE) -> Job:
        if self._stopping:
            raise ShuttingDown()
        self.policy.check(request.prompt, nsfw_allowed=nsfw_allowed)
        backend = self.router.pick(request)
        if parent is not None and parent.target.message_id and not target.reply_to_message_id:
            target = dataclasses.replace(target, reply_to_message_id=parent.target.message_id)
        job = Job(
            id=uuid.uuid4().hex[:12], actor=actor, request=request,
            cost=request_cost(request, self.catalog), state=JobState.QUEUED, target=target,
            created_at=time.time(), backend=backend.name,
            parent_id=parent.id if parent else None, action=action, provenance=provenance,
        )

        def store(conn: Transaction) -> None:  # the charge and the job row land together
            # Counted inside the transaction, so requests arriving together (from any
            # process) cannot all slip under the cap.
            waiting = self.jobs.count_queued(conn, actor.scope, actor.user_id)
            if waiting >= self.settings.max_queued_per_user:
                raise QueueFull(
                    f"You already have {waiting} images waiting (the limit is "
                    f"{self.settings.max_queued_per_user}); wait for one to finish. "
                    "Nothing was charged."
                )
            self.quota.reserve(conn, scope=actor.scope, user_id=actor.user_id,
                               credits=job.cost, job_id=job.id, is_admin=actor.is_admin)
            self.jobs.insert(conn, job)
            if self.budget is not None:  # the team's money binds admins too
                self.budget.admit(conn, job.id, job.backend,
                                  self.budget.estimate(request, job.backend))

        try:
            await self.db.transaction(store)
        except BudgetExhausted:
            if self.alerts is not None:
                self.alerts.nudge(refused=True)
            # [routing] auto: the worker takes what the budget refuses Segmind, if it can.
            instead = self.router.instead_of_paid(request)
            if instead is None or instead.name == job.backend:
                raise
            backend = instead
            job = dataclasses.replace(job, backend=instead.name)
            await self.db.transaction(store)
        log.info("job %s queued: %s by %s/%s on %s, %d credits", job.id, request.summary(),
                 actor.scope, actor.user_id, backend.name, job.cost)
        self.dispatcher.telemetry.job_submitted(job)
        self.dispatcher.enqueue(job)
        return job

    # --- jobs -------------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job:
        """The job, or JobNotFound for an unknown or deleted one."""
        job = await self.jobs.get(job_id)
        if job is None or job.deleted:
            raise JobNotFound()
        return job

    async def cancel(self, actor: Actor, job_id: str) -> Job:
        """The owner (or an admin) cancels a queued job; its credits are refunded."""
        job = await self.get_job(job_id)
        _require_owner_or_admin(actor, job)
        return await self.dispatcher.cancel(job)

    async def queue(self, actor: Actor) -> QueueView:
        """The actor's waiting and running jobs (with place and ETA), and totals per backend."""
        mine = []
        for job in reversed(await self.jobs.of_user(actor.scope, actor.user_id, unfinished=True,
                                                   limit=self.settings.max_queued_per_user * 4)):
            place = self.dispatcher.waiting(job.id) if job.state is JobState.QUEUED else None
            mine.append(QueuedJob(job, *(place or (None, None))))
        totals = {name: (counts.get(JobState.QUEUED, 0), counts.get(JobState.RUNNING, 0))
                  for name, counts in (await self.jobs.unfinished_by_backend()).items()}
        return QueueView(tuple(mine), totals)

    async def history(self, actor: Actor, limit: int = 10) -> list[Job]:
        """The actor's last `limit` jobs, newest first (deleted and expired ones included)."""
        return await self.jobs.of_user(actor.scope, actor.user_id, limit=limit)

    async def again(self, actor: Actor, job_id: str, target: ReplyTarget, *,
                    nsfw_allowed: bool = False) -> Job:
        """Run an earlier job's request again as it was: same prompt, options and seed."""
        parent = await self.get_job(job_id)
        return await self._submit(actor, parent.request, target, nsfw_allowed=nsfw_allowed,
                                  parent=parent, action=JobAction.AGAIN,
                                  provenance=parent.provenance)

    async def delete(self, actor: Actor, job_id: str) -> Job:
        """The owner or an admin deletes a result: its files go, its buttons stop working."""
        job = await self.get_job(job_id)
        _require_owner_or_admin(actor, job)
        await self.jobs.mark_deleted(job.id)
        shutil.rmtree(self.data_dir / "images" / job.id, ignore_errors=True)
        log.info("job %s deleted by %s/%s", job.id, actor.scope, actor.user_id)
        return job

    async def mark_delivered(self, job_id: str) -> None:
        """The adapter posted the final result; a restart will not post it again."""
        await self.jobs.mark_delivered(job_id)

    async def update_target(self, job_id: str, target: ReplyTarget) -> None:
        """Store where the job's progress message lives (for edits after a restart)."""
        await self.jobs.update_target(job_id, target)

    # --- quota ------------------------------------------------------------------------------

    async def quota_status(self, actor: Actor) -> QuotaStatus:
        """The actor's balance, allowance, period and reset time."""
        return await self.quota.status(actor.scope, actor.user_id, is_admin=actor.is_admin)

    # --- money and stats ---------------------------------------------------------------------

    async def budget_status(self) -> BudgetStatus | None:
        """The [budget] period's spend against its limit (None when money is not tracked)."""
        return await self.budget.status() if self.budget is not None else None

    async def stats(self, since: datetime, until: datetime | None = None) -> StatsReport:
        """What happened between `since` and `until` (now), for /stats."""
        until = until or datetime.now(UTC)
        if self._stats is None:
            raise ImagineError("Statistics are not available in this setup.")
        facts = await self._stats.jobs_between(since.timestamp(), until.timestamp())
        return summarize(facts, since, until, await self.budget_status())

    def describe_variation(self, job: Job) -> str:
        """How a Vary job varied its parent, for Info."""
        if job.action is not JobAction.VARY:
            return ""
        if job.request.variation_seed is not None:
            return (f"variation seed {job.request.variation_seed} at strength "
                    f"{job.request.variation_strength:g} (worker)")
        return "the neighbouring seed (the service has no variation input)"


def _require_owner_or_admin(actor: Actor, job: Job) -> None:
    if actor.is_admin:
        return
    if actor.platform != job.actor.platform or actor.user_id != job.actor.user_id:
        raise NotAllowed()
