"""SegmindBackend: the Segmind HTTP contract, spoken with httpx, to Segmind or to our GPU worker.

What one call sends: ``POST {base_url}/{model}`` with the header ``x-api-key`` and a JSON body
in the model's own field names (see BODY_BUILDERS below; the fields come from Segmind's API
pages in shared/seeds). What comes back: the image bytes (image/png, image/jpeg, image/webp),
or JSON holding base64 (``{"image": "<b64>"}`` or ``{"images": ["<b64>", ...]}``).

Several samples: every model has a count field (samples / number_of_images), but an answer of
image bytes carries one image. So the rule is one call per image, all in parallel, with seeds
seed, seed+1, ... (wrapping past 2**32-1) and a count of 1 each: every image can be made again
alone from its own seed, which the Vary and Reroll buttons need. A variation request (worker
only) keeps the seed and steps variation_seed instead: variation_seed, variation_seed+1, ...
If any call fails, the others are cancelled and the first error is raised: a generation is
all or nothing, so the caller refunds once.

Formats: an answer in another format than the request asked is converted locally with Pillow.
flux-schnell on Segmind has no format field and always answers JPEG, so png/webp requests for
it are converted here (webp and jpeg use image_quality).

Status codes -> errors (bot.core.errors); the service's own words go only to ``.detail``:

    400 404 405 422 (other 4xx)  BackendRejected     the request is wrong / model not served
    401 403 406                  BackendUnavailable  an admin must act (key, permission, credits)
    408, no answer in timeout_s  BackendTimeout
    429                          RateLimited         retry_after_s from Retry-After
    500 502 503 504 (other 5xx)  ServerError
    connection errors            ServerError         transient
    200 that is not an image     BadResponse

The API key is sent only in the x-api-key header; it is never logged and is scrubbed from any
error detail. ``x-remaining-credits`` is read from every answer, logged at INFO on the logger
``bot.backends.segmind`` and returned in GenerationResult.remaining_credits.

Money per request: the backend remembers the header's value each time its calls fall quiet
(none in flight). A request that starts while quiet, overlaps no other call and reads the
header on every one of its calls returns the drop from that value as
GenerationResult.credits_spent (and when that value was seen as spent_since); otherwise
credits_spent is None and the caller estimates (bot/core/budget.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import io
import json
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

import httpx
from PIL import Image

from bot.core.backend import CONTENT_TYPES, BackendHealth, GeneratedImage, GenerationResult
from bot.core.catalog import CHROMA, KOLORS_SCHEDULER_CLASSES, SEED_MAX
from bot.core.errors import (
    BackendError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    BadResponse,
    RateLimited,
    ServerError,
)
from bot.core.request import ImagineRequest

log = logging.getLogger("bot.backends.segmind")

SEGMIND_URL = "https://api.segmind.com/v1"
MAX_ANSWER_BYTES = 64 * 1024 * 1024  # a 2048x2048 PNG is far below this
HEALTH_TIMEOUT_S = 5.0

# --- request bodies, one small function per model ---------------------------------------------

# Kolors takes a diffusers scheduler class where the other models take a sampler name.
KOLORS_SCHEDULERS = KOLORS_SCHEDULER_CLASSES

Body = dict[str, Any]


def chroma_body(r: ImagineRequest, seed: int) -> Body:
    """Chroma's body: sizes, Segmind's aspect preset label (or "custom"), cfg, sampler, format."""
    return _without_none({
        "prompt": r.prompt,
        "negative_prompt": r.negative_prompt,  # left out when None: the service's default
        "width": r.width,
        "height": r.height,
        "aspect_ratio": chroma_aspect_label(r),
        "cfg": r.cfg,
        "sampler_name": r.sampler,
        "scheduler": r.scheduler,
        "steps": r.steps,
        "seed": seed,
        "samples": 1,
        "image_format": r.image_format,
        "image_quality": r.image_quality,
        "base64": False,
    })


def flux_schnell_body(r: ImagineRequest, seed: int) -> Body:
    """FLUX.1 Schnell's body; it has no format field (the answer is JPEG, converted here)."""
    return {
        "prompt": r.prompt,
        "steps": r.steps,
        "seed": seed,
        "sampler_name": r.sampler,
        "scheduler": r.scheduler,
        "samples": 1,
        "width": r.width,
        "height": r.height,
        "denoise": 1,
    }


