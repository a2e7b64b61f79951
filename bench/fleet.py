"""Fleet benchmark: what Ray Serve and our ingress add, with a pipeline of fixed latency.

Each replica serves flux-schnell through the real Engine, but its pipeline is
bot.worker.synthetic.FixedLatencyPipeline, which sleeps L per image: so every figure here is
the serving layer's (HTTP proxy, ingress, validation, routing to a replica, noise, scheduler,
JPEG encoding, batching), not a model's. For each replica count N (1, 2 and 4 by default):

- overhead: N clients, one request each at a time (so an ideal router never queues), 20 x N
  requests of one 512x512 image; overhead = client latency - L, p50 and p99; queued = how
  many of them waited behind another request (an overhead over L / 2) while, N clients for N
  replicas, a replica was idle.
- throughput: 2 x N clients (a request always waiting for every replica), 24 x N requests;
  throughput_ratio = (requests / wall time) / (N / L), where N / L is the most N replicas can
  make.

With more than one replica, the same N is measured again with Serve's default router (the
less busy of two replicas drawn at random) in place of the fleet's least-busy one
(bot/fleet/routing.py), side by side in the same run.

Then, for scale, Serve's own floor on this machine, none of our code, measured as the overhead
is: hops=2 is the fleet's shape (an ingress deployment awaiting a deployment that sleeps L),
hops=1 a single deployment that sleeps in the ingress itself; ray_floor, one call to a plain
Ray actor that sleeps L (no Serve, no HTTP: one hop between two processes); and the machine's
own floor, http_floor: a plain Starlette app on uvicorn in a process of its own, sleeping L, no
Ray. Last, engine_alone: what the worker's own code costs per image, in this process, no Ray
and no HTTP (the Engine's noise, scheduler, pipeline call with L = 0 and crop, then the JPEG).

Batching is off (--max-batch-size 1) by default: a fixed-latency pipeline sleeps L per image
whether batched or not, so batching could only add its gathering wait. The replicas take no
CPU or GPU reservation, so 4 fit on a 2-core machine (they sleep). Prints one line per count:
replicas=N throughput_ratio=X overhead_p50_ms=Y overhead_p99_ms=Z queued=Q/R, the same after
serve_default_router for N > 1, then serve_floor hops=H overhead_p50_ms=Y overhead_p99_ms=Z,
ray_floor, http_floor and engine_alone lines of the same form.

--pipeline flux serves FLUX.1-schnell at full size with random weights instead
(bot/worker/random_flux.py: nothing downloaded), 1024x1024, 4 steps, bfloat16, on one GPU per
replica (--gpus-per-replica 0.5 puts two on a GPU). L is then measured: each request's
overhead is its latency less its own share of the pipeline call (the fleet's
x-imagine-pipeline-ms), and the throughput ratio's L is the mean share in that phase; each
line adds L (p50) and the device.
--pipeline tiny-flux is the same pipeline shrunk, on the CPU: its code path only. A replica
count the cluster has no room for is named, not measured; the floors are left out.

Usage: python bench/fleet.py [--pipeline fixed|flux|tiny-flux] [--latency 0.5]
       [--replicas 1,2,4] [--gpus-per-replica G] [--size 1024] [--max-batch-size 1]
       [--batch-wait-ms 20] [--no-compare-router]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

API_KEY = "bench-fleet-key"
BODY = {"prompt": "a lighthouse", "width": 512, "height": 512, "steps": 1}
FLOOR_IMAGE = b"x" * 20_000  # what the floors answer: about a small JPEG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Driven:
    """What `drive` saw: the wall time, and per request its latency and pipeline share (the
    fleet's x-imagine-pipeline-ms), all in seconds."""

    wall: float
    latencies: list[float]
    pipeline: list[float]


async def drive(url: str, clients: int, requests: int, body: dict[str, Any] = BODY) -> Driven:
    """`clients` loops sending `requests` in all."""
    import httpx

    left = requests
    latencies: list[float] = []
    pipeline: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            started = time.perf_counter()
            response = await http.post("/v1/flux-schnell", json=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"the fleet answered {response.status_code}: {response.text}")
            pipeline.append(float(response.headers["x-imagine-pipeline-ms"]) / 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"x-api-key": API_KEY}, timeout=60,
                                 limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return Driven(time.perf_counter() - started, latencies, pipeline)


async def drive_floor(url: str, path: str, requests: int) -> list[float]:
    """One client, one request at a time, to the bare Serve application; latencies."""
    import httpx

    latencies = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(requests):
            started = time.perf_counter()
            (await http.get(path)).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def floor_apps(latency: float) -> tuple[object, object]:
    """Serve alone, none of our code: (an ingress deployment awaiting a deployment that sleeps
    `latency`, as the fleet is shaped; one deployment that sleeps in the ingress itself)."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Sleeper:
        async def make(self) -> bytes:
            await asyncio.sleep(latency)
            return FLOOR_IMAGE

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Front:
        def __init__(self, sleeper: object) -> None:
            self.sleeper = sleeper

        async def __call__(self, request: Request) -> Response:
            return Response(await self.sleeper.make.remote(), media_type="image/jpeg")

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Alone:
        async def __call__(self, request: Request) -> Response:
            await asyncio.sleep(latency)
            return Response(FLOOR_IMAGE, media_type="image/jpeg")

    return Front.bind(Sleeper.bind()), Alone.bind()


def serve_plain(port: int, latency: float) -> None:
    """In a process of its own: Starlette on uvicorn answering GET / after sleeping `latency`."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def alone(request: Request) -> Response:
        await asyncio.sleep(latency)
        return Response(FLOOR_IMAGE, media_type="image/jpeg")

    app = Starlette(routes=[Route("/", alone)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def http_floor(latency: float) -> list[float]:
    """Each overhead in ms of a plain HTTP server on this machine, measured as serve_floor's."""
    import multiprocessing

    import httpx

    port = free_port()
    # Spawned, not forked: this process holds Ray's threads and connections.
    server = multiprocessing.get_context("spawn").Process(target=serve_plain,
                                                           args=(port, latency))
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=10)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        asyncio.run(drive_floor(url, "/", 3))
        return [(s - latency) * 1000 for s in asyncio.run(drive_floor(url, "/", 20))]
    finally:
        server.terminate()
        server.join()


def ray_floor(latency: float) -> list[float]:
    """Each overhead in ms of one call to a plain Ray actor (no Serve, no HTTP) that sleeps
    `latency` on its event loop, as a replica does, one call at a time."""
    import ray

    @ray.remote(num_cpus=0)
    class Sleeper:
        async def make(self) -> bytes:
            await asyncio.sleep(latency)
            return FLOOR_IMAGE

    sleeper = Sleeper.remote()  # type: ignore[attr-defined]

    async def calls(count: int) -> list[float]:
        overhead_ms = []
        for _ in range(count):
            started = time.perf_counter()
            await sleeper.make.remote()
            overhead_ms.append((time.perf_counter() - started - latency) * 1000)
        return overhead_ms

    try:
        asyncio.run(calls(3))
        return asyncio.run(calls(20))
    finally:
        ray.kill(sleeper)


def engine_alone() -> list[float]:
    """Each time in ms the worker's own code takes for one request of BODY, in this process:
    Engine.generate around a pipeline that answers at once (L = 0), then the JPEG."""
    import torch

    from bot.worker.contract import encode_images
    from bot.worker.params import parse_body
    from bot.worker.synthetic import FixedLatencyLoader

    torch.set_num_threads(1)  # as in a replica, where Ray sets OMP_NUM_THREADS=1
    engine = FixedLatencyLoader(0.0)("flux-schnell")
    params = parse_body(engine.catalog.get("flux-schnell"), BODY, engine.tables["flux-schnell"])
    spent_ms = []
    for attempt in range(23):
        started = time.perf_counter()
        encode_images(engine.generate(params), params)
        if attempt >= 3:  # the first ones warm up: imports, the first scheduler
            spent_ms.append((time.perf_counter() - started) * 1000)
    return spent_ms


def wait_for_replicas(url: str, count: int) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/health", headers={"x-api-key": API_KEY}, timeout=10)
        if response.status_code == 200 and len(response.json()["replica_list"]) == count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} replicas did not start within 120 s")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Measured:
    """One replica count's figures: throughput over N/L, each request's overhead, and L (its
    median in the overhead phase)."""

    throughput_ratio: float
    overhead_ms: list[float]
    seconds_per_image: float
    device: str


def measure(spec: Any, url: str, count: int, latency: float | None, body: dict[str, Any]
            ) -> Measured:
    """Deploy `spec`, then measure as the module docstring says; the application is deleted
    afterwards. L is `latency` when the pipeline sleeps a fixed time; else (None) each request
    counts its own pipeline share as L, and the throughput phase the mean of its requests'
    (a real pipeline's pace varies, more so on a CPU shared with other work)."""
    import httpx
    from ray import serve

    from bot.fleet.app import build_app

    serve.run(build_app(spec, API_KEY), name="bench", route_prefix="/")
    try:
        wait_for_replicas(url, count)
        asyncio.run(drive(url, count, 2 * count, body))  # warm-up: imports, first scheduler
        single = asyncio.run(drive(url, count, 20 * count, body))
        requests = 24 * count
        loaded = asyncio.run(drive(url, 2 * count, requests, body))
        device = httpx.get(f"{url}/health", headers={"x-api-key": API_KEY},
                           timeout=10).json()["device"]
    finally:
        serve.delete("bench")
    own = [latency] * len(single.latencies) if latency is not None else single.pipeline
    throughput_l = latency if latency is not None else statistics.fmean(loaded.pipeline)
    return Measured((requests / loaded.wall) / (count / throughput_l),
                    [(s - p) * 1000 for s, p in zip(single.latencies, own, strict=True)],
                    statistics.median(own), device)


def loader_for(args: argparse.Namespace) -> tuple[Any, float | None, dict[str, Any]]:
    """The replicas' loader for --pipeline, the fixed L (None: measured) and the request body."""
    from bot.worker.random_flux import FULL_SIZE, TINY, RandomFluxLoader
    from bot.worker.synthetic import FixedLatencyLoader

    if args.pipeline == "fixed":
        return FixedLatencyLoader(args.latency), args.latency, BODY
    configs = FULL_SIZE if args.pipeline == "flux" else TINY
    size = args.size or (1024 if args.pipeline == "flux" else 512)
    body = {"prompt": "a lighthouse", "width": size, "height": size, "steps": 4}
    return RandomFluxLoader(configs), None, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", choices=("fixed", "flux", "tiny-flux"), default="fixed",
                        help="fixed: sleeps L per image; flux: FLUX.1-schnell at full size, "
                             "random weights, on GPUs; tiny-flux: the same shrunk, on the CPU")
    parser.add_argument("--latency", type=float, default=0.5, help="fixed: L, seconds per image")
    parser.add_argument("--replicas", default=None,
                        help="replica counts, comma-separated (default 1,2,4; flux: 1)")
    parser.add_argument("--gpus-per-replica", type=float, default=None,
                        help="default 1 for flux (0.5 puts two on a GPU), else 0")
    parser.add_argument("--size", type=int, default=None,
                        help="flux modes: width and height (default 1024; tiny-flux 512)")
    parser.add_argument("--max-batch-size", type=int, default=1)
    parser.add_argument("--batch-wait-ms", type=float, default=20)
    parser.add_argument("--no-compare-router", dest="compare_router", action="store_false",
                        help="skip the serve_default_router lines")
    args = parser.parse_args()
    replicas = args.replicas or ("1" if args.pipeline == "flux" else "1,2,4")
    gpus = args.gpus_per_replica
    if gpus is None:
        gpus = 1.0 if args.pipeline == "flux" else 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import ray
        from ray import serve

    from bot.fleet.main import live_machines
    from bot.fleet.spec import FleetSpec, resource_shortfall

    loader, latency, body = loader_for(args)
    ray.init(address="local", include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    what = (f"L={latency}s per image, 512x512 JPEG" if latency is not None else
            f"pipeline={args.pipeline} (random weights; L measured), {body['width']}x"
            f"{body['height']} {body['steps']} steps JPEG, gpus_per_replica={gpus:g}")
    print(f"{what}, max_batch_size={args.max_batch_size}, batch_wait={args.batch_wait_ms:g}ms, "
          f"{os.cpu_count()} CPUs, ray {ray.__version__}")
    try:
        machines = live_machines()
        for count in (int(n) for n in replicas.split(",")):
            # Serve's default router only differs from ours when there is a choice to make.
            for least_busy in (True, False) if count > 1 and args.compare_router else (True,):
                spec = FleetSpec(
                    models=("flux-schnell",), loader=loader,
                    min_replicas=count, max_replicas=count, gpus_per_replica=gpus,
                    cpus_per_replica=0, max_batch_size=args.max_batch_size,
                    batch_wait_s=args.batch_wait_ms / 1000, least_busy=least_busy,
                )
                label = "" if least_busy else "serve_default_router "
                shortfall = resource_shortfall(spec, machines)
                if shortfall:  # Serve would wait for room without end
                    print(f"{label}replicas={count} not measured: {shortfall}", flush=True)
                    continue
                run = measure(spec, url, count, latency, body)
                overhead_ms, per_image = run.overhead_ms, run.seconds_per_image
                measured = "" if latency is not None else (
                    f" seconds_per_image={per_image:.3f} device={run.device!r}")
                print(f"{label}replicas={count} throughput_ratio={run.throughput_ratio:.3f} "
                      f"overhead_p50_ms={statistics.median(overhead_ms):.1f} "
                      f"overhead_p99_ms={percentile(overhead_ms, 0.99):.1f} "
                      f"queued={sum(ms > per_image * 500 for ms in overhead_ms)}/"
                      f"{len(overhead_ms)}{measured}", flush=True)
        if latency is not None:  # the floors sleep L: for the fixed-latency pipeline only
            print_floors(url, latency)
    finally:
        ray.shutdown()


def print_floors(url: str, latency: float) -> None:
    """Serve's own floor (one and two hops), a plain Ray call's, a plain HTTP server's and the
    Engine's own work, as overhead lines."""
    from ray import serve

    two_hops, one_hop = floor_apps(latency)
    serve.run(two_hops, name="floor", route_prefix="/floor")
    serve.run(one_hop, name="floor1", route_prefix="/floor1")
    for hops, path in ((2, "/floor"), (1, "/floor1")):
        asyncio.run(drive_floor(url, path, 3))
        floor_ms = [(s - latency) * 1000 for s in asyncio.run(drive_floor(url, path, 20))]
        print_overhead(f"serve_floor hops={hops}", floor_ms)
    print_overhead("ray_floor", ray_floor(latency))
    print_overhead("http_floor", http_floor(latency))
    print_overhead("engine_alone", engine_alone())


def print_overhead(label: str, overhead_ms: list[float]) -> None:
    """One floor's line: its label, then the p50 and p99 of `overhead_ms`."""
    print(f"{label} overhead_p50_ms={statistics.median(overhead_ms):.1f} "
          f"overhead_p99_ms={percentile(overhead_ms, 0.99):.1f}", flush=True)


if __name__ == "__main__":
    main()
