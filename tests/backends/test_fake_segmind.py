"""FakeSegmind itself: the documented contract that other tests lean on, seen over raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fakes.segmind import FakeSegmind
from tests.reliability.support import until

KEY = "fake-key-123456"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSegmind]:
    """A FakeSegmind expecting KEY."""
    async with FakeSegmind(api_key=KEY) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client."""
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


async def post(
    http: httpx.AsyncClient, fake: FakeSegmind, model: str, body: dict[str, Any],
    key: str | None = KEY,
) -> httpx.Response:
    headers = {"x-api-key": key} if key else {}
    return await http.post(f"{fake.base_url}/{model}", json=body, headers=headers)


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_a_body_without_a_prompt_is_a_400_with_a_json_error(fake, http):
    response = await post(http, fake, "flux-schnell", {"steps": 4})

    assert response.status_code == 400
    assert response.json() == {"error": "prompt is required"}


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [("chroma", "width", 512), ("chroma", "steps", 80), ("chroma", "cfg", 0),
     ("flux-schnell", "steps", 9), ("flux-schnell", "width", 1001),
     ("kolors", "cfg", 21), ("kolors", "number_of_images", 11), ("kolors", "scheduler", "euler")],
)
async def test_a_value_outside_the_documented_limits_is_a_400_naming_the_field(
    fake, http, model, field, value
):
    response = await post(http, fake, model, {"prompt": "a fox", field: value})

    assert response.status_code == 400
    assert field in response.json()["error"]


async def test_an_undocumented_field_is_a_400_unless_strict_is_off(fake, http):
    body = {"prompt": "a fox", "image_format": "png"}  # flux-schnell has no format field

    assert (await post(http, fake, "flux-schnell", body)).status_code == 400
    fake.strict = False
    assert (await post(http, fake, "flux-schnell", body)).status_code == 200


async def test_variation_fields_are_accepted_only_when_acting_as_the_worker(fake, http):
    body = {"prompt": "a fox", "variation_seed": 3, "variation_strength": 0.5}

    assert (await post(http, fake, "kolors", body)).status_code == 400
    fake.variation = True
    assert (await post(http, fake, "kolors", body)).status_code == 200


async def test_a_missing_or_wrong_key_is_a_401_and_no_key_is_needed_when_unset(fake, http):
    assert (await post(http, fake, "kolors", {"prompt": "a"}, key=None)).status_code == 401
    assert (await post(http, fake, "kolors", {"prompt": "a"}, key="nope")).status_code == 401
    fake.api_key = None
    assert (await post(http, fake, "kolors", {"prompt": "a"}, key=None)).status_code == 200


async def test_an_unknown_model_is_404_and_another_method_is_405(fake, http):
    assert (await post(http, fake, "sdxl", {"prompt": "a"})).status_code == 404
    response = await http.get(f"{fake.base_url}/kolors", headers={"x-api-key": KEY})
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("model", "body", "content_type"),
    [("chroma", {}, "image/png"), ("chroma", {"image_format": "webp"}, "image/webp"),
     ("kolors", {}, "image/webp"), ("kolors", {"output_format": "jpeg"}, "image/jpeg"),
     ("flux-schnell", {}, "image/jpeg")],
)
async def test_each_model_answers_in_its_documented_format(fake, http, model, body, content_type):
    response = await post(http, fake, model, {"prompt": "a fox", **body})

    assert response.headers["content-type"] == content_type
    assert opened(response.content).get_format_mimetype() == content_type


async def test_pixels_depend_on_prompt_and_seed(fake, http):
    response = await post(http, fake, "chroma", {"prompt": "a fox", "seed": 3})

    assert opened(response.content).getpixel((0, 0)) == FakeSegmind.expected_color("a fox", 3)


async def test_a_preset_aspect_ratio_sets_the_size_scaled_by_image_scale(fake, http):
    body = {"prompt": "a fox", "aspect_ratio": "16:9 landscape 1344x768", "width": 1024}

    response = await post(http, fake, "chroma", body)

    assert opened(response.content).size == (1344 // 16, 768 // 16)


async def test_credits_go_down_by_one_image_and_run_out_with_a_406(fake, http):
    fake.credits = 2

    first = await post(http, fake, "flux-schnell", {"prompt": "a"})
    second = await post(http, fake, "flux-schnell", {"prompt": "a"})
    third = await post(http, fake, "flux-schnell", {"prompt": "a"})

    assert [first.headers["x-remaining-credits"], second.headers["x-remaining-credits"]] == [
        "1", "0"
    ]
    assert third.status_code == 406


async def test_base64_with_several_samples_lists_images_for_consecutive_seeds(fake, http):
    body = {"prompt": "a fox", "seed": 10, "samples": 3, "base64": True}

    response = await post(http, fake, "chroma", body)

    images = [opened(base64.b64decode(b)) for b in response.json()["images"]]
    colors = [image.getpixel((0, 0)) for image in images]
    assert colors == [FakeSegmind.expected_color("a fox", s) for s in (10, 11, 12)]
    assert response.headers["x-remaining-credits"] == "997"


async def test_scripted_faults_are_used_once_each_in_order(fake, http):
    fake.faults = [503, (418, {"error": "teapot"}), 429]
    fake.retry_after = "4"

    statuses = [(await post(http, fake, "kolors", {"prompt": "a"})) for _ in range(4)]

    assert [r.status_code for r in statuses] == [503, 418, 429, 200]
    assert statuses[2].headers["retry-after"] == "4"


async def test_a_status_override_lasts_for_its_duration(fake, http):
    fake.fail_for(406, seconds=0.2)

    assert (await post(http, fake, "kolors", {"prompt": "a"})).status_code == 406
    fake.status_override_until = time.monotonic() - 1  # as if 0.2 s had passed
    assert (await post(http, fake, "kolors", {"prompt": "a"})).status_code == 200


async def test_the_failure_rate_is_reproducible_from_its_seed(http):
    seen = []
    for _ in range(2):
        async with FakeSegmind(api_key=None, failure_rate=0.5, rng_seed=3) as fake:
            seen.append([(await post(http, fake, "kolors", {"prompt": "a"}, None)).status_code
                         for _ in range(12)])

    assert seen[0] == seen[1]
    assert 500 in seen[0] and 200 in seen[0]


async def test_every_request_is_recorded_with_headers_and_body(fake, http):
    await post(http, fake, "kolors", {"prompt": "a fox"})

    (sent,) = fake.requests
    assert (sent.method, sent.path, sent.model) == ("POST", "/v1/kolors", "kolors")
    assert sent.headers["x-api-key"] == KEY and sent.json == {"prompt": "a fox"}


async def test_closing_ends_a_held_request_at_once(http):
    fake = FakeSegmind(api_key=None, faults=["timeout"], hang_s=60)
    await fake.start()
    task = asyncio.create_task(post(http, fake, "kolors", {"prompt": "a"}, None))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await fake.close()
    await asyncio.gather(task, return_exceptions=True)

    assert time.monotonic() - started < 5


async def test_a_closed_gate_holds_the_answer_until_it_opens(fake, http):
    fake.gate = asyncio.Event()
    answer = asyncio.create_task(post(http, fake, "kolors", {"prompt": "a"}))
    await until(lambda: len(fake.requests) == 1, 10, "the request received")
    fake.faults = [418]  # only an answer still waiting at the gate can use it

    fake.gate.set()

    assert (await answer).status_code == 418

