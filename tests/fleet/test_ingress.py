"""Only the model replicas load torch: the ingress and the command's own process never do."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import psutil

from tests.fleet.support import FLEET_APP, Fleet


def loads_torch(pid: int) -> bool:
    """Whether the process has torch's native library mapped."""
    return any("libtorch" in region.path for region in psutil.Process(pid).memory_maps())


def processes_titled(title: str) -> list[int]:
    """Pids of this test run's Ray processes whose title holds `title`. (Ray titles a Serve
    replica's process "ray::ServeReplica:<app>:<deployment>"; the package's local Ray runs
    under this process, and another test run may have a Ray of its own beside it.)"""
    found = []
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker may end meanwhile
            if title in " ".join(process.cmdline()):
                found.append(process.pid)
    return found


def test_the_ingress_process_maps_no_torch_while_each_replica_does(fleet: Fleet) -> None:
    ingress = processes_titled(f"ServeReplica:{FLEET_APP}:ingress")
    replicas = [r["pid"] for r in fleet.live_replicas()]

    assert len(ingress) == 1
    assert [loads_torch(pid) for pid in replicas] == [True, True]
    assert not loads_torch(ingress[0])


def test_health_names_the_ingress_process(fleet: Fleet) -> None:
    assert [fleet.health().json()["ingress"]["pid"]] == processes_titled(
        f"ServeReplica:{FLEET_APP}:ingress")


def test_what_the_fleet_command_imports_to_deploy_holds_no_torch() -> None:
    # run_fleet's imports: the ingress, the spec, the loader's options, Ray and Serve.
    imports = ("import sys, ray, ray.serve, bot.fleet.main, bot.fleet.app, bot.fleet.spec, "
               "bot.worker.sources; print('torch' in sys.modules)")

    found = subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True,
                           check=True, timeout=120)

    assert found.stdout.strip() == "False"
