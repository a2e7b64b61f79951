"""Helpers for the worker's tests: the cheapest requests, and uvicorn on loopback in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MODELS = ("flux-schnell", "chroma", "kolors")
# The cheapest request each model's limits allow (flux 512 px, chroma 768 px and 10 steps).
SMALL: dict[str, dict[str, Any]] = {
    "flux-schnell": {"width": 512, "height": 512, "steps": 1},
    "chroma": {"width": 768, "height": 768, "steps": 10},
    "kolors": {"width": 512, "height": 512, "steps": 2},
}


@dataclass
class Served:
    """A running worker: its base URL, its synchronous HTTP client, and its server."""

    url: str
    client: Any  # httpx.Client
    server: BackgroundServer

    def open_connections(self) -> int:
        """HTTP connections the server holds open; one goes when it has seen its client leave."""
        return self.server.open_connections()

    def post(self, model: str, body: dict[str, Any], **kwargs: Any) -> Any:
        """POST /v1/{model} with a JSON body."""
        return self.client.post(f"/v1/{model}", json=body, **kwargs)

    def small(self, model: str, **fields: Any) -> Any:
        """POST the cheapest valid request for `model`, with `fields` on top."""
        return self.post(model, {"prompt": "a red fox in the snow", **SMALL[model], **fields})

    def health(self, **kwargs: Any) -> Any:
        """GET /health."""
        return self.client.get("/health", **kwargs)


class BackgroundServer:
    """uvicorn on 127.0.0.1, port 0, in a thread; stopped on exit."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the worker did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def open_connections(self) -> int:
        """How many client connections uvicorn holds (it drops one as it sees it lost)."""
        return len(self.server.server_state.connections)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(engine: Any, api_key: str | None = None) -> Iterator[Served]:
    """Run the worker app for `engine` on loopback and yield a client for it."""
    import httpx

    from bot.worker.app import create_app

    server = BackgroundServer(create_app(engine, api_key=api_key))
    with server as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield Served(url, client, server)


def image_of(data: bytes) -> Any:
    """Decode image bytes with Pillow (fully loaded)."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two images' RGB pixels (0 = identical, 255 = opposite)."""
    import numpy as np

    x = np.asarray(image_of(a).convert("RGB"), dtype=np.float64)
    y = np.asarray(image_of(b).convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())
