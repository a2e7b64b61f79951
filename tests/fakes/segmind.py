"""FakeSegmind: a loopback aiohttp server that follows Segmind's documented HTTP contract.

Use it wherever a test needs Segmind (or our GPU worker, which speaks the same contract)::

    async with FakeSegmind(api_key="k") as fake:
        backend = SegmindBackend(base_url=fake.base_url, api_key="k", ...)
        fake.faults = [500, 429, "timeout"]      # the next three calls fail, in this order
        ...
        assert fake.requests[-1].json["seed"] == 7

The contract it follows (shared/seeds: Segmind's pages for chroma, flux-schnell, kolors):

- ``POST /v1/{model}`` with a JSON body; ``x-api-key`` must equal ``api_key`` (401 otherwise;
  ``api_key=None`` turns the check off). An unknown model is 404, another method 405.
- Bodies are checked against each model's documented fields and limits (MODELS below): a
  missing prompt, a wrong type, a value out of range or not allowed, or (``strict``) a field the
  model does not document is a 400 with ``{"error": "<what is wrong>"}``.
- A 200 carries a real image made with Pillow whose pixels depend only on (prompt, seed) and,
  as our worker does, variation_seed/variation_strength. chroma honours image_format, kolors
  output_format; flux-schnell always answers JPEG (it has no format field). The image is the
  requested size divided by ``image_scale`` (16 by default, to stay fast); chroma's preset
  aspect_ratio labels set the size as Segmind does.
- Raw bytes carry one image. chroma's ``base64: true`` (or the ``answer_base64`` knob) answers
  JSON instead: ``{"image": b64}`` for one image, ``{"images": [b64, ...]}`` for several
  (seeds seed, seed+1, ...), or always ``{"images": [...]}`` when ``base64_key="images"``.
- Each image costs ``cost_per_image`` credits (``model_costs[model]`` when set), taken off
  ``credits`` as each call is answered, so ``x-remaining-credits`` falls call by call; it is sent
  on every 200 (``credits_header=False`` leaves it out). A request that costs more than
  ``credits`` is a 406 (Segmind's "not enough credits").
- ``GET /health`` (and ``/v1/health``) answers the ``health`` dict as JSON when it is set (to
  stand in for our worker, whose /health needs the key too), 404 otherwise.

Knobs, plain attributes a test can set at any time:

    latency_s        seconds before every answer (0)
    gate             None, or an asyncio.Event: while it is not set, every answer waits for it
                     (after latency_s, before faults are consumed)
    faults           list consumed one per request, in order, before anything else is checked:
                     an int status (an error JSON body; 429 adds Retry-After), a tuple
                     (status, json_body), or one of
                     "timeout"            hold the request for hang_s, then answer 504
                     "disconnect"         drop the connection without an answer
                     "not-image"          200, image/png, bytes that are not an image
                     "wrong-content-type" 200, a real image sent as text/html
                     "truncated"          200, image/png, the first half of a real PNG
                     "slow-body"          200, a real image sent in 8 pieces, slow_chunk_s apart
                     "base64"             200, the image as base64 JSON whatever was asked
    failure_rate     share of requests answered 500, drawn from a seeded random (rng_seed)
    retry_after      the Retry-After value of 429 answers ("1")
    status_override  answer this status to every request while set; fail_for(status, s) sets
                     it for s seconds (status_override_until, a time.monotonic() deadline)
    credits          remaining credits (1000.0); cost_per_image (1.0); model_costs ({} : per
                     model, instead of cost_per_image); credits_header (True)
    api_key          the key required in x-api-key (None: no check)
    strict           reject undocumented fields (True)
    variation        act as our worker: accept variation_seed/variation_strength (False)
    answer_base64    None: as the body asks; True/False: force base64 JSON / raw bytes
    base64_key       "image" or "images": the JSON shape of a one-image base64 answer
    image_scale      divide the requested size by this (16); 1 gives the true size
    hang_s, slow_chunk_s   how long "timeout" holds (60) and the gap between "slow-body" pieces
    health           the worker's /health answer, or None
    record           keep every request in ``requests`` (True)

What it records: ``requests`` (RecordedRequest: method, path, model, headers with lower-case
names, json, at), ``images_served``, ``in_flight`` and ``peak_in_flight``. Helpers:
``bodies(model)``, ``expected_color(prompt, seed)``, ``reset()``. Closing the server ends every
held request at once, so tests tear down fast. It serves well over 1,000 requests/s at zero
latency (images are cached by their key).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import json
import random
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from PIL import Image, ImageDraw

# --- the documented contract, as data ----------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One documented body field: its type and, when documented, its range or choices."""

    kind: str  # "str" | "int" | "number" | "bool"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    multiple_of: int = 1


