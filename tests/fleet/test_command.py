"""`imagine-bot fleet` as a process: on a Ray of its own, or joining a cluster; SIGTERM stops it.

Both serving runs give the tiny Flux one replica behind the API key, and get SIGTERM while an
image is being made: that image is still answered. The first starts a local Ray of its own
(no --address), as on a single GPU machine, even with RAY_ADDRESS naming the package's cluster.
The second joins that cluster with --address and its token, as docs/fleet.md says, with the
default of one GPU per replica: the cluster has no GPU, so the command says it waits for room,
until a second node with a GPU joins with `ray start --address` (on this same machine, its GPU
declared, so the replica still runs on the CPU). The replica goes to that node, and answers
through the first node's Serve, beside the package's applications. On a Ray of its own, which
never grows, the same shortfall is one line and exit 2.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import ray

from tests.fleet.support import (
    API_KEY,
    FLEET_APP,
    MEDIUM,
    Cluster,
    Fleet,
    free_port,
    poll,
    wait_for_line,
)
from tests.helpers import env_without_settings

ROOT = Path(__file__).resolve().parents[2]
NO_GPU = ("imagine-bot fleet: the fleet cannot start on this machine's Ray: the 1 replica to "
          "start needs 1 GPU and the cluster has 0; give it less (--gpus-per-replica, or 0 to "
          "run on the CPU)")
WAITING = ("imagine-bot fleet: waiting for room: the 1 replica to start needs 1 GPU and the "
           "cluster has 0; give it less (--gpus-per-replica, or 0 to run on the CPU); the "
           "replicas start once the cluster has it (Ctrl-C stops)")


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


def fleet_command(flux_dir: Path, env: dict[str, str], stderr: Path, *options: str
                  ) -> subprocess.Popen[str]:
    """Start `imagine-bot fleet` serving the tiny Flux with one replica, stderr to a file."""
    with stderr.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", "fleet", "--model", f"flux-schnell={flux_dir}",
             "--replicas", "1", *options],
            cwd=ROOT, env=env, text=True, stdout=subprocess.DEVNULL, stderr=out,
        )


def serve_until_sigterm(command: subprocess.Popen[str], stderr: Path, url: str) -> CommandRun:
    """Wait for the command to say it serves, send SIGTERM while it makes an image, wait for
    the image and the exit."""
    try:
        wait_for_line(command, stderr, "imagine-bot fleet: serving")
        with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=120) as client:
            fleet = Fleet(url, client)
            with ThreadPoolExecutor(1) as pool:
                request = pool.submit(fleet.post, "flux-schnell", {**MEDIUM, "seed": 3})
                replica = fleet.busy_replica()
                answered_before_sigterm = request.done()
                command.send_signal(signal.SIGTERM)
                image = request.result()  # a request cut off by the stop raises here
        command.wait(timeout=120)
    finally:
        command.kill()
    return CommandRun(image, answered_before_sigterm, replica["node"], command.returncode,
                      stderr.read_text())


@contextmanager
def second_node(cluster: Cluster, log: Path, *options: str) -> Iterator[str]:
    """`ray start --address` joining the package's cluster: its node id[:12] once it is in.

    The node keeps its files in a folder of its own, removed afterwards: in Ray's default one,
    `ray start` would leave this finished cluster's address as the machine's current cluster,
    which a later plain `ray.init()` or `ray status` here would try to reach. (Ray puts sockets
    in that folder, so it is a short path, not pytest's tmp_path.)"""
    temp_dir = tempfile.mkdtemp(prefix="ray-node-")
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--address", cluster.address,
             *options, "--temp-dir", temp_dir, "--block", "--disable-usage-stats"],
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
            shutil.rmtree(temp_dir, ignore_errors=True)


def test_the_fleet_command_serves_until_sigterm_then_stops_its_ray_and_exits_0(
    flux_dir: Path, tmp_path: Path, cluster: Cluster
) -> None:
    # RAY_ADDRESS names a running cluster: without --address the command must not join it.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = fleet_command(flux_dir, fleet_env(tmp_path, RAY_ADDRESS=cluster.address),
                            tmp_path / "stderr", "--gpus-per-replica", "0",
                            "--cpus-per-replica", "0", "--port", str(port))
    run = serve_until_sigterm(command, tmp_path / "stderr", url)

    assert not run.answered_before_sigterm  # the premise: SIGTERM came while it was made
    assert run.image.status_code == 200
    assert run.image.headers["x-seeds"] == "3"
    assert run.returncode == 0, run.stderr
    assert f"serving flux-schnell at {url} (1 replica per model)" in run.stderr
    assert "imagine-bot fleet: stopping" in run.stderr
    assert "Traceback" not in run.stderr
    with pytest.raises(httpx.TransportError):  # its Ray, and so its proxy, went with it
        httpx.get(f"{url}/health", timeout=5)


def test_the_fleet_command_without_the_gpu_it_needs_on_a_ray_of_its_own_exits_2_at_once(
    flux_dir: Path, tmp_path: Path
) -> None:
    # CUDA_VISIBLE_DEVICES empty: Ray sees no GPU here, whatever the machine has.
    run = subprocess.run(
        [sys.executable, "-m", "bot", "fleet", "--model", f"flux-schnell={flux_dir}"],
        cwd=ROOT, env=fleet_env(tmp_path, CUDA_VISIBLE_DEVICES=""), text=True,
        capture_output=True, timeout=180,
    )

    assert run.returncode == 2
    assert [line for line in run.stderr.splitlines()
            if line.startswith("imagine-bot fleet:")] == [NO_GPU]
    assert "Traceback" not in run.stderr


def test_the_fleet_command_joins_a_cluster_waits_for_a_gpu_node_and_leaves_on_sigterm(
    flux_dir: Path, tmp_path: Path, cluster: Cluster, fleet: Fleet
) -> None:
    stderr = tmp_path / "stderr"
    command = fleet_command(flux_dir, fleet_env(tmp_path, **cluster.auth), stderr,
                            "--address", cluster.address)
    try:
        wait_for_line(command, stderr, WAITING)
        with second_node(cluster, tmp_path / "ray-start.log",
                         "--num-cpus", "1", "--num-gpus", "1") as gpu_node:
            run = serve_until_sigterm(command, stderr, cluster.serve_url)
    finally:
        command.kill()

    assert not run.answered_before_sigterm
    assert run.replica_node == gpu_node  # the only node with a GPU
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
