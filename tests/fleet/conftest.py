"""Fixtures for the fleet's tests: one real local Ray (2 CPUs) and one fleet for them all.

The Ray uses Ray's token authentication, as docs/fleet.md sets up a cluster, so that
`imagine-bot fleet --address` can be tested joining it. The fleet is the application "tests"
under /tests (the command's own application takes /): it serves the tiny random-weight Flux
pipeline (bot.worker.synthetic, saved with save_pretrained by tests/conftest.py's `model_dirs`
and loaded back by each replica through from_pretrained) with two replicas, behind the API
key. Ray and the fleet start once for the package and stop after its last test; the tests that
kill a replica run last, so the others always find both replicas. Under `make test`'s several
processes (pytest-xdist), every test that uses the Ray runs in the same one (the xdist group
"ray"), which takes them first.
"""

from __future__ import annotations

import logging
import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.support import API_KEY, FLEET_APP, Cluster, Fleet, free_port
from tests.library_noise import silence_library_noise

# Read by the replicas too: a local Ray's processes inherit this process's environment.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray starts its workers at nice 15. Beside other work at normal priority (another test suite
# on the same two cores) they get a few percent of the CPU, and Serve's 5 s readiness checks
# then kill the HTTP proxy before it is up. Here they compete as equals.
os.environ.setdefault("RAY_worker_niceness", "0")
# Ray's token authentication, as docs/fleet.md sets up a cluster, so that the command's join is
# tested against it. Ray reads these once, at import: they are set before it is imported.
RAY_AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
os.environ.update(RAY_AUTH)

# The fleet extra, imported plainly: `make test` installs it, so without it these tests must
# fail to collect, never be skipped. (Ray Serve's own models warn about pydantic at import.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import ray
    from ray import serve

KILLS_A_REPLICA = "kills_a_replica"
RAY_GROUP = "ray"
BATCH_WAIT_S = 0.25  # wide, so requests sent together surely meet in one batch


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the tests that kill a replica (run after the others)."""
    config.addinivalue_line("markers", f"{KILLS_A_REPLICA}: kills a fleet replica's process")


# First: pytest-xdist reads the group marks in a hook of its own.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence library noise here, put the tests that use the package's Ray in one xdist
    group, and move the replica-killing tests to the package's end."""
    here = Path(__file__).parent
    silence_library_noise(items, here)
    ours = [i for i, item in enumerate(items) if here in Path(str(item.path)).parents]
    if not ours:
        return
    for i in ours:
        # One process starts the Ray and the fleet; another would start a second Ray of its
        # own on the same cores. The tests that need neither go to whichever process is free.
        if "cluster" in items[i].fixturenames:
            items[i].add_marker(pytest.mark.xdist_group(RAY_GROUP))
    block = [items[i] for i in ours]
    block.sort(key=lambda item: item.get_closest_marker(KILLS_A_REPLICA) is not None)
    for index, item in zip(ours, block, strict=True):
        items[index] = item


@pytest.fixture(scope="package")
def flux_dir(model_dirs: dict[str, Path]) -> Path:
    """The tiny Flux pipeline in diffusers' folder layout: the one the `engine` fixture holds,
    so an image from a replica can be compared with the same seed's image made here."""
    return model_dirs["flux-schnell"]


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Cluster]:
    """A local Ray with 2 CPUs (and no GPU) and Serve's proxy, behind the token of RAY_AUTH."""
    if worker_id != "master":  # one of pytest-xdist's processes: the first to start it wins
        claim = tmp_path_factory.getbasetemp().parent / "fleet-ray"  # the run's, shared
        try:
            claim.mkdir()
        except FileExistsError:
            pytest.fail(f"another test process already started the fleet's Ray, so this one "
                        f"({worker_id}) would start a second: the xdist group "
                        f"{RAY_GROUP!r} was not kept together (see the pytest pin in "
                        "pyproject.toml)", pytrace=False)
    # "local": a Ray of the tests' own, whatever RAY_ADDRESS or a `ray start` here would join.
    # No GPU, even on a machine with one: the tests of a fleet waiting for GPUs count on it.
    ray.init(address="local", num_cpus=2, num_gpus=0, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    try:
        port = free_port()
        # The proxy on the head node only: a second node started on this same machine (the
        # command's tests) would try to bind the same port for its own.
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        yield Cluster(ray.get_runtime_context().gcs_address, RAY_AUTH, f"http://127.0.0.1:{port}")
    finally:
        # The local cluster's processes (controller, proxy, replicas) end with it; Serve's
        # graceful stop would only add seconds of draining requests nobody sends any more.
        ray.shutdown()


@pytest.fixture(scope="package")
def fleet(cluster: Cluster, flux_dir: Path) -> Iterator[Fleet]:
    """The fleet at /tests: flux-schnell, 2 replicas of 1 CPU each, the API key."""
    import httpx

    from bot.fleet.app import build_app
    from bot.fleet.spec import FleetSpec, SourceLoader
    from bot.worker.sources import resolve_source

    spec = FleetSpec(
        models=("flux-schnell",),
        loader=SourceLoader((("flux-schnell", resolve_source("flux-schnell", str(flux_dir))),)),
        min_replicas=2, max_replicas=2, gpus_per_replica=0, cpus_per_replica=1,
        batch_wait_s=BATCH_WAIT_S, heartbeat_s=0.2,
        health_check_period_s=1,  # a killed replica is found and replaced in seconds
    )
    serve.run(build_app(spec, API_KEY), name=FLEET_APP, route_prefix=f"/{FLEET_APP}")
    url = f"{cluster.serve_url}/{FLEET_APP}"
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=120) as client:
        running = Fleet(url, client)
        running.wait_for_replicas(2)
        yield running
