"""Seeds make images again exactly; variation seeds move an image part of the way to another."""

from __future__ import annotations

import base64

import pytest

from tests.worker.support import MODELS, Served, distance


@pytest.mark.parametrize("model", MODELS)
def test_the_same_seed_gives_the_same_image(worker: Served, model: str) -> None:
    first = worker.small(model, seed=1234, image_format="png")
    again = worker.small(model, seed=1234, image_format="png")

    assert first.content == again.content


@pytest.mark.parametrize("model", MODELS)
def test_another_seed_gives_another_image(worker: Served, model: str) -> None:
    first = worker.small(model, seed=1234, image_format="png")
    other = worker.small(model, seed=1235, image_format="png")

    assert distance(first.content, other.content) > 5


def test_sample_i_is_the_image_that_seed_plus_i_gives_alone(worker: Served) -> None:
    batch = worker.small("flux-schnell", seed=70, samples=2, base64=True, image_format="png")
    alone = [worker.small("flux-schnell", seed=s, image_format="png") for s in (70, 71)]

    images = [base64.b64decode(text) for text in batch.json()["images"]]
    assert images == [alone[0].content, alone[1].content]


def test_the_seed_wraps_past_the_largest_seed(worker: Served) -> None:
    response = worker.small("flux-schnell", seed=2**32 - 1, samples=2, base64=True)

    assert response.json()["seeds"] == [2**32 - 1, 0]


def test_stochastic_samplers_repeat_exactly_for_a_seed(worker: Served) -> None:
    first = worker.small("flux-schnell", seed=9, steps=3, sampler_name="euler_a",
                         image_format="png")
    again = worker.small("flux-schnell", seed=9, steps=3, sampler_name="euler_a",
                         image_format="png")

    assert first.content == again.content


@pytest.mark.parametrize("model", MODELS)
def test_a_variation_differs_from_its_seeds_image_less_than_another_seed_does(
    worker: Served, model: str
) -> None:
    seed_image = worker.small(model, seed=500, image_format="png").content
    other_seed = worker.small(model, seed=501, image_format="png").content
    varied = worker.small(model, seed=500, variation_seed=777, variation_strength=0.25,
                          image_format="png").content

    to_variation = distance(seed_image, varied)
    assert 0 < to_variation < distance(seed_image, other_seed)


def test_variation_strength_zero_is_the_seeds_own_image(worker: Served) -> None:
    plain = worker.small("kolors", seed=8, image_format="png")
    varied = worker.small("kolors", seed=8, variation_seed=99, variation_strength=0,
                          image_format="png")

    assert varied.content == plain.content


def test_variation_strength_one_is_the_variation_seeds_image(worker: Served) -> None:
    target = worker.small("kolors", seed=99, image_format="png")
    varied = worker.small("kolors", seed=8, variation_seed=99, variation_strength=1,
                          image_format="png")

    assert varied.content == target.content


def test_a_stronger_variation_moves_further_from_the_seeds_image(worker: Served) -> None:
    seed_image = worker.small("chroma", seed=5, image_format="png").content
    weak, strong = (
        worker.small("chroma", seed=5, variation_seed=6, variation_strength=s,
                     image_format="png").content
        for s in (0.1, 0.6)
    )

    assert distance(seed_image, weak) < distance(seed_image, strong)
