"""The worker's HTTP app: Segmind's contract for our own GPU.

    POST /v1/{model}   the model's Segmind JSON fields (+ variation_seed, variation_strength)
                       200: the image bytes with their content type, or with "base64": true
                       {"image": b64, "images": [b64, ...], "content_type": ..., "seeds": [...]}
    GET  /health       {"models", "device", "dtype", "queue_depth", "seconds_per_image", ...}
    GET  /metrics      Prometheus text format (bot.worker.metrics); the API key rule is /health's

Errors are JSON {"error": "<one sentence>"} with Segmind's status codes: 400 a bad field
(the sentence says what is allowed), 401 a missing or wrong x-api-key, 404 a model this worker
does not serve, 405 a wrong method, 413 a body over 256 KiB, 500 a failure inside the worker,
503 out of memory (the worker keeps serving). A client that disconnects cancels its job at
the next step.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.backend import CONTENT_TYPES
from bot.worker import metrics
from bot.worker.params import GenerationParams, ParamError, parse_body
from bot.worker.pipelines import Engine, GenerationCancelled, OutOfMemory
from bot.worker.queue import GenerationQueue, WorkItem

log = logging.getLogger("bot.worker")

API_KEY_HEADER = "x-api-key"
MAX_BODY_BYTES = 256 * 1024


class BodyTooLarge(Exception):
    """A request body over MAX_BODY_BYTES (HTTP 413)."""


def error(status: int, sentence: str) -> JSONResponse:
    """A JSON error body in the contract's shape."""
    return JSONResponse({"error": sentence}, status_code=status)


