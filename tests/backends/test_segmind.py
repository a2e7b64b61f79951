"""SegmindBackend against FakeSegmind over real loopback HTTP: what it sends, what it accepts,
how it fails."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import logging
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.backends.segmind import KOLORS_SCHEDULERS, SegmindBackend, retry_after_seconds
from bot.core.catalog import SEED_MAX, Catalog
from bot.core.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    RateLimited,
    ServerError,
)
from bot.core.request import ImagineRequest, build_request
from tests.backends.conftest import API_KEY, MODELS
from tests.fakes.segmind import FakeSegmind, image_key, render


def imagine(text: str, **options: Any) -> ImagineRequest:
    """A validated request, as the chat adapters build it."""
    return build_request(text, options, Catalog())


def pil_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format)


async def failure(backend: SegmindBackend, request: ImagineRequest) -> BackendError:
    with pytest.raises(BackendError) as caught:
        await backend.generate(request)
    return caught.value


# --- what is sent ------------------------------------------------------------------------------


async def test_request_goes_to_base_url_slash_model_with_the_api_key_header(backend, fake):
    await backend.generate(imagine("a red fox", model="kolors"))

    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/kolors")
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["content-type"] == "application/json"


async def test_chroma_body_has_every_documented_field_and_the_preset_label(backend, fake):
    request = imagine(
        "a knight", model="chroma", aspect_ratio="16:9", negative_prompt="blurry", cfg=9,
        steps=30, sampler="dpmpp_2m", scheduler="karras", seed=42, image_format="webp",
        image_quality=70,
    )
    await backend.generate(request)

    assert fake.bodies("chroma") == [{
        "prompt": "a knight", "negative_prompt": "blurry", "width": 1344, "height": 768,
        "aspect_ratio": "16:9 landscape 1344x768", "cfg": 9.0, "sampler_name": "dpmpp_2m",
        "scheduler": "karras", "steps": 30, "seed": 42, "samples": 1, "image_format": "webp",
        "image_quality": 70, "base64": False,
    }]


async def test_chroma_aspect_ratio_is_custom_for_an_explicit_size(backend, fake):
    await backend.generate(imagine("a knight", model="chroma", width=800, height=1200))

    body = fake.bodies("chroma")[0]
    assert (body["aspect_ratio"], body["width"], body["height"]) == ("custom", 800, 1200)


async def test_chroma_aspect_ratio_is_custom_when_the_catalog_resized_the_preset(backend, fake):
    # Segmind's 9:21 preset is 640 px wide, below chroma's 768 minimum; the catalog scales it.
    request = imagine("a tower", model="chroma", aspect_ratio="9:21")
    await backend.generate(request)

    body = fake.bodies("chroma")[0]
    assert body["aspect_ratio"] == "custom"
    assert (body["width"], body["height"]) == (request.width, request.height)


async def test_chroma_leaves_out_negative_prompt_when_the_request_has_none(backend, fake):
    await backend.generate(imagine("a knight", model="chroma"))

    assert "negative_prompt" not in fake.bodies("chroma")[0]


async def test_flux_schnell_body_is_segmind_example_shape_without_a_format_field(backend, fake):
    await backend.generate(imagine("a tiger", model="flux-schnell", seed=7, width=768, height=512))

    assert fake.bodies("flux-schnell") == [{
        "prompt": "a tiger", "steps": 4, "seed": 7, "sampler_name": "euler",
        "scheduler": "normal", "samples": 1, "width": 768, "height": 512, "denoise": 1,
    }]


async def test_kolors_body_uses_its_own_field_names(backend, fake):
    request = imagine(
        "three boys laughing", model="kolors", negative_prompt="text", cfg=5, steps=20,
        seed=9, image_format="png", image_quality=60,
    )
    await backend.generate(request)

    assert fake.bodies("kolors") == [{
        "prompt": "three boys laughing", "negative_prompt": "text", "cfg": 5.0, "seed": 9,
        "steps": 20, "width": 1024, "height": 1024, "scheduler": "EulerDiscreteScheduler",
        "output_format": "png", "output_quality": 60, "number_of_images": 1,
    }]


@pytest.mark.parametrize(("sampler", "scheduler"), sorted(KOLORS_SCHEDULERS.items()))
async def test_kolors_sampler_is_sent_as_a_diffusers_scheduler_class(
    backend, fake, sampler, scheduler
):
    await backend.generate(imagine("a cat", model="kolors", sampler=sampler))

    assert fake.bodies("kolors")[0]["scheduler"] == scheduler


def test_every_kolors_sampler_in_the_catalog_has_a_scheduler_class():
    assert set(Catalog().get("kolors").samplers) == set(KOLORS_SCHEDULERS)


async def test_segmind_never_sends_variation_fields(backend, fake):
    request = imagine("a cat", model="chroma").model_copy(
        update={"variation_seed": 5, "variation_strength": 0.3}
    )
    await backend.generate(request)  # the strict fake would answer 400 to unknown fields

    assert not backend.supports_variation("chroma")
    assert "variation_seed" not in fake.bodies()[0]


# --- what comes back ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "content_type", "pillow"),
    [("png", "image/png", "PNG"), ("jpeg", "image/jpeg", "JPEG"), ("webp", "image/webp", "WEBP")],
)
async def test_each_image_content_type_is_accepted(
    backend, image_format, content_type, pillow
):
    result = await backend.generate(imagine("a fox", model="chroma", image_format=image_format))

    (image,) = result.images
    assert image.content_type == content_type
    assert pil_format(image.data) == pillow


async def test_kolors_answers_in_the_requested_output_format(backend):
    result = await backend.generate(imagine("a fox", model="kolors", image_format="jpeg"))

    assert result.images[0].content_type == "image/jpeg"


async def test_flux_schnell_jpeg_is_passed_through_unchanged(backend, fake):
    result = await backend.generate(imagine("a fox", model="flux-schnell", image_format="jpeg"))

    assert result.images[0].content_type == "image/jpeg"
    assert pil_format(result.images[0].data) == "JPEG"


@pytest.mark.parametrize(("image_format", "pillow"), [("png", "PNG"), ("webp", "WEBP")])
async def test_flux_schnell_jpeg_is_converted_locally_to_the_requested_format(
    backend, image_format, pillow
):
    result = await backend.generate(
        imagine("a fox", model="flux-schnell", image_format=image_format)
    )

    assert result.images[0].content_type == f"image/{image_format}"
    assert pil_format(result.images[0].data) == pillow


async def test_base64_json_with_one_image_is_decoded(backend, fake):
    fake.answer_base64, fake.base64_key = True, "image"

    result = await backend.generate(imagine("a fox", model="chroma", image_format="png"))

    assert pil_format(result.images[0].data) == "PNG"


async def test_base64_json_with_an_images_list_is_decoded(backend, fake):
    fake.answer_base64, fake.base64_key = True, "images"

    result = await backend.generate(imagine("a fox", model="kolors", image_format="webp"))

    assert pil_format(result.images[0].data) == "WEBP"


async def test_the_same_prompt_and_seed_give_the_same_image(backend):
    first = await backend.generate(imagine("a fox", seed=11, image_format="png"))
    again = await backend.generate(imagine("a fox", seed=11, image_format="png"))
    other = await backend.generate(imagine("a fox", seed=12, image_format="png"))

    assert first.images[0].data == again.images[0].data
    assert first.images[0].data != other.images[0].data


@pytest.mark.parametrize("fault", ["not-image", "truncated", "wrong-content-type"])
async def test_an_answer_that_is_not_an_image_raises_bad_response(backend, fake, fault):
    fake.faults = [fault]

    error = await failure(backend, imagine("a fox"))

    assert isinstance(error, BadResponse)


async def test_json_without_an_image_raises_bad_response(backend, fake):
    fake.faults = [(200, {"status": "queued"})]

    assert isinstance(await failure(backend, imagine("a fox")), BadResponse)


# --- several samples ---------------------------------------------------------------------------


async def test_several_samples_make_one_call_each_with_consecutive_seeds(backend, fake):
    result = await backend.generate(imagine("a fox", model="chroma", samples=3, seed=100))

    assert sorted(body["seed"] for body in fake.bodies()) == [100, 101, 102]
    assert all(body["samples"] == 1 for body in fake.bodies())
    assert [image.seed for image in result.images] == [100, 101, 102]


async def test_each_sample_can_be_made_again_alone_from_its_seed(backend):
    batch = await backend.generate(imagine("a fox", samples=3, seed=100, image_format="png"))
    alone = await backend.generate(imagine("a fox", seed=101, image_format="png"))

    assert batch.images[1].data == alone.images[0].data


async def test_kolors_samples_also_go_one_per_call(backend, fake):
    await backend.generate(imagine("a fox", model="kolors", samples=4, seed=1))

    assert [body["number_of_images"] for body in fake.bodies()] == [1, 1, 1, 1]


async def test_seeds_wrap_around_past_the_largest_seed(backend, fake):
    result = await backend.generate(imagine("a fox", samples=2, seed=SEED_MAX))

    assert [image.seed for image in result.images] == [SEED_MAX, 0]


async def test_samples_are_requested_in_parallel(backend, fake):
    fake.latency_s = 0.1

    await backend.generate(imagine("a fox", samples=4))

    assert fake.peak_in_flight == 4


async def test_one_failed_sample_fails_the_whole_generation(backend, fake):
    fake.faults = [500]

    assert isinstance(await failure(backend, imagine("a fox", samples=3)), ServerError)


# --- credits -----------------------------------------------------------------------------------


async def test_remaining_credits_are_returned_and_logged_at_info(backend, fake, caplog):
    fake.credits = 50
    caplog.set_level(logging.INFO, logger="bot.backends.segmind")

    result = await backend.generate(imagine("a fox"))

    assert result.remaining_credits == 49
    assert any(
        r.levelno == logging.INFO and "49" in r.getMessage() and "credits" in r.getMessage()
        for r in caplog.records if r.name == "bot.backends.segmind"
    )


async def test_remaining_credits_of_several_samples_is_the_lowest_seen(backend, fake):
    fake.credits = 50

    result = await backend.generate(imagine("a fox", samples=3))

    assert result.remaining_credits == 47


async def test_an_answer_without_the_credits_header_gives_none(backend, fake):
    png = render(image_key("a fox", 1), 8, 8, "png")
    fake.faults = [(200, {"image": base64.b64encode(png).decode()})]

    result = await backend.generate(imagine("a fox", model="chroma", image_format="png"))

    assert result.remaining_credits is None
    assert result.images[0].data == png


# --- status codes ------------------------------------------------------------------------------

STATUS_ERRORS = [
    (400, BackendRejected), (401, BackendUnavailable), (403, BackendUnavailable),
    (404, BackendRejected), (405, BackendRejected), (406, BackendUnavailable),
    (422, BackendRejected), (429, RateLimited), (500, ServerError), (502, ServerError),
    (503, ServerError), (504, ServerError),
]


@pytest.mark.parametrize(("status", "error_type"), STATUS_ERRORS)
async def test_each_documented_status_raises_its_error_type(backend, fake, status, error_type):
    fake.faults = [status]

    error = await failure(backend, imagine("a fox"))

    assert type(error) is error_type
    assert error.status == status


@pytest.mark.parametrize(("status", "_"), STATUS_ERRORS)
async def test_the_service_words_go_to_detail_never_to_the_user(backend, fake, status, _):
    fake.faults = [(status, {"error": "internal: shard 7 exploded"})]

    error = await failure(backend, imagine("a fox"))

    assert "shard 7" in error.detail
    assert "shard 7" not in error.user_message
    assert "shard 7" not in error.sentence()


async def test_rate_limited_carries_retry_after_in_seconds(backend, fake):
    fake.faults, fake.retry_after = [429], "7"

    error = await failure(backend, imagine("a fox"))

    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 7.0


def test_retry_after_as_an_http_date_becomes_seconds_from_now():
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)

    assert 55 <= retry_after_seconds(in_a_minute) <= 61
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_a_wrong_api_key_is_unavailable_and_tells_the_admin_to_check_it(fake, caplog):
    backend = SegmindBackend(base_url=fake.base_url, api_key="sk-wrong-key-42", timeout_s=5,
                             models=MODELS)

    error = await failure(backend, imagine("a fox"))
    await backend.aclose()

    assert isinstance(error, BackendUnavailable) and error.status == 401
    assert "unavailable" in error.user_message
    assert any(
        r.levelno == logging.ERROR and "check SEGMIND_API_KEY" in r.getMessage()
        for r in caplog.records
    )


async def test_running_out_of_credits_is_unavailable_and_logged_for_the_admin(
    backend, fake, caplog
):
    fake.credits = 0

    error = await failure(backend, imagine("a fox"))

    assert isinstance(error, BackendUnavailable) and error.status == 406
    assert any(
        r.levelno == logging.ERROR and "out of Segmind credits" in r.getMessage()
        for r in caplog.records
    )


async def test_an_out_of_range_value_is_rejected_by_the_service(fake):
    # The catalog would refuse 9 steps for flux-schnell; here an admin's bad cap lets it through.
    backend = SegmindBackend(base_url=fake.base_url, api_key=API_KEY, timeout_s=5, models=MODELS)
    request = imagine("a fox", model="flux-schnell").model_copy(update={"steps": 9})

    error = await failure(backend, request)
    await backend.aclose()

    assert isinstance(error, BackendRejected) and error.status == 400
    assert "steps" in error.detail


async def test_a_model_the_server_lacks_is_rejected_as_not_served(fake):
    backend = SegmindBackend(base_url=f"{fake.root_url}/v2", api_key=API_KEY, timeout_s=5,
                             models=MODELS)

    error = await failure(backend, imagine("a fox"))
    await backend.aclose()

    assert isinstance(error, BackendRejected) and error.status == 404


# --- time and connections ----------------------------------------------------------------------


async def test_no_answer_within_the_timeout_raises_backend_timeout(fake):
    backend = SegmindBackend(base_url=fake.base_url, api_key=API_KEY, timeout_s=0.2,
                             models=MODELS)
    fake.faults = ["timeout"]

    started = time.monotonic()
    error = await failure(backend, imagine("a fox"))
    await backend.aclose()

    assert isinstance(error, BackendTimeout)
    assert time.monotonic() - started < 2


async def test_a_body_that_trickles_past_the_timeout_raises_backend_timeout(fake):
    # Every piece arrives within the read timeout; only the whole-call deadline catches it.
    backend = SegmindBackend(base_url=fake.base_url, api_key=API_KEY, timeout_s=0.3,
                             models=MODELS)
    fake.faults, fake.slow_chunk_s = ["slow-body"], 0.1

    error = await failure(backend, imagine("a fox"))
    await backend.aclose()

    assert isinstance(error, BackendTimeout)


async def test_a_dropped_connection_raises_server_error(backend, fake):
    fake.faults = ["disconnect"]

    assert isinstance(await failure(backend, imagine("a fox")), ServerError)


async def test_a_refused_connection_raises_server_error():
    async with FakeSegmind() as gone:
        url = gone.base_url  # the port is free again once the fake has closed
    backend = SegmindBackend(base_url=url, api_key=API_KEY, timeout_s=2, models=MODELS)

    error = await failure(backend, imagine("a fox"))
    await backend.aclose()

    assert isinstance(error, ServerError)


# --- the API key stays secret ------------------------------------------------------------------


async def test_the_api_key_never_appears_in_errors_or_log_records(fake, caplog):
    secret = "sk-live-SECRET-9f8e7d6c5b4a"
    caplog.set_level(logging.DEBUG)
    backend = SegmindBackend(base_url=fake.base_url, api_key=secret, timeout_s=0.3,
                             models=MODELS)
    fake.faults = ["timeout", "disconnect", "not-image", 500, 429, 403, 406]
    errors = [await failure(backend, imagine("a fox")) for _ in range(len(fake.faults))]
    errors.append(await failure(backend, imagine("a fox")))  # the fake's 401 quotes the key
    await backend.aclose()

    assert errors[-1].status == 401
    shown = [repr(backend)]
    for error in errors:
        shown += [str(error), repr(error), error.user_message, error.detail, error.sentence()]
    shown += [record.getMessage() for record in caplog.records]
    shown += [str(record.args) for record in caplog.records]
    assert not [text for text in shown if secret in text]


# --- configuration and routing -----------------------------------------------------------------


async def test_a_model_not_configured_here_is_rejected_without_a_call(fake):
    backend = SegmindBackend(base_url=fake.base_url, api_key=API_KEY, timeout_s=5,
                             models=["kolors"])

    error = await failure(backend, imagine("a fox", model="chroma"))

    assert isinstance(error, BackendRejected)
    assert not backend.serves("chroma") and backend.serves("kolors")
    assert fake.requests == []


async def test_segmind_without_an_api_key_serves_nothing_and_calls_nothing(fake):
    backend = SegmindBackend(base_url=fake.base_url, api_key=None, timeout_s=5, models=MODELS)

    error = await failure(backend, imagine("a fox"))

    assert not backend.serves("flux-schnell")
    assert isinstance(error, BackendUnavailable)
    assert fake.requests == []


def test_a_model_without_a_body_builder_is_refused_at_construction():
    with pytest.raises(ValueError, match="sdxl"):
        SegmindBackend(base_url="https://api.segmind.com/v1", api_key="k", timeout_s=5,
                       models=["sdxl"])


def test_a_base_url_that_is_not_http_is_refused_at_construction():
    with pytest.raises(ValueError, match="base_url"):
        SegmindBackend(base_url="api.segmind.com", api_key="k", timeout_s=5, models=MODELS)


async def test_a_shared_client_is_used_and_left_open_by_aclose(fake):
    async with httpx.AsyncClient() as shared:
        backend = SegmindBackend(base_url=fake.base_url, api_key=API_KEY, timeout_s=5,
                                 models=MODELS, client=shared)
        await backend.generate(imagine("a fox"))
        await backend.aclose()

        assert not shared.is_closed


async def test_concurrent_generations_share_one_client(backend):
    await asyncio.gather(*(backend.generate(imagine("a fox")) for _ in range(5)))

    assert backend._client is not None
    first = backend._client
    await backend.generate(imagine("a fox"))
    assert backend._client is first


# --- health ------------------------------------------------------------------------------------


async def test_segmind_health_says_configured_and_shows_the_last_credits(backend, fake):
    fake.credits = 20
    await backend.generate(imagine("a fox"))

    health = await backend.health()

    assert health.ok and health.name == "segmind"
    assert health.remaining_credits == 19
    assert "not checked" in health.detail


async def test_segmind_health_without_a_key_is_not_ok():
    backend = SegmindBackend(api_key=None, timeout_s=5, models=MODELS)

    health = await backend.health()

    assert not health.ok and "SEGMIND_API_KEY" in health.detail


async def test_segmind_health_reports_the_last_admin_problem_until_a_success(backend, fake):
    fake.faults = [406]
    await failure(backend, imagine("a fox"))

    assert not (await backend.health()).ok
    await backend.generate(imagine("a fox"))
    assert (await backend.health()).ok


async def test_segmind_health_keeps_the_credits_a_406_answer_reported(backend, fake):
    fake.credits = 0
    await failure(backend, imagine("a fox"))

    assert (await backend.health()).remaining_credits == 0
