"""The bot against the fleet: auto routing as with one worker, and overflow to Segmind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.app import build_service
from bot.chat.render import info_fields
from bot.config import Settings
from bot.core.jobs import JobDone, JobRunning
from bot.core.service import ImagineService
from tests.fakes.segmind import FakeSegmind
from tests.fleet.support import API_KEY, Fleet
from tests.helpers import Recorder, actor, target

SMALL = "--w 512 --h 512 --steps 1"
BUSY = "--w 1024 --h 1024 --steps 4"  # running for about a second: long enough to queue behind


@pytest.fixture
def fleet_settings(settings_for: Callable[..., Settings], fleet: Fleet
                   ) -> Callable[..., Settings]:
    """settings_for(...) with [worker] url at the fleet and its key."""
    def build(**sections: Any) -> Settings:
        worker = {"url": fleet.url, **sections.pop("worker", {})}
        settings = settings_for(worker=worker, **sections)
        return settings.model_copy(update={"worker_api_key": SecretStr(API_KEY)})

    return build


@pytest.fixture
async def started() -> AsyncIterator[Callable[[Settings], Any]]:
    """started(settings) -> (service, recorder), stopped after the test."""
    services: list[ImagineService] = []

    async def start(settings: Settings) -> tuple[ImagineService, Recorder]:
        service = await build_service(settings)
        recorder = Recorder(service)
        await service.start()
        services.append(service)
        return service, recorder

    yield start
    for service in services:
        await service.stop()


async def test_auto_sends_a_job_to_the_healthy_fleet(
    fleet_settings: Callable[..., Settings], started: Any, fake_segmind: FakeSegmind
) -> None:
    service, recorder = await started(fleet_settings())

    job = await service.imagine(actor(), f"a red fox {SMALL}", None, target())

    assert job.backend == "worker"
    assert isinstance(await recorder.wait_final(job.id, 60), JobDone)
    assert fake_segmind.requests == []


async def test_auto_sends_a_model_the_fleet_does_not_serve_to_segmind(
    fleet_settings: Callable[..., Settings], started: Any
) -> None:
    service, recorder = await started(fleet_settings())

    job = await service.imagine(actor(), "a red fox --model kolors", None, target())

    assert job.backend == "segmind"
    assert isinstance(await recorder.wait_final(job.id, 30), JobDone)


async def test_a_job_that_would_wait_too_long_on_the_fleet_overflows_to_segmind(
    fleet_settings: Callable[..., Settings], started: Any, fake_segmind: FakeSegmind
) -> None:
    # One job at a time on the fleet, assumed 5 s each until measured: a second job would wait
    # 5 s, over the 1 s allowed.
    settings = fleet_settings(worker={"concurrency": 1}, routing={"overflow_after_s": 1},
                              dispatch={"initial_eta_s": 5})
    service, recorder = await started(settings)
    first = await service.imagine(actor("alice"), f"a red fox {BUSY}", None, target())
    await recorder.wait(lambda: any(isinstance(e, JobRunning) and e.job.id == first.id
                                    for e in recorder.events), 60)

    second = await service.imagine(actor("bob"), f"a lighthouse {SMALL}", None, target())

    assert (first.backend, second.backend) == ("worker", "segmind")
    done = await recorder.wait_final(second.id, 30)
    assert isinstance(done, JobDone)
    assert ("Backend", "segmind") in info_fields(done.job)
    assert len(fake_segmind.requests) == 1
    assert isinstance(await recorder.wait_final(first.id, 60), JobDone)


async def test_without_overflow_after_s_a_job_waits_for_the_fleet(
    fleet_settings: Callable[..., Settings], started: Any, fake_segmind: FakeSegmind
) -> None:
    settings = fleet_settings(worker={"concurrency": 1}, dispatch={"initial_eta_s": 5})
    service, recorder = await started(settings)
    first = await service.imagine(actor("alice"), f"a red fox {SMALL}", None, target())

    second = await service.imagine(actor("bob"), f"a lighthouse {SMALL}", None, target())

    assert (first.backend, second.backend) == ("worker", "worker")
    for job in (first, second):
        assert isinstance(await recorder.wait_final(job.id, 60), JobDone)
    assert fake_segmind.requests == []