SAMPLERS = (
    "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "lms", "dpm_fast", "dpm_adaptive",
    "dpmpp_2s_a", "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde",
)
SCHEDULERS = ("normal", "karras", "exponential", "beta", "sgm_uniform", "simple")
CHROMA_PRESETS = (
    "1:1 square 1024x1024", "3:4 portrait 896x1152", "5:8 portrait 832x1216",
    "9:16 portrait 768x1344", "9:21 portrait 640x1536", "4:3 landscape 1152x896",
    "3:2 landscape 1216x832", "16:9 landscape 1344x768", "21:9 landscape 1536x640",
)
# Kolors' page leaves the list empty; these are the diffusers schedulers it is known to take.
KOLORS_SCHEDULERS = (
    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
    "LMSDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
    "DPMSolverMultistepScheduler", "DPMSolverSDEScheduler", "DDIMScheduler", "PNDMScheduler",
    "UniPCMultistepScheduler",
)
FORMATS = ("jpeg", "png", "webp")
SEED = Field("int", -1, 2**63 - 1)
COUNT = Field("int", 1, 10)  # samples has no documented maximum; kolors documents 1-10

MODELS: dict[str, dict[str, Field]] = {
    "chroma": {
        "prompt": Field("str"),
        "negative_prompt": Field("str"),
        "width": Field("int", 768, 2048),
        "height": Field("int", 768, 2048),
        "aspect_ratio": Field("str", choices=("custom", *CHROMA_PRESETS)),
        "cfg": Field("number", 1, 20),
        "sampler_name": Field("str", choices=SAMPLERS),
        "scheduler": Field("str", choices=SCHEDULERS),
        "steps": Field("int", 10, 75),
        "seed": SEED,
        "samples": COUNT,
        "image_format": Field("str", choices=FORMATS),
        "image_quality": Field("int", 1, 100),
        "base64": Field("bool"),
    },
    "flux-schnell": {
        "prompt": Field("str"),
        "steps": Field("int", 1, 8),
        "seed": SEED,
        "sampler_name": Field("str", choices=SAMPLERS),
        "scheduler": Field("str", choices=SCHEDULERS),
        "samples": COUNT,
        "width": Field("int", 512, 2048, multiple_of=8),
        "height": Field("int", 512, 2048, multiple_of=8),
        "denoise": Field("number", 0, 1),
    },
    "kolors": {
        "prompt": Field("str"),
        "negative_prompt": Field("str"),
        "cfg": Field("number", 0, 20),
        "seed": SEED,
        "steps": Field("int", 1, 50),
        "width": Field("int", 512, 2048),
        "height": Field("int", 512, 2048),
        "scheduler": Field("str", choices=KOLORS_SCHEDULERS),
        "output_format": Field("str", choices=FORMATS),
        "output_quality": Field("int", 0, 100),
        "number_of_images": COUNT,
    },
}
VARIATION_FIELDS = {
    "variation_seed": Field("int", 0, 2**63 - 1),
    "variation_strength": Field("number", 0, 1),
}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


