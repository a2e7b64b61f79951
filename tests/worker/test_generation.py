"""POST /v1/{model} makes images of the asked size and format, answered as Segmind answers."""

from __future__ import annotations

import base64

import pytest

from tests.worker.support import MODELS, SMALL, Served, image_of


@pytest.mark.parametrize("model", MODELS)
def test_every_model_answers_an_image_of_the_requested_size(worker: Served, model: str) -> None:
    response = worker.small(model)

    assert response.status_code == 200, response.text
    assert image_of(response.content).size == (SMALL[model]["width"], SMALL[model]["height"])


@pytest.mark.parametrize(
    ("model", "content_type"),
    [("flux-schnell", "image/jpeg"), ("chroma", "image/png"), ("kolors", "image/webp")],
)
def test_each_model_answers_in_its_segmind_default_format(
    worker: Served, model: str, content_type: str
) -> None:
    response = worker.small(model)

    assert response.headers["content-type"] == content_type
    assert image_of(response.content).format == content_type.split("/")[1].upper()


@pytest.mark.parametrize(
    ("model", "width", "height"),
    [("flux-schnell", 1024, 576), ("flux-schnell", 520, 1032), ("kolors", 1000, 512)],
)
def test_sizes_off_the_pipelines_grid_still_come_back_exact(
    worker: Served, model: str, width: int, height: int
) -> None:
    response = worker.small(model, width=width, height=height)

    assert response.status_code == 200, response.text
    assert image_of(response.content).size == (width, height)


def test_a_named_aspect_ratio_sets_the_size_as_on_segmind(worker: Served) -> None:
    response = worker.small("chroma", aspect_ratio="16:9 landscape 1344x768")

    assert image_of(response.content).size == (1344, 768)


def test_the_custom_aspect_ratio_uses_width_and_height(worker: Served) -> None:
    response = worker.small("chroma", aspect_ratio="custom", width=832, height=768)

    assert image_of(response.content).size == (832, 768)


def test_kolors_takes_its_segmind_field_names(worker: Served) -> None:
    response = worker.small(
        "kolors", output_format="png", output_quality=80, number_of_images=1,
        scheduler="EulerDiscreteScheduler",
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
def test_image_format_picks_the_answer_type(worker: Served, image_format: str) -> None:
    response = worker.small("flux-schnell", image_format=image_format, image_quality=50)

    assert response.headers["content-type"] == f"image/{image_format}"
    assert image_of(response.content).format == image_format.upper()


def test_base64_true_answers_json_holding_the_image(worker: Served) -> None:
    response = worker.small("flux-schnell", base64=True, image_format="png")

    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["content_type"] == "image/png"
    assert image_of(base64.b64decode(body["image"])).size == (512, 512)


def test_several_samples_come_back_as_base64_images_with_their_seeds(worker: Served) -> None:
    response = worker.small("flux-schnell", samples=3, seed=41, base64=True)

    body = response.json()
    assert body["seeds"] == [41, 42, 43]
    assert len(body["images"]) == 3
    assert body["images"][0] == body["image"]
    assert response.headers["x-seeds"] == "41,42,43"


def test_negative_prompt_is_taken_by_models_with_guidance(worker: Served) -> None:
    plain = worker.small("kolors", seed=3)
    negative = worker.small("kolors", seed=3, negative_prompt="blurry, low quality")

    assert negative.status_code == 200
    assert negative.content != plain.content
