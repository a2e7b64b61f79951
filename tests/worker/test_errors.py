"""Bad requests get Segmind's status codes and a JSON {"error": sentence} that says what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from tests.worker.support import Served


@pytest.mark.parametrize(
    ("model", "fields", "words"),
    [
        ("flux-schnell", {"steps": 9}, "steps 9 is not allowed: a whole number from 1 to 8"),
        ("chroma", {"steps": 5}, "steps 5 is not allowed: a whole number from 10 to 75"),
        ("kolors", {"steps": 2.5}, "a whole number from 1 to 50"),
        ("chroma", {"width": 512}, "width 512 is not allowed: a whole number from 768 to 2048"),
        ("flux-schnell", {"height": 4096}, "from 512 to 2048"),
        ("flux-schnell", {"width": 516}, "width 516 is not allowed: a multiple of 8"),
        ("chroma", {"cfg": 25}, "cfg 25 is not allowed: a number from 1 to 20"),
        ("kolors", {"samples": 11, "base64": True}, "samples 11 is not allowed"),
        ("kolors", {"image_format": "gif"}, "one of png, jpeg, webp"),
        ("kolors", {"output_quality": 101}, "image_quality 101"),
        ("flux-schnell", {"seed": -1}, "seed -1 is not allowed"),
        ("flux-schnell", {"seed": "5"}, "seed '5' is not allowed"),
        ("flux-schnell", {"base64": "yes"}, "true or false"),
        ("chroma", {"aspect_ratio": "7:5"}, "one of custom, 1:1 square 1024x1024"),
    ],
)
def test_a_value_out_of_limits_is_refused_with_what_is_allowed(
    worker: Served, model: str, fields: dict[str, Any], words: str
) -> None:
    response = worker.small(model, **fields)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"]


def test_a_missing_prompt_is_refused(worker: Served) -> None:
    response = worker.post("flux-schnell", {"steps": 2})

    assert response.status_code == 400
    assert response.json() == {
        "error": "prompt is required: a non-empty string describing the image."
    }


def test_a_field_the_model_does_not_take_is_refused_naming_it(worker: Served) -> None:
    response = worker.small("flux-schnell", cfg=3.5)

    assert response.status_code == 400
    assert response.json()["error"].startswith("flux-schnell does not take 'cfg'; it takes ")


def test_denoise_below_one_is_refused_as_text_to_image_only(worker: Served) -> None:
    response = worker.small("flux-schnell", denoise=0.6)

    assert response.status_code == 400
    assert "denoise below 1 needs an input image" in response.json()["error"]


def test_denoise_of_one_is_accepted(worker: Served) -> None:
    assert worker.small("flux-schnell", denoise=1).status_code == 200


def test_several_samples_as_image_bytes_are_refused_before_any_work(worker: Served) -> None:
    response = worker.small("flux-schnell", samples=2)

    assert response.status_code == 400
    assert 'need "base64": true' in response.json()["error"]


def test_a_variation_seed_without_its_strength_is_refused(worker: Served) -> None:
    response = worker.small("flux-schnell", variation_seed=3)

    assert response.status_code == 400
    assert "give both" in response.json()["error"]


def test_a_variation_strength_above_one_is_refused(worker: Served) -> None:
    response = worker.small("flux-schnell", variation_seed=3, variation_strength=1.5)

    assert "variation_strength 1.5 is not allowed: a number from 0 to 1" in (
        response.json()["error"]
    )


def test_an_alias_and_its_field_that_disagree_are_refused(worker: Served) -> None:
    response = worker.small("kolors", output_format="png", image_format="webp")

    assert response.status_code == 400
    assert "same setting" in response.json()["error"]


def test_a_body_that_is_not_json_is_refused(worker: Served) -> None:
    response = worker.client.post("/v1/kolors", content=b"prompt=fox",
                                  headers={"content-type": "application/x-www-form-urlencoded"})

    assert response.status_code == 400
    assert "JSON" in response.json()["error"]


def test_a_json_body_that_is_not_an_object_is_refused(worker: Served) -> None:
    response = worker.client.post("/v1/kolors", json=["a fox"])

    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]


def test_an_unknown_model_is_not_found_and_the_served_ones_are_named(worker: Served) -> None:
    response = worker.post("sdxl", {"prompt": "a fox"})

    assert response.status_code == 404
    assert response.json() == {
        "error": "Model 'sdxl' is not served here; this worker serves chroma, flux-schnell, "
        "kolors."
    }


def test_an_unknown_path_is_not_found_with_a_json_body(worker: Served) -> None:
    response = worker.client.get("/v2/anything")

    assert response.status_code == 404
    assert "POST /v1/{model} or GET /health" in response.json()["error"]


def test_the_wrong_method_is_not_allowed_with_a_json_body(worker: Served) -> None:
    response = worker.client.get("/v1/flux-schnell")

    assert response.status_code == 405
    assert response.json() == {"error": "GET is not allowed on /v1/flux-schnell."}


def test_a_failure_inside_the_pipeline_is_a_500_without_a_traceback(
    worker: Served, engine: Any
) -> None:
    def broken(*_args: Any) -> None:
        raise ValueError("a secret detail from deep inside")

    hook = engine.models["kolors"].pipeline.unet.register_forward_pre_hook(broken)
    try:
        response = worker.small("kolors")
    finally:
        hook.remove()

    assert response.status_code == 500
    assert response.json() == {
        "error": "The worker failed while generating; its log has the details."
    }
    assert worker.small("kolors").status_code == 200


def test_a_body_over_256_kib_is_refused_as_too_large(worker: Served) -> None:
    response = worker.post("flux-schnell", {"prompt": "x" * 300_000})

    assert response.status_code == 413
    assert response.json() == {"error": "The body is over 256 KiB."}


def test_a_prompt_over_2000_characters_is_refused(worker: Served) -> None:
    response = worker.post("flux-schnell", {"prompt": "fox " * 600})

    assert response.status_code == 400
    assert response.json() == {"error": "prompt is 2400 characters long; at most 2000."}
