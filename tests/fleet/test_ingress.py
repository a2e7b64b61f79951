"""Only the model replicas load torch: the ingress and the command's own process never do."""

from __future__ import annotations

import subprocess
import sys

import psutil

from tests.fleet.support import FLEET_APP, Fleet


def loads_torch(pid: int) -> bool:
    """Whether the process has torch's native library mapped."""
    return any("libtorch" in region.path for region in psutil.Process(pid).memory_maps())


def test_the_ingress_process_maps_no_torch_while_each_replica_does(fleet: Fleet) -> None:
    # Ray titles each Serve replica's process "ray::ServeReplica:<app>:<deployment>".
    ingress = [p.pid for p in psutil.process_iter(["cmdline"])
               if f"ServeReplica:{FLEET_APP}:ingress" in " ".join(p.info["cmdline"] or [])]
    replicas = [r["pid"] for r in fleet.live_replicas()]

    assert len(ingress) == 1
    assert [loads_torch(pid) for pid in replicas] == [True, True]
    assert not loads_torch(ingress[0])


def test_what_the_fleet_command_imports_to_deploy_holds_no_torch() -> None:
    # run_fleet's imports: the ingress, the spec, the loader's options, Ray and Serve.
    imports = ("import sys, ray, ray.serve, bot.fleet.main, bot.fleet.app, bot.fleet.spec, "
               "bot.worker.sources; print('torch' in sys.modules)")

    found = subprocess.run([sys.executable, "-c", imports], capture_output=True, text=True,
                           check=True, timeout=120)

    assert found.stdout.strip() == "False"
