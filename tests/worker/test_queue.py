"""One generation at a time, the rest in order; a client that leaves cancels its job; out of
memory is a 503 and the worker goes on serving.

Faults and pauses are put into the real tiny models with torch's own forward hooks.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import torch

from tests.worker.support import SMALL, Served


@contextmanager
def forward_hook(module: torch.nn.Module, hook: Callable[..., None]) -> Iterator[None]:
    """Run `hook` before every forward of `module` while inside the block."""
    handle = module.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def open_request(url: str, model: str, body: dict[str, Any]) -> socket.socket:
    """Send a POST on a raw socket and leave it open (the caller hangs up by closing it)."""
    parts = urlsplit(url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((parts.hostname, parts.port))
    sock.sendall(
        f"POST /v1/{model} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    )
    return sock


def denoiser(engine: Any, model: str) -> torch.nn.Module:
    return engine.models[model].denoiser


def test_jobs_run_one_at_a_time_in_arrival_order(worker: Served, engine: Any) -> None:
    gate, started = threading.Event(), threading.Event()
    threads_seen: set[str] = set()

    def hold_first_job(*_args: Any) -> None:
        threads_seen.add(threading.current_thread().name)
        started.set()
        gate.wait(30)

    finished: list[str] = []

    def post(name: str) -> None:
        with httpx.Client(base_url=worker.url, timeout=60) as client:
            body = {"prompt": f"job {name}", **SMALL["flux-schnell"]}
            assert client.post("/v1/flux-schnell", json=body).status_code == 200
        finished.append(name)

    with forward_hook(denoiser(engine, "flux-schnell"), hold_first_job):
        jobs = [threading.Thread(target=post, args=(name,)) for name in "ABC"]
        jobs[0].start()
        assert started.wait(30)
        for depth, job in enumerate(jobs[1:], start=2):
            job.start()
            wait_until(lambda d=depth: worker.health().json()["queue_depth"] == d)
        assert finished == []
        gate.set()
        for job in jobs:
            job.join(60)

    assert finished == ["A", "B", "C"]
    assert len(threads_seen) == 1
    assert worker.health().json()["queue_depth"] == 0


def test_a_client_that_disconnects_stops_its_job_at_the_next_step(
    worker: Served, engine: Any
) -> None:
    started = threading.Event()
    calls = 0

    def slow_step(*_args: Any) -> None:
        nonlocal calls
        calls += 1
        started.set()
        time.sleep(0.05)

    cancelled_before = worker.health().json()["cancelled"]
    body = {"prompt": "a long one", **SMALL["chroma"], "steps": 75}  # 150 denoiser calls
    with forward_hook(denoiser(engine, "chroma"), slow_step):
        sock = open_request(worker.url, "chroma", body)
        assert started.wait(30)
        sock.close()
        wait_until(lambda: worker.health().json()["cancelled"] == cancelled_before + 1)

    assert calls < 30
    assert worker.health().json()["queue_depth"] == 0
    assert worker.small("chroma").status_code == 200


def test_a_waiting_job_whose_client_left_never_runs(worker: Served, engine: Any) -> None:
    gate, started = threading.Event(), threading.Event()
    kolors_calls = 0

    def hold(*_args: Any) -> None:
        started.set()
        gate.wait(30)

    def count(*_args: Any) -> None:
        nonlocal kolors_calls
        kolors_calls += 1

    cancelled_before = worker.health().json()["cancelled"]
    with (
        forward_hook(denoiser(engine, "flux-schnell"), hold),
        forward_hook(denoiser(engine, "kolors"), count),
    ):
        first = threading.Thread(target=worker.small, args=("flux-schnell",))
        first.start()
        assert started.wait(30)
        waiting = open_request(worker.url, "kolors", {"prompt": "x", **SMALL["kolors"]})
        wait_until(lambda: worker.health().json()["queue_depth"] == 2)
        connected = worker.open_connections()
        waiting.close()
        # uvicorn drops the connection in the same step that tells the app its client left, so
        # once it is gone the job is marked cancelled before the first job can end.
        wait_until(lambda: worker.open_connections() == connected - 1)
        gate.set()
        first.join(60)
        wait_until(lambda: worker.health().json()["cancelled"] == cancelled_before + 1)

    assert kolors_calls == 0


def test_out_of_memory_is_a_503_with_a_clear_sentence(worker: Served, engine: Any) -> None:
    def out_of_memory(*_args: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    with forward_hook(denoiser(engine, "kolors"), out_of_memory):
        response = worker.small("kolors", width=1024, height=768)

    assert response.status_code == 503
    assert response.json() == {
        "error": "The worker's CPU ran out of memory making a 1024x768 kolors image; try a "
        "smaller size, or start the worker with --cpu-offload or --vae-tiling."
    }


def test_the_worker_keeps_serving_after_running_out_of_memory(
    worker: Served, engine: Any
) -> None:
    def out_of_memory(*_args: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory.")

    with forward_hook(denoiser(engine, "flux-schnell"), out_of_memory):
        assert worker.small("flux-schnell").status_code == 503

    assert worker.small("flux-schnell").status_code == 200
    assert worker.small("kolors").status_code == 200
