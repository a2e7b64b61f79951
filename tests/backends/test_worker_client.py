"""worker_backend: our GPU worker through the same client, against FakeSegmind acting as it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.backends.segmind import SegmindBackend
from bot.backends.worker import worker_backend, worker_root
from bot.core.catalog import Catalog
from bot.core.request import ImagineRequest, build_request
from tests.fakes.segmind import FakeSegmind

KEY = "wk-test-key-7a1b"
MODELS = ("chroma", "flux-schnell", "kolors")
HEALTH = {
    "models": ["chroma", "flux-schnell"], "device": "cuda:0", "queue_depth": 2,
    "seconds_per_image": {"chroma": 20.0, "flux-schnell": 1.5},
}


def imagine(text: str, **options: Any) -> ImagineRequest:
    """A validated request, as the chat adapters build it."""
    return build_request(text, options, Catalog())


@pytest.fixture
async def worker_fake() -> AsyncIterator[FakeSegmind]:
    """A FakeSegmind standing in for our worker: variation fields accepted, /health served."""
    async with FakeSegmind(api_key=KEY, variation=True, health=dict(HEALTH)) as fake:
        yield fake


@pytest.fixture
async def worker(worker_fake: FakeSegmind) -> AsyncIterator[SegmindBackend]:
    """worker_backend pointed at the fake's root URL."""
    backend = worker_backend(worker_fake.root_url, KEY, 5, MODELS)
    yield backend
    await backend.aclose()


@pytest.mark.parametrize("url", ["http://gpu:8188", "http://gpu:8188/", "http://gpu:8188/v1"])
def test_the_worker_url_may_be_its_root_or_its_v1_path(url):
    backend = worker_backend(url, None, 5, MODELS)

    assert worker_root(url) == "http://gpu:8188"
    assert backend.base_url == "http://gpu:8188/v1"
    assert backend.health_url == "http://gpu:8188/health"


async def test_the_worker_is_posted_at_root_v1_model_with_its_key(worker, worker_fake):
    await worker.generate(imagine("a fox", model="kolors"))

    sent = worker_fake.requests[-1]
    assert (sent.path, sent.headers["x-api-key"]) == ("/v1/kolors", KEY)


def test_the_worker_is_named_worker_and_varies_every_model_it_serves():
    backend = worker_backend("http://gpu:8188", None, 5, ("chroma", "kolors"))

    assert backend.name == "worker"
    assert backend.supports_variation("chroma") and backend.supports_variation("kolors")
    assert not backend.supports_variation("flux-schnell")


async def test_a_variation_keeps_the_seed_and_steps_the_variation_seed(worker, worker_fake):
    request = imagine("a fox", model="flux-schnell", seed=40, samples=3).model_copy(
        update={"variation_seed": 7, "variation_strength": 0.25}
    )

    result = await worker.generate(request)

    bodies = sorted(worker_fake.bodies(), key=lambda body: body["variation_seed"])
    assert [(b["seed"], b["variation_seed"], b["variation_strength"]) for b in bodies] == [
        (40, 7, 0.25), (40, 8, 0.25), (40, 9, 0.25)
    ]
    assert [image.seed for image in result.images] == [40, 40, 40]
    assert len({image.data for image in result.images}) == 3


async def test_a_request_without_variation_sends_no_variation_fields(worker, worker_fake):
    await worker.generate(imagine("a fox", model="chroma"))

    assert "variation_seed" not in worker_fake.bodies()[0]


async def test_a_worker_without_a_key_sends_no_key_header():
    async with FakeSegmind(api_key=None) as fake:
        backend = worker_backend(fake.root_url, None, 5, MODELS)
        await backend.generate(imagine("a fox"))
        await backend.aclose()

        assert backend.serves("flux-schnell")
        assert "x-api-key" not in fake.requests[0].headers


async def test_worker_health_reads_device_queue_and_keeps_the_answer(worker):
    health = await worker.health()

    assert health.name == "worker"
    assert "cuda:0" in health.detail and "queue 2" in health.detail
    assert worker.last_health == HEALTH


async def test_worker_health_names_the_configured_models_it_does_not_serve(worker):
    health = await worker.health()

    assert health.ok  # it serves some of them
    assert "not serving kolors" in health.detail


async def test_worker_health_is_not_ok_when_it_serves_none_of_our_models(worker, worker_fake):
    worker_fake.health = {**HEALTH, "models": ["sdxl"]}

    assert not (await worker.health()).ok


async def test_worker_health_is_not_ok_when_unreachable():
    async with FakeSegmind() as gone:
        url = gone.root_url
    backend = worker_backend(url, None, 1, MODELS)

    health = await backend.health()
    await backend.aclose()

    assert not health.ok and "unreachable" in health.detail


async def test_worker_health_with_a_wrong_key_says_to_check_it(worker_fake):
    backend = worker_backend(worker_fake.root_url, "wrong-key-123", 5, MODELS)

    health = await backend.health()
    await backend.aclose()

    assert not health.ok and "401" in health.detail
    assert "wrong-key-123" not in health.detail
