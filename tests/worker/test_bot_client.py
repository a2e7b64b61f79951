"""The bot's own client for the worker (bot.backends.worker) against the real worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.backends.segmind import SegmindBackend
from bot.backends.worker import worker_backend
from bot.core.catalog import Catalog
from bot.core.request import ImagineRequest, build_request
from tests.worker.support import Served, distance


@pytest.fixture
async def backend(worker: Served) -> AsyncIterator[SegmindBackend]:
    client = worker_backend(worker.url, api_key=None, timeout_s=60,
                            models=("flux-schnell", "chroma", "kolors"))
    yield client
    await client.aclose()


def request(text: str, **options: Any) -> ImagineRequest:
    return build_request(text, options, Catalog())


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("flux-schnell", {"width": 512, "height": 512, "steps": 1}),
        ("chroma", {"width": 768, "height": 768, "steps": 10}),
        ("kolors", {"width": 512, "height": 512, "steps": 2, "sampler": "dpmpp_2m"}),
    ],
)
async def test_the_bots_client_gets_every_models_images_from_the_worker(
    backend: SegmindBackend, model: str, options: dict[str, Any]
) -> None:
    result = await backend.generate(
        request("a red fox", model=model, seed=10, samples=2, **options)
    )

    assert [image.seed for image in result.images] == [10, 11]
    assert all(image.data for image in result.images)


async def test_the_bots_vary_reaches_the_worker_as_a_variation_seed(
    backend: SegmindBackend,
) -> None:
    base = request("a red fox", model="kolors", seed=10, width=512, height=512, steps=2,
                   image_format="png")
    other = base.model_copy(update={"seed": 11})
    varied = base.model_copy(update={"variation_seed": 11, "variation_strength": 0.2})

    images = [(await backend.generate(r)).images[0].data for r in (base, other, varied)]

    assert 0 < distance(images[0], images[2]) < distance(images[0], images[1])


async def test_the_bots_health_check_reads_the_workers_health(backend: SegmindBackend) -> None:
    health = await backend.health()

    assert health.ok
    assert "device cpu" in health.detail
