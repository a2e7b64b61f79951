"""Our GPU worker as an ImageBackend: the same HTTP contract as Segmind, so the same client.

The worker's URL is its root, ``http://gpu-box:8000`` (a trailing ``/v1`` is accepted too):

    POST {root}/v1/{model}   Segmind's body for that model, plus variation_seed and
                             variation_strength; answers image bytes like Segmind
    GET  {root}/health       {"models": [...], "device": ..., "queue_depth": ...,
                             "seconds_per_image": {...}}

Both carry the ``x-api-key`` header when an API key is configured.
"""

from __future__ import annotations

from collections.abc import Collection

import httpx

from bot.backends.segmind import SegmindBackend


def worker_root(url: str) -> str:
    """The worker's root URL: `url` without a trailing slash or /v1."""
    root = url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def worker_backend(
    url: str,
    api_key: str | None,
    timeout_s: float,
    models: Collection[str],
    client: httpx.AsyncClient | None = None,
) -> SegmindBackend:
    """A SegmindBackend named "worker" for our GPU worker; it varies every model it serves."""
    root = worker_root(url)
    return SegmindBackend(
        name="worker",
        hosted=False,
        base_url=f"{root}/v1",
        api_key=api_key,
        timeout_s=timeout_s,
        models=models,
        client=client,
        variation_models=models,
        health_url=f"{root}/health",
    )
