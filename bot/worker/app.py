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
the next step. The answers and the error sentences are built in bot/worker/contract.py, which
the fleet's ingress shares.
"""

from __future__ import annotations

import asyncio
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

from bot.worker import metrics
from bot.worker.contract import (
    encode_images,
    error,
    guarded,
    http_error,
    image_answer,
    read_json_body,
)
from bot.worker.params import GenerationParams, parse_body
from bot.worker.pipelines import Engine
from bot.worker.queue import GenerationQueue, WorkItem

log = logging.getLogger("bot.worker")


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


def create_app(engine: Engine, api_key: str | None = None) -> Starlette:
    """The worker's ASGI app around a loaded Engine; api_key (if set) guards every route."""
    return WorkerApp(engine, api_key).build()


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
