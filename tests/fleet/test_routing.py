"""Each request goes to the least busy replica of all, and the ingress lets every request in.

Three replicas whose pipeline sleeps L per image. Serve's default router compares two replicas
drawn at random, so with two of three busy it sends a request to a busy one a third of the
time. Serve counts a request on a replica once it is sent, so requests routed at the very same
moment would not see each other's choice; the fleet's router counts its own choices until
Serve confirms them. The tests of where a request goes first let the router learn every
replica's queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ray import serve

from tests.fleet.support import API_KEY, SMALL, Cluster, Fleet, poll

LATENCY_S = 1.25
REPLICAS = 3
BUSY = {**SMALL, "samples": 4, "base64": True}  # 4 L inside its replica


@pytest.fixture(scope="module")
def three_replicas(cluster: Cluster) -> Iterator[Fleet]:
    """An application of its own at /routing: three fixed-latency replicas."""
    from bot.fleet.app import build_app
    from bot.fleet.spec import FleetSpec
    from bot.worker.synthetic import FixedLatencyLoader

    spec = FleetSpec(
        models=("flux-schnell",), loader=FixedLatencyLoader(LATENCY_S),
        min_replicas=REPLICAS, max_replicas=REPLICAS, gpus_per_replica=0, cpus_per_replica=0,
        max_batch_size=4, app_name="routing", heartbeat_s=0.2,
    )
    serve.run(build_app(spec, API_KEY), name="routing", route_prefix="/routing")
    try:
        url = f"{cluster.serve_url}/routing"
        with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=120) as client:
            routing = Fleet(url, client)
            routing.wait_for_replicas(REPLICAS)
            yield routing
    finally:
        serve.delete("routing")


def learn_every_replica(replica_for: Callable[[int], str]) -> None:
    """Send single requests (replica_for(seed) sends one and names the replica that made it)
    until each replica has answered one: then the router knows every replica's queue. (Serve
    learns one when it sends it a request, or asks it, which under load may miss its deadline;
    it forgets it 10 s later.)"""
    answered: set[str] = set()
    for seed in range(30):
        answered.add(replica_for(seed))
        if len(answered) == REPLICAS:
            return
    raise AssertionError(f"only {len(answered)} of {REPLICAS} replicas answered 30 requests")


def test_a_request_sent_while_two_replicas_are_busy_goes_to_the_idle_one(
        three_replicas: Fleet) -> None:
    learn_every_replica(lambda seed: three_replicas.post(
        "flux-schnell", {**SMALL, "seed": seed}).headers["x-imagine-replica"])
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(three_replicas.post, "flux-schnell", {**BUSY, "seed": 1})
        three_replicas.busy_replicas(1, 30)
        second = pool.submit(three_replicas.post, "flux-schnell", {**BUSY, "seed": 2})
        # The second went to an idle replica too.
        busy = {r["replica"] for r in three_replicas.busy_replicas(2, 30)}

        probes = [three_replicas.post("flux-schnell", {**SMALL, "seed": 10 + i})
                  for i in range(2)]
        both_still_busy = not first.done() and not second.done()
        ends = [first.result(), second.result()]

    assert both_still_busy  # the premise: the probes were routed while the two were busy
    assert [a.status_code for a in [*probes, *ends]] == [200] * 4
    assert {a.headers["x-imagine-replica"] for a in ends} == busy
    assert [p.headers["x-imagine-replica"] in busy for p in probes] == [False, False]


def test_requests_routed_at_the_same_moment_go_to_different_replicas(
        three_replicas: Fleet) -> None:
    # Through a handle of this process's own, so that the three requests reach the model's
    # router together, as a burst reaches the ingress's (HTTP spreads them by milliseconds).
    from bot.core.catalog import Catalog
    from bot.worker.params import parse_body
    from bot.worker.samplers import table_for

    model = serve.get_deployment_handle("flux-schnell", app_name="routing")
    spec, table = Catalog().get("flux-schnell"), table_for("flux-schnell")
    requests = [parse_body(spec, {**SMALL, "seed": seed}, table) for seed in range(30)]
    learn_every_replica(lambda seed: model.generate.remote(requests[seed]).result().replica)

    for burst in range(3):
        sent = [model.generate.remote(params) for params in requests[:REPLICAS]]
        answers = [response.result() for response in sent]

        assert [a.status for a in answers] == [200] * REPLICAS
        assert len({a.replica for a in answers}) == REPLICAS, burst


def test_requests_beyond_what_the_replicas_hold_wait_inside_the_fleet(
        three_replicas: Fleet) -> None:
    # All nine are inside the fleet at once: in the replicas or at the model's router, where
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
