"""`imagine-bot fleet` as a process: on a Ray of its own, or joining a cluster; SIGTERM stops it.

Both runs serve the tiny Flux with one replica behind the API key, and get SIGTERM while an
image is being made: that image is still answered. The first run starts a local Ray of its own
(no --address), as on a single GPU machine, even with RAY_ADDRESS naming the package's cluster.
The second joins that cluster with --address and its token, as docs/fleet.md says, once a
second node has joined it with `ray start --address` (on this same machine): the package's
fleet holds the first node's CPUs, so the command's one-CPU replica can only go to the second,
and it answers through the first node's Serve, beside the package's applications.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import ray

from tests.fleet.support import API_KEY, FLEET_APP, MEDIUM, Cluster, Fleet, free_port, poll
from tests.helpers import env_without_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CommandRun:
    """What a run of the command until SIGTERM gave."""

    image: httpx.Response
    answered_before_sigterm: bool
    replica_node: str  # the Ray node id (its first 12 characters) of the replica that made it
    returncode: int
    stderr: str


def fleet_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment, less the bot's settings and Ray's token, with the key."""
    env = {name: value for name, value in env_without_settings().items()
           if not name.startswith("RAY_AUTH_")}
    env.update({"IMAGINE_CONFIG": str(tmp_path / "absent.toml"),
                "IMAGINE_WORKER_API_KEY": API_KEY, **extra})
    return env


def serve_until_sigterm(flux_dir: Path, env: dict[str, str], url: str, *options: str
                        ) -> CommandRun:
    """Start the command, wait for its replica, send SIGTERM while it makes an image, wait
    for the image and the exit."""
    command = subprocess.Popen(
        [sys.executable, "-m", "bot", "fleet", "--model", f"flux-schnell={flux_dir}",
         "--replicas", "1", "--gpus-per-replica", "0", *options],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=120) as client:
            fleet = Fleet(url, client)

            def one_replica() -> bool | None:
                if command.poll() is not None:
                    raise AssertionError(f"the command exited: {command.communicate()[1]}")
                try:
                    return True if fleet.health().status_code == 200 else None
                except httpx.TransportError:
                    return None  # not listening yet

            poll(one_replica, 180, "a live replica behind the command's URL", every_s=0.5)
            with ThreadPoolExecutor(1) as pool:
                request = pool.submit(fleet.post, "flux-schnell", {**MEDIUM, "seed": 3})
                replica = fleet.busy_replica()
                answered_before_sigterm = request.done()
                command.send_signal(signal.SIGTERM)
                image = request.result()  # a request cut off by the stop raises here
        _, stderr = command.communicate(timeout=120)
    finally:
        command.kill()
    return CommandRun(image, answered_before_sigterm, replica["node"], command.returncode, stderr)


@pytest.fixture(scope="module")
def second_node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`ray start --address` joining the package's cluster with one CPU: its node id[:12]."""
    log = tmp_path_factory.mktemp("second-node") / "ray-start.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--address", cluster.address,
             "--num-cpus", "1", "--block", "--disable-usage-stats"],
            # Without a drain period: nothing runs on it once the test is over.
            env={**env_without_settings(), **cluster.auth,
                 "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        def joined() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"ray start exited: {log.read_text()}")
            head = ray.get_runtime_context().get_node_id()
            others = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head]
            return others[0][:12] if others else None

        yield poll(joined, 120, "a second node in the cluster", every_s=0.2)
    finally:
        process.terminate()  # ray start stops its node's processes on SIGTERM
        try:
            process.wait(timeout=60)
        finally:
            process.kill()


def test_the_fleet_command_serves_until_sigterm_then_stops_its_ray_and_exits_0(
    flux_dir: Path, tmp_path: Path, cluster: Cluster
) -> None:
    # RAY_ADDRESS names a running cluster: without --address the command must not join it.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run = serve_until_sigterm(flux_dir, fleet_env(tmp_path, RAY_ADDRESS=cluster.address), url,
                              "--cpus-per-replica", "0", "--port", str(port))

    assert not run.answered_before_sigterm  # the premise: SIGTERM came while it was made
    assert run.image.status_code == 200
    assert run.image.headers["x-seeds"] == "3"
    assert run.returncode == 0, run.stderr
    assert f"serving flux-schnell at {url} (1 replica per model)" in run.stderr
    assert "imagine-bot fleet: stopping" in run.stderr
    assert "Traceback" not in run.stderr
    with pytest.raises(httpx.TransportError):  # its Ray, and so its proxy, went with it
        httpx.get(f"{url}/health", timeout=5)


def test_the_fleet_command_joins_a_cluster_and_on_sigterm_leaves_it_running(
    flux_dir: Path, tmp_path: Path, cluster: Cluster, fleet: Fleet, second_node: str
) -> None:
    run = serve_until_sigterm(flux_dir, fleet_env(tmp_path, **cluster.auth), cluster.serve_url,
                              "--cpus-per-replica", "1", "--address", cluster.address)

    assert not run.answered_before_sigterm
    assert run.replica_node == second_node  # the only node with a CPU free
    assert run.image.status_code == 200
    assert run.image.headers["x-seeds"] == "3"
    assert run.returncode == 0, run.stderr
    assert ("serving flux-schnell at the address of the Serve already running on this cluster"
            in run.stderr)
    assert "Traceback" not in run.stderr
    # The cluster's Serve and its other applications keep running; the fleet's own is gone.
    headers = {"x-api-key": API_KEY}
    assert httpx.get(f"{cluster.serve_url}/health", headers=headers).status_code == 404
    assert httpx.get(f"{cluster.serve_url}/{FLEET_APP}/health",
                     headers=headers).status_code == 200
