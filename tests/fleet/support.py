"""Helpers for the fleet's tests: the running fleet, polling it, reading images."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

API_KEY = "fleet-test-key-4b2e"
FLEET_APP = "tests"  # the package fleet's Serve application, at /tests
SMALL = {"prompt": "a red fox in the snow", "width": 512, "height": 512, "steps": 1}
# About three seconds on one CPU thread: long enough to find its replica busy and kill it.
SLOW = {"prompt": "a lighthouse", "width": 2048, "height": 2048, "steps": 8}
# About a second: long enough to find its replica busy and signal the command meanwhile.
MEDIUM = {"prompt": "a lighthouse", "width": 1024, "height": 1024, "steps": 4}

T = TypeVar("T")


@dataclass(frozen=True)
class Cluster:
    """The package's local Ray: the address another process joins it by, the token settings
    that process needs, and the URL of the cluster's Serve proxy (each application under it)."""

    address: str
    auth: dict[str, str]
    serve_url: str


@dataclass
class Fleet:
    """The session's fleet: its URL and a synchronous client that sends the API key."""

    url: str
    client: Any  # httpx.Client

    def post(self, model: str, body: dict[str, Any], **kwargs: Any) -> Any:
        """POST /v1/{model} with a JSON body (and the key)."""
        return self.client.post(f"/v1/{model}", json=body, **kwargs)

    def health(self) -> Any:
        """GET /health (with the key)."""
        return self.client.get("/health")

    def live_replicas(self) -> list[dict[str, Any]]:
        """The replicas /health lists now (none while it answers 503)."""
        response = self.health()
        return response.json()["replica_list"] if response.status_code == 200 else []

    def wait_for_replicas(self, count: int, seconds: float = 90) -> list[dict[str, Any]]:
        """Poll /health until `count` replicas are live."""
        return poll(lambda: (found if len(found := self.live_replicas()) == count else None),
                    seconds, f"{count} live replicas")

    def busy_replicas(self, count: int, seconds: float = 60) -> list[dict[str, Any]]:
        """Poll /health until exactly `count` replicas hold a request; their entries."""
        return poll(lambda: busy if len(busy := [r for r in self.live_replicas()
                                                 if r["ongoing"] > 0]) == count else None,
                    seconds, f"{count} busy replicas")

    def busy_replica(self, seconds: float = 60) -> dict[str, Any]:
        """Poll /health until one replica holds a request; that replica's entry."""
        return self.busy_replicas(1, seconds)[0]


def poll(probe: Callable[[], T | None], seconds: float, what: str, every_s: float = 0.05) -> T:
    """probe() until it returns something other than None, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {seconds:g} s")
        time.sleep(every_s)


def wait_for_line(command: subprocess.Popen[Any], stderr: Path, line: str,
                  seconds: float = 180, nth: int = 1) -> str:
    """Poll a command's stderr (a file) for its nth line beginning with `line`; that whole
    line. Fails at once if the command exits first."""
    def said() -> str | None:
        found = [seen for seen in stderr.read_text(errors="replace").splitlines()
                 if seen.startswith(line)]
        if len(found) >= nth:
            return found[nth - 1]
        if command.poll() is not None:
            raise AssertionError(f"the command exited {command.returncode} before saying "
                                 f"{line!r}: {stderr.read_text(errors='replace')[-3000:]}")
        return None

    return poll(said, seconds, f"the line {line!r}", every_s=0.2)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (Serve's proxy needs a number, not 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two images' RGB pixels (0 = identical, 255 = opposite)."""
    import io

    import numpy as np
    from PIL import Image

    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float64)
    return float(np.abs(x - y).mean())