class WorkerApp:
    """Routes, the API key check and the queue around one Engine."""

    def __init__(self, engine: Engine, api_key: str | None = None) -> None:
        self.engine = engine
        self.api_key = api_key or None
        self.queue = GenerationQueue()
        metrics.track(self)

    def queue_depth(self) -> int:
        """Jobs waiting plus the one running (read by /metrics at scrape time)."""
        return self.queue.depth

    def loaded_models(self) -> Iterable[str]:
        """The models served (read by /metrics at scrape time)."""
        return self.engine.models.keys()

    async def health(self, request: Request) -> Response:
        """GET /health: models, device, queue depth and mean seconds per image per model."""
        return JSONResponse({
            "models": sorted(self.engine.models),
            "device": self.engine.device_name,
            "dtype": str(self.engine.dtype).removeprefix("torch."),
            "queue_depth": self.queue.depth,
            "seconds_per_image": {
                m: round(s, 4) for m, s in self.engine.seconds_per_image().items()
            },
            "images": self.engine.images_made(),
            "cancelled": self.queue.cancelled,
            "samplers": {
                m: {"sampler_name": list(t.samplers), "scheduler": list(t.schedules)}
                for m, t in self.engine.tables.items()
            },
        })

    async def generate(self, request: Request) -> Response:
        """POST /v1/{model}: validate, queue, generate, answer image bytes or base64 JSON."""
        model = request.path_params["model"]
        spec = self.engine.catalog.get(model) if model in self.engine.models else None
        if spec is None or spec.name != model:
            served = ", ".join(sorted(self.engine.models))
            return error(404, f"Model {model[:40]!r} is not served here; this worker serves "
                              f"{served}.")
        body = await read_json_body(request)
        params = parse_body(spec, body, self.engine.tables[model])
        job = WorkItem(run=lambda is_cancelled: self._generate(params, is_cancelled),
                  label=f"{model} {params.width}x{params.height} seed {params.seed}")
        images = await _unless_disconnected(request, self.queue.submit(job), job)
        if images is None:
            return Response(status_code=499)  # nobody is listening any more
        encoded = await asyncio.to_thread(encode_images, images, params)
        return image_answer(encoded, params)

    async def serve_metrics(self, request: Request) -> Response:
        """GET /metrics: the process's Prometheus metrics in the text format."""
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    def _generate(self, params: GenerationParams, is_cancelled: Callable[[], bool]) -> list[Image.Image]:
        """engine.generate on the GPU thread, timed and counted when it succeeds."""
        started = time.perf_counter()
        images = self.engine.generate(params, is_cancelled)
        metrics.GENERATION_SECONDS.labels(params.model).observe(time.perf_counter() - started)
        metrics.IMAGES.labels(params.model).inc(len(images))
        return images

    def build(self) -> Starlette:
        """The Starlette application."""

        @asynccontextmanager
        async def lifespan(_app: Starlette) -> Any:
            yield
            await self.queue.close()

        app = Starlette(
            routes=[
                Route("/health", self._guarded(self.health), methods=["GET"]),
                Route("/metrics", self._guarded(self.serve_metrics), methods=["GET"]),
                Route("/v1/{model}", self._counted(self._guarded(self.generate)), methods=["POST"]),
            ],
            exception_handlers={HTTPException: http_error},
            lifespan=lifespan,
        )
        app.state.worker = self
        return app

    def _counted(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Count every answer of a generation route by model and status (401s included)."""

        async def endpoint(request: Request) -> Response:
            response = await handler(request)
            model = metrics.model_label(request.path_params["model"], self.engine.models)
            metrics.REQUESTS.labels(model, str(response.status_code)).inc()
            return response

        return endpoint

    def _guarded(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        return guarded(handler, self.api_key)


def guarded(
    handler: Callable[[Request], Awaitable[Response]], api_key: str | None
) -> Callable[[Request], Awaitable[Response]]:
    """The handler behind the API key check, its errors turned into the contract's answers.

    Shared with the Ray Serve fleet (bot.fleet.app), so both answer alike."""

    async def endpoint(request: Request) -> Response:
        if api_key is not None and not _key_matches(request, api_key):
            return error(401, "Missing or invalid API key: send it in the x-api-key header.")
        try:
            return await handler(request)
        except ParamError as exc:
            return error(400, str(exc))
        except BodyTooLarge:
            return error(413, f"The body is over {MAX_BODY_BYTES // 1024} KiB.")
        except OutOfMemory as exc:
            return error(503, str(exc))
        except GenerationCancelled:
            return Response(status_code=499)
        except Exception:
            log.exception("request to %s failed", request.url.path)
            return error(500, "The worker failed while generating; its log has the details.")

    return endpoint


def create_app(engine: Engine, api_key: str | None = None) -> Starlette:
    """The worker's ASGI app around a loaded Engine; api_key (if set) guards every route."""
    return WorkerApp(engine, api_key).build()


def _key_matches(request: Request, api_key: str) -> bool:
    given = request.headers.get(API_KEY_HEADER, "")
    return hmac.compare_digest(given.encode("utf-8"), api_key.encode("utf-8"))


async def read_json_body(request: Request) -> Any:
    """The decoded JSON body, read with a size cap (a ParamError or BodyTooLarge otherwise)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLarge
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge
    try:
        return json.loads(raw)
    except ValueError:
        raise ParamError("The body must be JSON (Content-Type: application/json).") from None


async def _unless_disconnected(
    request: Request, work: Awaitable[list[Image.Image]], job: WorkItem
) -> list[Image.Image] | None:
    """The work's result, or None (and the job cancelled) when the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    job.cancel()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def encode_images(images: list[Image.Image], params: GenerationParams) -> list[bytes]:
    """Each image in the request's format and quality."""
    return [_encode(image, params.image_format, params.image_quality) for image in images]


def _encode(image: Image.Image, image_format: str, quality: int) -> bytes:
    out = io.BytesIO()
    if image_format == "png":
        image.save(out, format="PNG")
    else:
        image.convert("RGB").save(out, format=image_format.upper(), quality=max(1, quality))
    return out.getvalue()


def image_answer(
    encoded: list[bytes], params: GenerationParams, extra_headers: dict[str, str] | None = None
) -> Response:
    """The 200 answer: the first image's bytes, or every image as base64 JSON when asked."""
    content_type = CONTENT_TYPES[params.image_format]
    seeds = ",".join(str(s) for s in params.seeds())
    headers = {"x-seeds": seeds, "x-scheduler": params.scheduler_text(), **(extra_headers or {})}
    if params.base64:
        texts = [base64.b64encode(data).decode("ascii") for data in encoded]
        return JSONResponse(
            {"image": texts[0], "images": texts, "content_type": content_type,
             "seeds": params.seeds()},
            headers=headers,
        )
    return Response(encoded[0], media_type=content_type, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 in the contract's JSON shape."""
    assert isinstance(exc, HTTPException)
    sentences = {
        404: f"Nothing at {request.url.path[:60]}: POST /v1/{{model}} or GET /health.",
        405: f"{request.method} is not allowed on {request.url.path[:60]}.",
    }
    return error(exc.status_code, sentences.get(exc.status_code, str(exc.detail)))
