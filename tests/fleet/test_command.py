"""`imagine-bot fleet` as a process: on a Ray of its own, or joining a cluster; SIGTERM stops it.

Both runs serve the tiny Flux with one replica on no CPU reservation, behind the API key. The
module starts one cluster as docs/fleet.md says (`ray start --head`, with Ray's token
authentication), in a temp dir of its own so that nothing else finds it. The first run starts
a local Ray of its own (no --address), as on a single GPU machine, even with RAY_ADDRESS naming
that cluster; the second joins the cluster with --address.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fleet.support import API_KEY, SMALL, free_port, poll
from tests.helpers import env_without_settings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CommandRun:
    """What a run of the command until SIGTERM gave."""

    url: str
    image: httpx.Response
    returncode: int
    stderr: str


def fleet_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment, less the bot's settings, with the fleet's key."""
    env = env_without_settings()
    env.update({"IMAGINE_CONFIG": str(tmp_path / "absent.toml"),
                "IMAGINE_WORKER_API_KEY": API_KEY, **extra})
    return env


def serve_until_sigterm(flux_dir: Path, env: dict[str, str], *options: str) -> CommandRun:
    """Start the command, wait for its replica, make an image, send SIGTERM, wait for exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = subprocess.Popen(
        [sys.executable, "-m", "bot", "fleet", "--model", f"flux-schnell={flux_dir}",
         "--replicas", "1", "--gpus-per-replica", "0", "--cpus-per-replica", "0",
         "--port", str(port), *options],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=60) as client:

            def one_replica() -> bool | None:
                if command.poll() is not None:
                    raise AssertionError(f"the command exited: {command.communicate()[1]}")
                try:
                    health = client.get("/health")
                except httpx.TransportError:
                    return None  # not listening yet
                return True if health.status_code == 200 else None

            poll(one_replica, 180, "a live replica behind the command's URL", every_s=0.5)
            image = client.post("/v1/flux-schnell", json={**SMALL, "seed": 3})

        command.send_signal(signal.SIGTERM)
        _, stderr = command.communicate(timeout=120)
    finally:
        command.kill()
    return CommandRun(url, image, command.returncode, stderr)


@dataclass(frozen=True)
class Cluster:
    """A running `ray start --head --block`: its process, GCS address and token settings."""

    process: subprocess.Popen[str]
    address: str
    auth: dict[str, str]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A one-machine cluster as docs/fleet.md starts one, with Ray's token authentication."""
    port = free_port()
    # Ray's sockets live under the temp dir, and a socket's path must stay short.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    log = tmp_path_factory.mktemp("cluster") / "ray-start.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
             "--port", str(port), "--num-cpus", "1", "--temp-dir", temp_dir,
             "--include-dashboard", "false", "--disable-usage-stats"],
            # Without a drain period: nothing runs on it once the test is over.
            env={**env_without_settings(), **auth, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},
            stdout=out, stderr=subprocess.STDOUT, text=True,
        )
    try:
        def started() -> bool | None:
            if process.poll() is not None:
                raise AssertionError(f"ray start exited: {log.read_text()}")
            return True if "block forever" in log.read_text() else None

        poll(started, 120, "a started cluster", every_s=0.2)
        yield Cluster(process, f"127.0.0.1:{port}", auth)
    finally:
        process.terminate()  # ray start stops the cluster's processes on SIGTERM
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            shutil.rmtree(temp_dir, ignore_errors=True)


def test_the_fleet_command_serves_until_sigterm_then_stops_its_ray_and_exits_0(
    flux_dir: Path, tmp_path: Path, cluster: Cluster
) -> None:
    # RAY_ADDRESS names a running cluster: without --address the command must not join it.
    run = serve_until_sigterm(flux_dir, fleet_env(tmp_path, RAY_ADDRESS=cluster.address))

    assert run.image.status_code == 200
    assert run.image.headers["x-seeds"] == "3"
    assert run.returncode == 0, run.stderr
    assert f"serving flux-schnell at {run.url} (1 replica per model)" in run.stderr
    assert "imagine-bot fleet: stopping" in run.stderr
    assert "Traceback" not in run.stderr
    with pytest.raises(httpx.TransportError):  # its Ray, and so its proxy, went with it
        httpx.get(f"{run.url}/health", timeout=5)
    assert cluster.process.poll() is None


def test_the_fleet_command_joins_a_cluster_and_on_sigterm_leaves_it_running(
    flux_dir: Path, tmp_path: Path, cluster: Cluster
) -> None:
    run = serve_until_sigterm(flux_dir, fleet_env(tmp_path, **cluster.auth),
                              "--address", cluster.address)

    assert run.image.status_code == 200
    assert run.image.headers["x-seeds"] == "3"
    assert run.returncode == 0, run.stderr
    assert f"serving flux-schnell at {run.url} (1 replica per model)" in run.stderr
    assert "Traceback" not in run.stderr
    assert cluster.process.poll() is None  # the cluster is not the command's to stop
    # Its Serve stays up for the cluster's other applications; the fleet's own is gone.
    assert httpx.get(f"{run.url}/health", headers={"x-api-key": API_KEY}).status_code == 404


def test_a_cluster_where_serve_already_runs_is_recognised(fleet: object) -> None:
    # The command then says its URL is that Serve's, not --host and --port (docs/fleet.md).
    from bot.fleet.main import serve_is_running

    assert serve_is_running()
