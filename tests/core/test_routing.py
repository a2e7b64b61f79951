"""Routing: segmind, worker, or auto (the worker while it is healthy and can run the request)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.app import build_service
from bot.core.jobs import JobDone
from tests.fakes.segmind import FakeSegmind
from tests.helpers import Recorder, actor, target

WORKER_HEALTH = {
    "models": ["flux-schnell", "chroma", "kolors"], "device": "cuda", "queue_depth": 0,
    "seconds_per_image": {},
    "samplers": {
        "chroma": {"sampler_name": ["euler", "euler_a"], "scheduler": ["normal", "beta"]},
        "flux-schnell": {"sampler_name": ["euler"], "scheduler": ["normal"]},
    },
}


@pytest.fixture
async def fake_worker() -> AsyncIterator[FakeSegmind]:
    """A second loopback server that speaks the Segmind contract, as our GPU worker does."""
    async with FakeSegmind(api_key=None, variation=True, health=dict(WORKER_HEALTH)) as fake:
        yield fake


async def run_one(settings, text: str) -> str:
    """Submit one request and return the backend that served it."""
    service = await build_service(settings)
    recorder = Recorder(service)
    await service.start()
    try:
        job = await service.imagine(actor(), text, None, target())
        assert isinstance(await recorder.wait_final(job.id), JobDone)
        return job.backend
    finally:
        await service.stop()


async def test_auto_sends_a_model_to_the_healthy_worker(settings_for, fake_worker, fake_segmind):
    settings = settings_for(worker={"url": fake_worker.root_url})
    assert await run_one(settings, "a red fox") == "worker"
    assert len(fake_worker.requests) == 1 and fake_segmind.requests == []


async def test_auto_falls_back_to_segmind_when_the_worker_does_not_answer_its_health_check(
    settings_for, fake_segmind
):
    settings = settings_for(worker={"url": "http://127.0.0.1:9"})  # nothing listens there
    assert await run_one(settings, "a red fox") == "segmind"


async def test_auto_sends_a_sampler_the_worker_lacks_to_segmind(settings_for, fake_worker):
    settings = settings_for(worker={"url": fake_worker.root_url})
    text = "a red fox --model chroma --sampler dpmpp_2m"
    assert await run_one(settings, text) == "segmind"
    assert fake_worker.requests == []


async def test_a_model_routed_to_segmind_never_goes_to_the_worker(settings_for, fake_worker):
    settings = settings_for(worker={"url": fake_worker.root_url},
                            routing={"flux-schnell": "segmind"})
    assert await run_one(settings, "a red fox") == "segmind"


async def test_vary_on_the_worker_sends_a_variation_seed(settings_for, fake_worker):
    service = await build_service(settings_for(worker={"url": fake_worker.root_url}))
    recorder = Recorder(service)
    await service.start()
    try:
        job = await service.imagine(actor(), "a red fox --seed 9", None, target())
        await recorder.wait_final(job.id)
        varied = await service.vary(actor(), job.id, target())
        await recorder.wait_final(varied.id)
        body = fake_worker.requests[-1].json
        assert body["seed"] == 9 and body["variation_strength"] == pytest.approx(0.3)
        assert "variation seed" in service.describe_variation(varied)
    finally:
        await service.stop()
