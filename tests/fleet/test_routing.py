"""Each request goes to the least busy replica of all, never behind another while one is idle.

Three replicas with a pipeline that sleeps L per image, and three clients each sending its next
request as soon as its last is answered: whenever a client sends, the replica that just
answered it is the only idle one. A request sent to a busy replica waits there for the
request in front of it, so its time inside the replica (x-imagine-replica-ms) is near 2 L
instead of L. Serve's default router, comparing two replicas drawn at random, sends the request
to a busy replica one time in three.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ray import serve

from tests.fleet.support import API_KEY, SMALL, Fleet, poll

LATENCY_S = 1.0
REPLICAS = 3
ROUNDS = 4


@pytest.fixture(scope="module")
def three_replicas(fleet: Fleet) -> Iterator[Fleet]:
    """A second application on the session's Ray: three fixed-latency replicas at /routing."""
    from bot.fleet.app import build_app
    from bot.fleet.spec import FleetSpec
    from bot.worker.synthetic import FixedLatencyLoader

    spec = FleetSpec(
        models=("flux-schnell",), loader=FixedLatencyLoader(LATENCY_S),
        min_replicas=REPLICAS, max_replicas=REPLICAS, gpus_per_replica=0, cpus_per_replica=0,
        max_batch_size=1, app_name="routing", heartbeat_s=0.2,
    )
    serve.run(build_app(spec, API_KEY), name="routing", route_prefix="/routing")
    try:
        with httpx.Client(base_url=f"{fleet.url}/routing", headers={"x-api-key": API_KEY},
                          timeout=120) as client:
            routing = Fleet(f"{fleet.url}/routing", client)
            routing.wait_for_replicas(REPLICAS)
            yield routing
    finally:
        serve.delete("routing")


def test_no_request_waits_behind_another_while_a_replica_is_idle(three_replicas: Fleet) -> None:
    def client(number: int) -> list[httpx.Response]:
        with httpx.Client(base_url=three_replicas.url, headers={"x-api-key": API_KEY},
                          timeout=120) as http:
            return [http.post("/v1/flux-schnell", json={**SMALL, "seed": number * 100 + i})
                    for i in range(ROUNDS)]

    # One request first: Serve learns every replica's queue from probing them all for it. (The
    # requests of a burst that meets a router knowing nothing probe at the same moment, and
    # may all pick the same idle replica.)
    assert three_replicas.post("flux-schnell", {**SMALL, "seed": 1}).status_code == 200
    with ThreadPoolExecutor(REPLICAS) as pool:
        answers = [a for answers in pool.map(client, range(REPLICAS)) for a in answers]

    assert [a.status_code for a in answers] == [200] * REPLICAS * ROUNDS
    assert len({a.headers["x-imagine-replica"] for a in answers}) == REPLICAS
    inside_s = sorted(float(a.headers["x-imagine-replica-ms"]) / 1000 for a in answers)
    assert inside_s[-1] < 1.5 * LATENCY_S, inside_s


def test_requests_beyond_what_the_replicas_hold_wait_inside_the_fleet(
        three_replicas: Fleet) -> None:
    # Three replicas hold two requests each; the other three wait at the model's router, where
    # the least busy replica takes them. (An ingress that held only Serve's default of five
    # left the rest queued in front of it, and replicas idle.)
    total = 3 * REPLICAS
    with ThreadPoolExecutor(total) as pool:
        sent = [pool.submit(three_replicas.post, "flux-schnell", {**SMALL, "seed": seed})
                for seed in range(total)]
        seen = poll(lambda: depth if (depth := three_replicas.health().json()["queue_depth"])
                    == total else None, 30, f"{total} requests inside the fleet")
        answers = [future.result() for future in sent]

    assert seen == total
    assert [a.status_code for a in answers] == [200] * total