def kolors_body(r: ImagineRequest, seed: int) -> Body:
    """Kolors' body: the sampler becomes a diffusers scheduler class name."""
    return _without_none({
        "prompt": r.prompt,
        "negative_prompt": r.negative_prompt,
        "cfg": r.cfg,
        "seed": seed,
        "steps": r.steps,
        "width": r.width,
        "height": r.height,
        "scheduler": KOLORS_SCHEDULERS[r.sampler],
        "output_format": r.image_format,
        "output_quality": r.image_quality,
        "number_of_images": 1,
    })


BODY_BUILDERS: dict[str, Callable[[ImagineRequest, int], Body]] = {
    "chroma": chroma_body,
    "flux-schnell": flux_schnell_body,
    "kolors": kolors_body,
}


def chroma_aspect_label(r: ImagineRequest) -> str:
    """Segmind's long preset label when the request's ratio is a preset of that exact size."""
    preset = CHROMA.preset(r.aspect_ratio) if r.aspect_ratio != "custom" else None
    if preset is None:
        return "custom"
    # The label names Segmind's size; our catalog may have fitted it (9:21 -> 768 px wide).
    width, _, height = preset.label.rsplit(" ", 1)[-1].partition("x")
    return preset.label if (width, height) == (str(r.width), str(r.height)) else "custom"


def _without_none(body: Body) -> Body:
    return {key: value for key, value in body.items() if value is not None}


# --- the backend ------------------------------------------------------------------------------