def check_body(
    model: str, body: Any, *, strict: bool = True, variation: bool = False
) -> str | None:
    """What is wrong with a body for `model` under the documented limits, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    fields = dict(MODELS[model])
    if variation:
        fields.update(VARIATION_FIELDS)
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        return "prompt is required"
    for name, value in body.items():
        spec = fields.get(name)
        if spec is None:
            if strict:
                return f"{name} is not a parameter of {model}"
            continue
        problem = _check_value(name, value, spec)
        if problem:
            return problem
    return None


def _check_value(name: str, value: Any, spec: Field) -> str | None:
    kinds = {"str": (str,), "int": (int,), "number": (int, float), "bool": (bool,)}[spec.kind]
    if not isinstance(value, kinds) or (spec.kind != "bool" and isinstance(value, bool)):
        return f"{name} must be of type {spec.kind}"
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}"
    if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
        return f"{name} must be between {spec.low:g} and {spec.high:g}"
    if spec.multiple_of > 1 and value % spec.multiple_of:
        return f"{name} must be a multiple of {spec.multiple_of}"
    return None


# --- images ------------------------------------------------------------------------------------


def image_key(
    prompt: str,
    seed: int,
    variation_seed: int | None = None,
    variation_strength: float | None = None,
) -> bytes:
    """The digest that decides an image's pixels."""
    text = json.dumps([prompt, seed, variation_seed, variation_strength])
    return hashlib.sha256(text.encode()).digest()


