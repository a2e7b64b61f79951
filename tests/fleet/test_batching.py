"""Requests that wait together run as one pipeline call, and each image is still its seed's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from bot.fleet.replica import group_by_key
from bot.worker.contract import encode_images
from bot.worker.params import GenerationParams, batch_key, parse_body
from tests.fleet.support import SMALL, Fleet, distance

# Batched matrix products add up in another order: a little rounding, far below what a seed
# changes (another seed's image is tens of levels away on average).
TOLERANCE = 0.5  # mean absolute difference, in 0-255 levels


def params_for(engine: Any, model: str = "flux-schnell", **fields: Any) -> GenerationParams:
    body = {"prompt": "a red fox in the snow", "image_format": "png", **fields}
    return parse_body(engine.catalog.get(model), body, engine.tables[model])


def pngs(engine: Any, batch: list[GenerationParams]) -> list[list[bytes]]:
    return [encode_images(images, params)
            for images, params in zip(engine.generate_batch(batch), batch, strict=True)]


def alone(engine: Any, params: GenerationParams) -> list[bytes]:
    return encode_images(engine.generate(params), params)


def test_batched_flux_images_equal_the_images_their_seeds_give_alone(engine: Any) -> None:
    small = {"width": 512, "height": 512, "steps": 2}
    batch = [params_for(engine, seed=10, **small),
             params_for(engine, seed=20, prompt="a lighthouse at night", **small),
             params_for(engine, seed=30, samples=2, base64=True, **small)]

    together = pngs(engine, batch)

    for images, params in zip(together, batch, strict=True):
        for batched, single in zip(images, alone(engine, params), strict=True):
            assert distance(batched, single) < TOLERANCE


def test_batched_kolors_images_keep_their_own_negative_prompts(engine: Any) -> None:
    small = {"width": 512, "height": 512, "steps": 2, "cfg": 5}
    batch = [params_for(engine, "kolors", seed=1, negative_prompt="blurry", **small),
             params_for(engine, "kolors", seed=2, negative_prompt="low quality, ugly", **small)]

    together = pngs(engine, batch)

    for images, params in zip(together, batch, strict=True):
        assert distance(images[0], alone(engine, params)[0]) < TOLERANCE


def test_a_stochastic_sampler_is_never_batched(engine: Any) -> None:
    assert batch_key(params_for(engine, sampler_name="euler_a")) is None
    assert batch_key(params_for(engine, sampler_name="euler")) is not None


def test_only_requests_with_equal_settings_share_a_call(engine: Any) -> None:
    base = params_for(engine, width=512, height=512, steps=1)
    batch = [base, replace(base, seed=2), replace(base, steps=2),
             params_for(engine, sampler_name="euler_a"), replace(base, seed=3, prompt="a fox")]

    assert group_by_key(batch) == [[0, 1, 4], [2], [3]]


def test_engine_refuses_to_batch_requests_with_different_settings(engine: Any) -> None:
    base = params_for(engine, width=512, height=512, steps=1)

    with pytest.raises(ValueError):
        engine.generate_batch([base, replace(base, width=1024)])


def test_requests_sent_together_share_a_call_and_keep_their_seeds_images(
    fleet: Fleet, engine: Any
) -> None:
    bodies = [{**SMALL, "seed": seed, "image_format": "png"} for seed in range(100, 106)]

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: fleet.post("flux-schnell", body), bodies))

    assert max(int(a.headers["x-imagine-batch"]) for a in answers) >= 2
    for answer, body in zip(answers, bodies, strict=True):
        single = alone(engine, params_for(engine, **body))[0]
        assert distance(answer.content, single) < TOLERANCE
