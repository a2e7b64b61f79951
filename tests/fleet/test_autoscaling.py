"""Between its bounds, a model's replica count follows the load: more under load, fewer after.

One to two fixed-latency replicas, each as busy as it should get with one request
(max_batch_size 1), with the autoscaler's delays shortened from Serve's minutes to seconds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ray import serve

from tests.fleet.support import API_KEY, SMALL, Cluster, Fleet, poll

LATENCY_S = 0.4
CLIENTS = 4  # four requests always waiting: twice what two replicas should hold


@pytest.fixture(scope="module")
def one_to_two(cluster: Cluster) -> Iterator[Fleet]:
    """An application of its own at /scaling: 1 to 2 replicas, quick to scale."""
    from bot.fleet.app import build_app
    from bot.fleet.spec import FleetSpec
    from bot.worker.synthetic import FixedLatencyLoader

    spec = FleetSpec(
        models=("flux-schnell",), loader=FixedLatencyLoader(LATENCY_S),
        min_replicas=1, max_replicas=2, gpus_per_replica=0, cpus_per_replica=0,
        max_batch_size=1, app_name="scaling", heartbeat_s=0.2,
        upscale_delay_s=0, downscale_delay_s=2, metrics_interval_s=0.25,
    )
    serve.run(build_app(spec, API_KEY), name="scaling", route_prefix="/scaling")
    try:
        url = f"{cluster.serve_url}/scaling"
        with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=120) as client:
            scaling = Fleet(url, client)
            scaling.wait_for_replicas(1)
            yield scaling
    finally:
        serve.delete("scaling")


def test_replicas_grow_to_the_maximum_under_load_and_shrink_to_the_minimum_after(
        one_to_two: Fleet) -> None:
    counts: list[int] = []  # every replica count /health showed while polling
    answered: set[str] = set()
    stop = threading.Event()

    def client(seed: int) -> None:
        while not stop.is_set():
            response = one_to_two.post("flux-schnell", {**SMALL, "seed": seed})
            assert response.status_code == 200, response.text
            answered.add(response.headers["x-imagine-replica"])

    def replicas() -> int:
        counts.append(len(one_to_two.live_replicas()))
        return counts[-1]

    assert replicas() == 1  # the premise: it starts at the minimum
    with ThreadPoolExecutor(CLIENTS) as pool:
        clients = [pool.submit(client, seed) for seed in range(CLIENTS)]
        try:
            poll(lambda: True if replicas() == 2 else None, 90, "a second replica under load")
            # The new replica takes work as soon as it is up.
            poll(lambda: True if len(answered) == 2 else None, 30, "answers from both replicas")
        finally:
            stop.set()
        for finished in clients:
            finished.result()  # an assertion failed in a client fails the test here
    poll(lambda: True if replicas() == 1 else None, 60, "one replica once the load is gone")

    assert max(counts) == 2