@functools.lru_cache(maxsize=4096)
def render(key: bytes, width: int, height: int, image_format: str, quality: int = 90) -> bytes:
    """A small image: a background colour and a rectangle, both drawn from `key`."""
    image = Image.new("RGB", (width, height), tuple(key[0:3]))
    x0, y0 = key[6] * width // 512, key[7] * height // 512
    x1, y1 = x0 + max(1, width // 2), y0 + max(1, height // 2)
    ImageDraw.Draw(image).rectangle((x0, y0, x1, y1), fill=tuple(key[3:6]))
    out = io.BytesIO()
    if image_format == "png":
        image.save(out, format="PNG", compress_level=1)
    else:
        image.save(out, format=image_format.upper(), quality=max(1, quality))
    return out.getvalue()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    model: str | None
    headers: dict[str, str]  # lower-case names
    json: Any  # the parsed body, or None when it is not JSON
    at: float  # time.monotonic()


# --- the server ----------------------------------------------------------------------------------


class FakeSegmind:
    """Segmind on 127.0.0.1 with a random port; see the module docstring for the knobs."""

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        credits: float = 1000.0,
        cost_per_image: float = 1.0,
        latency_s: float = 0.0,
        faults: Collection[int | str | tuple[int, Any]] = (),
        failure_rate: float = 0.0,
        rng_seed: int = 0,
        retry_after: str | None = "1",
        strict: bool = True,
        variation: bool = False,
        answer_base64: bool | None = None,
        base64_key: str = "image",
        image_scale: int = 16,
        hang_s: float = 60.0,
        slow_chunk_s: float = 0.1,
        health: dict[str, Any] | None = None,
        record: bool = True,
        model_costs: dict[str, float] | None = None,
        credits_header: bool = True,
    ) -> None:
        self.api_key = api_key
        self.credits = credits
        self.cost_per_image = cost_per_image
        self.model_costs: dict[str, float] = dict(model_costs or {})
        self.credits_header = credits_header
        self.latency_s = latency_s
        self.faults: list[int | str | tuple[int, Any]] = list(faults)
        self.failure_rate = failure_rate
        self.rng = random.Random(rng_seed)
        self.retry_after = retry_after
        self.status_override: int | None = None
        self.status_override_until: float | None = None
        self.strict = strict
        self.variation = variation
        self.answer_base64 = answer_base64
        self.base64_key = base64_key
        self.image_scale = image_scale
        self.hang_s = hang_s
        self.slow_chunk_s = slow_chunk_s
        self.health = health
        self.record = record
        self.gate: asyncio.Event | None = None
        self.requests: list[RecordedRequest] = []
        self.images_served = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT"""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT/v1, where the models live."""
        return f"{self.root_url}/v1"

    async def __aenter__(self) -> FakeSegmind:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/health", self._health)
        app.router.add_route("*", "/v1/{model}", self._handle)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening; requests that are being held end at once."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # knobs as methods ------------------------------------------------------------------------

    def fail_for(self, status: int, seconds: float | None = None) -> None:
        """Answer `status` to every request for `seconds` (None: until cleared)."""
        self.status_override = status
        self.status_override_until = None if seconds is None else time.monotonic() + seconds

    def reset(self) -> None:
        """Forget recorded requests and clear faults and overrides."""
        self.requests.clear()
        self.faults = []
        self.status_override = None
        self.status_override_until = None
        self.failure_rate = 0.0

    def bodies(self, model: str | None = None) -> list[Any]:
        """The JSON bodies received, for one model or all."""
        return [r.json for r in self.requests if model is None or r.model == model]

    @staticmethod
    def expected_color(
        prompt: str, seed: int, variation_seed: int | None = None,
        variation_strength: float | None = None,
    ) -> tuple[int, int, int]:
        """The background colour (the pixel at 0, 0) of the image for (prompt, seed)."""
        key = image_key(prompt, seed, variation_seed, variation_strength)
        return key[0], key[1], key[2]

    # handlers ----------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.StreamResponse:
        if self.health is None:
            return _error(404, "no health endpoint on Segmind")
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return _error(401, "Missing or invalid API key")
        return web.json_response(self.health)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        try:
            body: Any = await request.json() if request.can_read_body else None
        except ValueError:
            body = None
        if self.record:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append(
                RecordedRequest(request.method, request.path, model, headers, body,
                                time.monotonic())
            )
        if self.latency_s > 0:
            await self._wait(self.latency_s)
        if self.gate is not None:
            await self.gate.wait()
        early = await self._fault(request, body, model)
        if early is not None:
            return early
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            # Like some real services, quote the key it got: clients must not pass this on.
            sent = request.headers.get("x-api-key", "")
            return _error(401, f"Unauthorized: invalid API key {sent!r}")
        if model not in MODELS:
            return _error(404, f"model {model} not found")
        if request.method != "POST":
            return _error(405, f"method {request.method} not allowed")
        problem = check_body(model, body, strict=self.strict, variation=self.variation)
        if problem:
            return _error(400, problem)
        return self._images(model, body)

    async def _fault(
        self, request: web.Request, body: Any, model: str
    ) -> web.StreamResponse | None:
        """The scripted, random or overriding failure for this request, if any."""
        if self.status_override is not None:
            until = self.status_override_until
            if until is None or time.monotonic() < until:
                return self._status(self.status_override)
            self.status_override = self.status_override_until = None
        if self.faults:
            if not isinstance(self.faults, list):  # a test may assign a tuple
                self.faults = list(self.faults)
            fault = self.faults.pop(0)
            return await self._scripted(fault, request, body, model)
        if self.failure_rate and self.rng.random() < self.failure_rate:
            return _error(500, "Server had some issue with processing")
        return None

    async def _scripted(
        self, fault: int | str | tuple[int, Any], request: web.Request, body: Any, model: str
    ) -> web.StreamResponse:
        if isinstance(fault, tuple):
            return web.json_response(fault[1], status=fault[0])
        if isinstance(fault, int):
            return self._status(fault)
        sample = render(image_key("fault", 0), 16, 16, "png")
        if fault == "timeout":
            await self._wait(self.hang_s)
            return _error(504, "Request timed out")
        if fault == "disconnect":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        if fault == "not-image":
            return web.Response(body=b"this is not an image", content_type="image/png")
        if fault == "wrong-content-type":
            return web.Response(body=sample, content_type="text/html")
        if fault == "truncated":
            return web.Response(body=sample[: len(sample) // 2], content_type="image/png")
        if fault == "slow-body":
            return await self._slow(request, sample)
        if fault == "base64":
            if model in MODELS and check_body(model, body, strict=False) is None:
                return self._images(model, body, as_base64=True)
            return web.json_response({"image": base64.b64encode(sample).decode()})
        raise ValueError(f"unknown fault {fault!r}")

    def _status(self, status: int) -> web.Response:
        words = {
            400: "Invalid parameters or request format", 401: "Missing or invalid API key",
            403: "Insufficient permissions", 404: "Model or endpoint not found",
            405: "Method not allowed", 406: "Not enough credits", 429: "Too many requests",
            500: "Internal server error", 502: "Service temporarily unavailable",
            503: "Service unavailable", 504: "Request timed out",
        }
        response = _error(status, words.get(status, "error"))
        if status == 429 and self.retry_after is not None:
            response.headers["Retry-After"] = self.retry_after
        return response

    async def _slow(self, request: web.Request, data: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.content_length = len(data)
        await response.prepare(request)
        step = max(1, len(data) // 8)
        try:
            for start in range(0, len(data), step):
                await response.write(data[start:start + step])
                if await self._wait(self.slow_chunk_s):
                    break
        except ConnectionResetError:  # the client gave up, as it should
            pass
        return response

    def _images(
        self, model: str, body: dict[str, Any], as_base64: bool | None = None
    ) -> web.Response:
        count = int(body.get("samples", body.get("number_of_images", 1)))
        use_base64 = as_base64 if as_base64 is not None else self.answer_base64
        if use_base64 is None:
            use_base64 = bool(body.get("base64", False))
        if not use_base64:
            count = 1  # raw bytes carry one image
        cost = count * self.model_costs.get(model, self.cost_per_image)
        if cost > self.credits:
            return _error(406, "Not enough credits", credits=self.credits)
        self.credits -= cost
        self.images_served += count
        width, height = _size(model, body)
        width = max(8, width // max(1, self.image_scale))
        height = max(8, height // max(1, self.image_scale))
        image_format = _format(model, body)
        quality = int(body.get("image_quality", body.get("output_quality", 90)))
        seed = int(body.get("seed", 123456789))
        images = [
            render(
                image_key(body["prompt"], seed + i, body.get("variation_seed"),
                          body.get("variation_strength")),
                width, height, image_format, quality,
            )
            for i in range(count)
        ]
        headers = {"x-remaining-credits": f"{self.credits:g}"} if self.credits_header else {}
        if not use_base64:
            return web.Response(
                body=images[0], content_type=CONTENT_TYPES[image_format], headers=headers
            )
        encoded = [base64.b64encode(image).decode() for image in images]
        payload: dict[str, Any] = (
            {"image": encoded[0]} if count == 1 and self.base64_key == "image"
            else {"images": encoded}
        )
        return web.json_response(payload, headers=headers)

    async def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the server is closing."""
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return False
        return True


def _size(model: str, body: dict[str, Any]) -> tuple[int, int]:
    label = body.get("aspect_ratio", "custom") if model == "chroma" else "custom"
    if label != "custom":
        width, _, height = label.rsplit(" ", 1)[-1].partition("x")
        return int(width), int(height)
    return int(body.get("width", 1024)), int(body.get("height", 1024))


def _format(model: str, body: dict[str, Any]) -> str:
    if model == "chroma":
        return str(body.get("image_format", "png"))
    if model == "kolors":
        return str(body.get("output_format", "webp"))
    return "jpeg"  # flux-schnell has no format field


def _error(status: int, message: str, credits: float | None = None) -> web.Response:
    headers = {"x-remaining-credits": f"{credits:g}"} if credits is not None else None
    return web.json_response({"error": message}, status=status, headers=headers)
