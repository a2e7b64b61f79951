"""Wires settings into a running ImagineService: database, backends, router, dispatcher."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import httpx

from bot.backends.segmind import SegmindBackend
from bot.backends.worker import worker_backend
from bot.config import Settings
from bot.core.alerts import AlertWatch
from bot.core.backend import ImageBackend
from bot.core.budget import BudgetBook, BudgetRules
from bot.core.dispatcher import Dispatcher, DispatchPolicy
from bot.core.errors import ImagineError
from bot.core.events import EventBus
from bot.core.policy import ContentPolicy
from bot.core.quota import QuotaRules
from bot.core.routing import Router
from bot.core.service import ImagineService, ServiceSettings
from bot.core.telemetry import Telemetry
from bot.store.budget_repo import BudgetRepository
from bot.store.db import Database
from bot.store.jobs_repo import JobRepository
from bot.store.quota_repo import QuotaRepository
from bot.store.settings_repo import SettingsRepository
from bot.store.stats_repo import StatsRepository

DB_NAME = "imagine.db"


def build_backends(settings: Settings, client: httpx.AsyncClient) -> dict[str, ImageBackend]:
    """Segmind when SEGMIND_API_KEY is set, the worker when [worker] url is set."""
    models = settings.build_catalog().names
    backends: dict[str, ImageBackend] = {}
    api_key = settings.secret("segmind_api_key")
    if api_key:
        backends["segmind"] = SegmindBackend(
            name="segmind", base_url=settings.segmind.base_url, api_key=api_key,
            timeout_s=settings.segmind.timeout_s, models=models, client=client,
        )
    if settings.worker.url:
        served = tuple(settings.worker.models) or models
        backends["worker"] = worker_backend(
            settings.worker.url, settings.secret("worker_api_key"), settings.worker.timeout_s,
            served, client=client,
        )
    return backends


async def build_service(settings: Settings, telemetry: Telemetry | None = None) -> ImagineService:
    """Open the database and build the whole core; call start() then stop() on the result."""
    data_dir = settings.storage.path
    db = await Database(data_dir / DB_NAME).open()
    catalog = settings.build_catalog()
    client = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128)
    )
    backends = build_backends(settings, client)
    router = Router(backends, {m: settings.routing.route(m) for m in catalog.names},
                    overflow_after_s=settings.routing.overflow_after_s)
    quota = QuotaRepository(db, QuotaRules(
        allowance=settings.quota.default_allowance, period=settings.quota.period,
        admins_unlimited=settings.quota.admins_unlimited,
    ))
    jobs = JobRepository(db, data_dir)
    bus = EventBus()
    d = settings.dispatch
    money = BudgetRepository(db)
    b = settings.budget
    budget = BudgetBook(BudgetRules(period=b.period, limit=b.limit, warn_at=b.warn_at,
                                    low_credits=b.low_credits, prices=dict(b.prices)),
                        catalog, money)
    alerts = AlertWatch(db, money, budget, backends=tuple(backends))
    dispatcher = Dispatcher(
        db=db, jobs=jobs, quota=quota, router=router, bus=bus, data_dir=data_dir,
        concurrency={"segmind": settings.segmind.concurrency,
                     "worker": settings.worker.concurrency},
        policy=DispatchPolicy(
            max_retries=d.max_retries, backoff_base_s=d.backoff_base_s,
            backoff_cap_s=d.backoff_cap_s, progress_interval_s=d.progress_interval_s,
            initial_eta_s=d.initial_eta_s, heartbeat_s=d.heartbeat_s,
        ),
        telemetry=telemetry,
        budget=budget,
        alerts=alerts,
    )
    router.wait_estimate = dispatcher.expected_wait  # for [routing] overflow_after_s
    return ImagineService(
        db=db, catalog=catalog, quota=quota, jobs=jobs, router=router, dispatcher=dispatcher,
        bus=bus,
        policy=ContentPolicy(tuple(settings.policy.blocked_terms),
                             tuple(settings.policy.nsfw_terms)),
        settings=ServiceSettings(
            max_queued_per_user=settings.quota.max_queued_per_user,
            variation_strength=d.variation_strength,
            retention_days=settings.storage.retention_days,
        ),
        data_dir=data_dir,
        on_stop=client.aclose,
        defaults=SettingsRepository(db),
        budget=budget,
        alerts=alerts,
        stats=StatsRepository(db),
    )


async def run_command(settings: Settings,
                      work: Callable[[ImagineService], Awaitable[int]]) -> int:
    """Run one command-line action on a service built from `settings` (not started: no job
    runs here). A refusal prints its sentence on stderr and exits 1."""
    service = await build_service(settings)
    try:
        return await work(service)
    except ImagineError as error:
        print(error.sentence(), file=sys.stderr)
        return 1
    finally:
        await service.stop()