class SegmindBackend:
    """An ImageBackend for Segmind's HTTP contract; also our worker's (see worker_backend).

    ``base_url`` is where the models live: ``{base_url}/{model}``, e.g. https://api.segmind.com/v1.
    The name "segmind" means the hosted API: it needs an API key and has no health endpoint.
    Any other name is a server of ours, whose health is ``GET {health_url}`` (by default
    ``{base_url}/health``).
    """

    def __init__(
        self,
        *,
        name: str = "segmind",
        base_url: str = SEGMIND_URL,
        api_key: str | None,
        timeout_s: float,
        models: Collection[str],
        client: httpx.AsyncClient | None = None,
        variation_models: Collection[str] = (),
        health_url: str | None = None,
        hosted: bool = True,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"{name}: base_url must be an http(s) URL, not {base_url!r}")
        unknown = sorted(set(models) - BODY_BUILDERS.keys())
        if unknown:
            raise ValueError(f"{name}: no request body is defined for {', '.join(unknown)}")
        if timeout_s <= 0:
            raise ValueError(f"{name}: timeout_s must be positive")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.models = frozenset(models)
        self.variation_models = frozenset(variation_models)
        # Segmind itself (a key is required, no /health) rather than our worker speaking its API.
        self.hosted = hosted
        self.health_url = health_url or (None if self.hosted else f"{self.base_url}/health")
        self.last_remaining_credits: float | None = None
        self.last_health: dict[str, Any] | None = None  # the worker's own /health answer
        self._api_key = api_key or None
        self._client = client
        self._owns_client = client is None
        self._admin_problem: str | None = None  # set by 401/403/406, cleared by a 200
        # For isolating one request's drop in x-remaining-credits (see the module docstring).
        self._in_flight = 0
        self._calls_started = 0
        self._quiet_credits: tuple[float, float] | None = None  # (value, unix time)
        self._stretch_low: float | None = None  # lowest value seen since the last quiet
        self._stretch_blind = False  # a call since the last quiet had no credits header

    def accepts(self, request: ImagineRequest) -> bool:
        """False only when the worker's /health said it lacks the model (a fleet may serve
        fewer models than configured), the sampler or the scheduler."""
        if request.model not in self.models:
            return False
        listed = (self.last_health or {}).get("models")
        if isinstance(listed, list) and request.model not in listed:
            return False
        offered = ((self.last_health or {}).get("samplers") or {}).get(request.model)
        if not isinstance(offered, dict):
            return True  # Segmind, or a worker not heard from yet: let it answer
        return (request.sampler in offered.get("sampler_name", (request.sampler,))
                and request.scheduler in offered.get("scheduler", (request.scheduler,)))

    def __repr__(self) -> str:  # never shows the key
        return f"SegmindBackend(name={self.name!r}, base_url={self.base_url!r})"

    # ImageBackend ------------------------------------------------------------------------------

    def serves(self, model: str) -> bool:
        """Whether `model` is configured here (and, for Segmind, an API key is set)."""
        return model in self.models and (self._api_key is not None or not self.hosted)

    def supports_variation(self, model: str) -> bool:
        """Whether variation_seed / variation_strength are sent for `model`."""
        return model in self.variation_models

    async def generate(self, request: ImagineRequest) -> GenerationResult:
        """Generate request.samples images, one call each, in parallel (see module docstring)."""
        if request.model not in self.models:
            raise BackendRejected(
                f"{request.model} is not offered by this image service.",
                detail=f"{self.name} is not configured for {request.model}",
            )
        if self.hosted and self._api_key is None:
            raise BackendUnavailable(detail="SEGMIND_API_KEY is not set")
        before = self._quiet_credits if self._in_flight == 0 else None
        first_call = self._calls_started
        tasks = [
            asyncio.create_task(self._one(request, index)) for index in range(request.samples)
        ]
        try:
            answers = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        images = tuple(image for image, _ in answers)
        seen = [credits for _, credits in answers if credits is not None]
        remaining = min(seen) if seen else None  # calls run in parallel: the lowest is latest
        if remaining is not None:
            self.last_remaining_credits = remaining
            log.info("%s: %g credits remaining", self.name, remaining)
        spent: float | None = None
        # Isolated: quiet before, no other call started since ours did, every call read the
        # header, and the balance fell (a top-up in between shows as a rise: not measurable).
        if (before is not None and remaining is not None and len(seen) == request.samples
                and self._calls_started - first_call == request.samples
                and before[0] >= remaining):
            spent = round(before[0] - remaining, 6)
        return GenerationResult(images=images, remaining_credits=remaining, credits_spent=spent,
                                spent_since=before[1] if spent is not None and before else None)

    async def health(self) -> BackendHealth:
        """Segmind: configured or not, plus what the last call showed. Worker: GET /health."""
        credits = self.last_remaining_credits
        if self.health_url is None:
            if self._api_key is None:
                return BackendHealth(self.name, False, "SEGMIND_API_KEY is not set", credits)
            if self._admin_problem:
                return BackendHealth(self.name, False, self._admin_problem, credits)
            return BackendHealth(
                self.name, True,
                "API key set (Segmind has no health endpoint; reachability is not checked)",
                credits,
            )
        return await self._worker_health()

    async def aclose(self) -> None:
        """Close the HTTP client if this backend created it (a shared one is left open)."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # one call ----------------------------------------------------------------------------------

    async def _one(
        self, request: ImagineRequest, index: int
    ) -> tuple[GeneratedImage, float | None]:
        seed, body = self._body(request, index)
        started = time.monotonic()
        self._in_flight += 1
        self._calls_started += 1
        credits: float | None = None
        try:
            status, headers, data = await self._post(request.model, body)
            credits = _float_or_none(headers.get("x-remaining-credits"))
        finally:
            self._call_ended(credits)
        log.debug(
            "%s POST /%s seed %d -> %d in %.2fs",
            self.name, request.model, seed, status, time.monotonic() - started,
        )
        if status != 200:
            if credits is not None:
                self.last_remaining_credits = credits
            raise self._error(status, headers, data, request.model)
        self._admin_problem = None
        raw = _image_bytes(headers.get("content-type", ""), data)
        content, content_type = await asyncio.to_thread(
            checked_image, raw, request.image_format, request.image_quality
        )
        return GeneratedImage(data=content, content_type=content_type, seed=seed), credits

    def _call_ended(self, credits: float | None) -> None:
        """Fold one call's credits into the current busy stretch; when the last call in
        flight ends, its lowest value (or nothing, if a call went unread) is the quiet value."""
        self._in_flight -= 1
        if credits is None:
            self._stretch_blind = True
        else:
            low = self._stretch_low
            self._stretch_low = credits if low is None else min(low, credits)
        if self._in_flight == 0:
            blind, low = self._stretch_blind, self._stretch_low
            self._quiet_credits = None if blind or low is None else (low, time.time())
            self._stretch_low, self._stretch_blind = None, False

    def _body(self, request: ImagineRequest, index: int) -> tuple[int, Body]:
        """The seed and JSON body of the index-th image of a request."""
        variation_seed = request.variation_seed
        varied = variation_seed is not None and request.variation_strength is not None
        if varied and variation_seed is not None and self.supports_variation(request.model):
            seed = request.seed
            body = BODY_BUILDERS[request.model](request, seed)
            body["variation_seed"] = (variation_seed + index) % (SEED_MAX + 1)
            body["variation_strength"] = request.variation_strength
            return seed, body
        if varied:
            log.warning("%s cannot vary %s: variation fields not sent", self.name, request.model)
        seed = (request.seed + index) % (SEED_MAX + 1)
        return seed, BODY_BUILDERS[request.model](request, seed)

    async def _post(self, model: str, body: Body) -> tuple[int, httpx.Headers, bytes]:
        """POST the body; the whole exchange must finish within timeout_s."""
        url = f"{self.base_url}/{model}"
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._http().stream(
                    "POST", url, json=body, headers=self._headers(),
                    timeout=httpx.Timeout(self.timeout_s),
                ) as response:
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk
                        if len(data) > MAX_ANSWER_BYTES:
                            raise BadResponse(detail=f"{self.name} {model}: answer over 64 MiB")
                    return response.status_code, response.headers, bytes(data)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise BackendTimeout(
                status=None,
                detail=f"{self.name} {model}: no answer within {self.timeout_s:g}s "
                f"({type(exc).__name__})",
            ) from None
        except httpx.HTTPError as exc:
            raise ServerError(
                detail=self._scrub(f"{self.name} {model}: {type(exc).__name__}: {exc}")
            ) from None

    def _error(self, status: int, headers: httpx.Headers, data: bytes, model: str) -> BackendError:
        """The typed error for a non-200 answer; the service's text goes to .detail only."""
        said = self._scrub(data[:500].decode("utf-8", "replace"))
        detail = f"{self.name} POST /{model} -> {status}: {said}"
        if status in (401, 403, 406):
            if status == 406:
                service = "Segmind" if self.hosted else self.name
                problem = f"{self.name} answered 406: out of {service} credits"
            else:
                key = "SEGMIND_API_KEY" if self.hosted else f"the {self.name} API key"
                problem = f"{self.name} answered {status}: check {key}"
            self._admin_problem = problem
            log.error("%s (%s)", problem, said[:200])
            return BackendUnavailable(status=status, detail=detail)
        if status == 404:
            log.warning("%s does not serve %s at %s", self.name, model, self.base_url)
            return BackendRejected(
                f"{model} is not available on the image service right now.",
                status=status, detail=detail,
            )
        if status == 408:
            return BackendTimeout(status=status, detail=detail)
        if status == 429:
            return RateLimited(
                status=status, detail=detail,
                retry_after_s=retry_after_seconds(headers.get("retry-after")),
            )
        if 400 <= status < 500:
            return BackendRejected(status=status, detail=detail)
        if status >= 500:
            return ServerError(status=status, detail=detail)
        return BadResponse(status=status, detail=detail)

    # helpers -----------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s))
        return self._client

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key} if self._api_key else {}

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    async def _worker_health(self) -> BackendHealth:
        assert self.health_url is not None
        credits = self.last_remaining_credits
        try:
            response = await self._http().get(
                self.health_url, headers=self._headers(),
                timeout=httpx.Timeout(min(self.timeout_s, HEALTH_TIMEOUT_S)),
            )
        except httpx.HTTPError as exc:
            return BackendHealth(self.name, False, f"unreachable ({type(exc).__name__})", credits)
        if response.status_code in (401, 403):
            return BackendHealth(
                self.name, False, f"answered {response.status_code}: check the API key", credits
            )
        if response.status_code != 200:
            return BackendHealth(
                self.name, False, f"health answered {response.status_code}", credits
            )
        try:
            info = response.json()
            served = set(info.get("models", ()))
        except (ValueError, AttributeError, TypeError):
            return BackendHealth(self.name, False, "health answer is not the expected JSON",
                                 credits)
        self.last_health = info
        missing = sorted(self.models - served)
        parts = [f"device {info.get('device', '?')}", f"queue {info.get('queue_depth', '?')}"]
        if missing:
            parts.append(f"not serving {', '.join(missing)}")
        return BackendHealth(self.name, bool(self.models & served), ", ".join(parts), credits)


