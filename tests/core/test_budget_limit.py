"""The budget against a running service and the fake Segmind: Segmind jobs stop at the limit
and not before, whoever asks and from however many services on one database; the worker goes
on; each job's money is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app import build_service
from bot.config import Settings
from bot.core.errors import BudgetExhausted
from bot.core.jobs import JobDone
from bot.core.service import ImagineService
from tests.fakes.segmind import FakeSegmind
from tests.helpers import Recorder, actor, ledger_rows, target

BUDGET = {"limit": 3.0, "prices": {"flux-schnell": 1.0}}  # the fake charges 1 per image too
REFUSED = "The team's image budget for this month is used up until "


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Settings], Any]]:
    """start(settings) -> (a started service, its Recorder); all stopped after the test."""
    started: list[ImagineService] = []

    async def run(settings: Settings) -> tuple[ImagineService, Recorder]:
        service = await build_service(settings)
        recorder = Recorder(service)
        await service.start()
        started.append(service)
        return service, recorder

    yield run
    for service in reversed(started):
        await service.stop()


async def make(service: ImagineService, recorder: Recorder, text: str = "a red fox",
               user: str = "alice", **who: Any) -> JobDone:
    """One job, run to the end; it must succeed."""
    job = await service.imagine(actor(user, **who), text, None, target())
    done = await recorder.wait_final(job.id)
    assert isinstance(done, JobDone), done
    return done


async def test_segmind_jobs_run_up_to_the_limit_and_the_next_one_is_refused(settings_for, start):
    service, recorder = await start(settings_for(budget=BUDGET))
    for _ in range(3):
        await make(service, recorder)

    with pytest.raises(BudgetExhausted) as refused:
        await service.imagine(actor(), "one more", None, target())

    assert refused.value.sentence().startswith(REFUSED)
    assert refused.value.sentence().endswith("ask an admin. Nothing was charged.")


async def test_a_job_refused_for_the_budget_leaves_no_row_and_no_charge(settings_for, start):
    service, recorder = await start(settings_for(budget={**BUDGET, "limit": 1.0}))
    await make(service, recorder)
    rows_before = len(await ledger_rows(service))

    with pytest.raises(BudgetExhausted):
        await service.imagine(actor(), "one more", None, target())

    [count] = await service.db.read("SELECT COUNT(*) FROM jobs")
    assert count[0] == 1
    assert len(await ledger_rows(service)) == rows_before
    assert (await service.quota_status(actor())).balance == 49


async def test_jobs_still_waiting_count_against_the_budget(settings_for, start, fake_segmind):
    fake_segmind.gate = asyncio.Event()  # every Segmind call waits: nothing finishes
    service, _ = await start(settings_for(budget=BUDGET))

    outcomes = await asyncio.gather(
        *(service.imagine(actor(f"user{n}"), "a fox", None, target()) for n in range(6)),
        return_exceptions=True)
    fake_segmind.gate.set()

    assert sum(isinstance(o, BudgetExhausted) for o in outcomes) == 3
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 3


async def test_two_services_on_one_database_admit_exactly_the_limit_between_them(
        settings_for, start):
    settings = settings_for(budget={**BUDGET, "limit": 4.0})
    (one, _), (two, _) = await start(settings), await start(settings)

    outcomes = await asyncio.gather(
        *((one, two)[n % 2].imagine(actor(f"user{n}"), "a fox", None, target())
          for n in range(12)),
        return_exceptions=True)

    admitted = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(admitted) == 4
    assert all(isinstance(o, BudgetExhausted) for o in outcomes if o not in admitted)


async def test_the_budget_binds_admins_whose_credits_are_unlimited(settings_for, start):
    service, recorder = await start(settings_for(budget={**BUDGET, "limit": 1.0}))
    await make(service, recorder, user="boss", is_admin=True)

    with pytest.raises(BudgetExhausted):
        await service.imagine(actor("boss", is_admin=True), "one more", None, target())


async def test_worker_jobs_go_on_when_the_budget_is_used_up(settings_for, start, fake_worker):
    settings = settings_for(budget={**BUDGET, "limit": 1.0, "prices": {"kolors": 1.0}},
                            worker={"url": fake_worker.root_url},
                            routing={"kolors": "segmind", "flux-schnell": "worker"})
    service, recorder = await start(settings)
    await make(service, recorder, "a fox --model kolors")

    done = await make(service, recorder, "a fox --model flux-schnell")

    assert done.job.backend == "worker"


async def test_auto_routing_sends_a_job_the_budget_refuses_on_segmind_to_the_worker(
        settings_for, start, fake_segmind):
    # A worker whose health check fails: auto routing would send everything to Segmind.
    async with FakeSegmind(api_key=None, health=None) as unhealthy_worker:
        settings = settings_for(budget={**BUDGET, "limit": 1.0},
                                worker={"url": unhealthy_worker.root_url})
        service, recorder = await start(settings)
        first = await make(service, recorder)

        second = await make(service, recorder)

    assert (first.job.backend, second.job.backend) == ("segmind", "worker")


async def test_a_worker_job_costs_no_money_and_records_its_gpu_seconds(settings_for, start,
                                                                      fake_worker):
    service, recorder = await start(settings_for(worker={"url": fake_worker.root_url}))
    done = await make(service, recorder)

    [row] = await service.db.read(
        "SELECT backend, money, gpu_seconds, backend_seconds FROM jobs WHERE id = ?",
        (done.job.id,))
    assert row["backend"] == "worker" and row["money"] == 0
    assert row["gpu_seconds"] == pytest.approx(row["backend_seconds"], abs=1e-3)


async def test_segmind_jobs_record_the_measured_drop_once_there_is_a_value_to_measure_from(
        settings_for, start, fake_segmind):
    fake_segmind.model_costs = {"flux-schnell": 0.02}  # the table says 1.0: clearly different
    service, recorder = await start(settings_for(budget=BUDGET))
    first = await make(service, recorder)
    second = await make(service, recorder)

    rows = {row["id"]: (row["money"], row["money_measured"]) for row in await service.db.read(
        "SELECT id, money, money_measured FROM jobs")}
    assert rows[first.job.id] == (1.0, 0)  # nothing to measure from yet: the price table
    assert rows[second.job.id] == (pytest.approx(0.02), 1)


@pytest.fixture
async def fake_worker() -> AsyncIterator[FakeSegmind]:
    """A loopback server speaking the Segmind contract with a health endpoint, as our worker."""
    health = {"models": ["flux-schnell", "chroma", "kolors"], "device": "cuda",
              "queue_depth": 0, "seconds_per_image": {}}
    async with FakeSegmind(api_key=None, health=health) as fake:
        yield fake
