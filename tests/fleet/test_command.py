"""`imagine-bot fleet` as a process: it starts its own Ray, serves, and stops on SIGTERM.

The command runs beside the session's Ray with a local Ray of its own (no --address), as on a
single GPU machine: the tiny Flux, one replica on no CPU reservation, behind the API key.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.fleet.support import API_KEY, SMALL, Fleet, free_port, poll
from tests.helpers import env_without_settings

ROOT = Path(__file__).resolve().parents[2]


def fleet_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment, less the bot's settings, with the fleet's key."""
    env = env_without_settings()
    env.update({"IMAGINE_CONFIG": str(tmp_path / "absent.toml"),
                "IMAGINE_WORKER_API_KEY": API_KEY})
    return env


def test_the_fleet_command_serves_until_sigterm_then_stops_its_ray_and_exits_0(
    flux_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = subprocess.Popen(
        [sys.executable, "-m", "bot", "fleet", "--model", f"flux-schnell={flux_dir}",
         "--replicas", "1", "--gpus-per-replica", "0", "--cpus-per-replica", "0",
         "--port", str(port)],
        cwd=ROOT, env=fleet_env(tmp_path), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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

    assert image.status_code == 200
    assert image.headers["x-seeds"] == "3"
    assert command.returncode == 0, stderr
    assert f"serving flux-schnell at {url} (1 replica per model)" in stderr
    assert "imagine-bot fleet: stopping" in stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.TransportError):  # its Ray, and so its proxy, went with it
        httpx.get(f"{url}/health", timeout=5)


def test_a_cluster_where_serve_already_runs_is_recognised(fleet: Fleet) -> None:
    # The command then says its URL is that Serve's, not --host and --port (docs/fleet.md).
    from bot.fleet.main import serve_is_running

    assert serve_is_running()