# --- answers ----------------------------------------------------------------------------------

_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/webp"}
_PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}


def _image_bytes(content_type: str, data: bytes) -> bytes:
    """The image bytes of a 200 answer: raw image bytes, or base64 inside JSON."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind in _IMAGE_TYPES:
        return data
    if kind == "application/json" or kind.endswith("+json"):
        return _base64_image(data)
    raise BadResponse(detail=f"content type {kind or 'none'!r} is not an image")


def _base64_image(data: bytes) -> bytes:
    """Decode {"image": "<b64>"} or {"images": ["<b64>", ...]} (a data: URL prefix is allowed)."""
    try:
        payload = json.loads(data)
    except ValueError:
        raise BadResponse(detail="JSON answer that does not parse") from None
    encoded: Any = None
    if isinstance(payload, dict):
        encoded = payload.get("image")
        if encoded is None and isinstance(payload.get("images"), list) and payload["images"]:
            encoded = payload["images"][0]
    if not isinstance(encoded, str):
        keys = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise BadResponse(detail=f"JSON answer without an image (keys {keys})")
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadResponse(detail="JSON answer whose image is not base64") from None


def checked_image(data: bytes, image_format: str, quality: int) -> tuple[bytes, str]:
    """Verify the bytes are an image (Pillow) and convert them to image_format when they differ.

    Returns the bytes and their content type. Raises BadResponse when Pillow cannot read them.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            found = _PIL_FORMATS.get(image.format or "")
            image.verify()  # checks PNG chunk CRCs; for JPEG and WebP it checks little ...
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # ... so decode too: this catches truncated JPEG and WebP
            if found == image_format:
                return data, CONTENT_TYPES[found]
            return _encode(image, image_format, quality), CONTENT_TYPES[image_format]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadResponse(detail=f"answer is not a readable image ({type(exc).__name__})") from None


def _encode(image: Image.Image, image_format: str, quality: int) -> bytes:
    if image_format == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    if image_format == "png":
        image.save(out, format="PNG")
    else:
        image.save(out, format=image_format.upper(), quality=max(1, quality))
    return out.getvalue()


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date measured from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
