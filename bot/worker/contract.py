"""The worker's HTTP contract, torch-free: errors, the API key check, bodies and answers.

Shared by the worker (bot.worker.app) and the Ray Serve fleet's ingress (bot.fleet.app), so
both answer alike, and the ingress, which only validates and routes, never imports torch.
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from PIL import Image
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.backend import CONTENT_TYPES
from bot.worker.params import GenerationParams, ParamError

log = logging.getLogger("bot.worker")

API_KEY_HEADER = "x-api-key"
MAX_BODY_BYTES = 256 * 1024


class BodyTooLarge(Exception):
    """A request body over MAX_BODY_BYTES (HTTP 413)."""


class GenerationCancelled(Exception):
    """The client went away; the job stopped at its next step."""


class OutOfMemory(Exception):
    """The device ran out of memory; str() is the sentence for the client."""


def error(status: int, sentence: str) -> JSONResponse:
    """A JSON error body in the contract's shape."""
    return JSONResponse({"error": sentence}, status_code=status)


def guarded(
    handler: Callable[[Request], Awaitable[Response]], api_key: str | None
) -> Callable[[Request], Awaitable[Response]]:
    """The handler behind the API key check, its errors turned into the contract's answers."""

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
