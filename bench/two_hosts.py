"""Two hosts on this machine: the fleet across them, a model missing on one, one crashing.

Linux namespaces make two hosts here, as docs/fleet.md sets a cluster up: imagine-host1
(10.77.0.1) runs `ray start --head` and imagine-host2 (10.77.0.2) `ray start --address`, with
Ray's token; a bridge joins them and this machine (10.77.0.254), which plays a third host for
the bot. Each host has a network, a /tmp and a /dev/shm of its own (network and mount
namespaces), so Ray's session folders, sockets and shared memory, the model folder, Serve's
proxy and its port are each host's own. They share this machine's kernel, processes, CPUs and
installed packages (the same .venv: docs/fleet.md asks the same versions of every machine).

Each host declares one GPU (`--num-gpus 1`, so with the default of one GPU per replica each
host takes one replica; without a real GPU the replica runs on the CPU) and serves the tiny
random-weight Flux from /tmp/imagine-models/flux, copied into its own /tmp. Checked:

1. `imagine-bot fleet --address auto --host 0.0.0.0 --replicas 2`, run on host1 as
   docs/fleet.md runs it, places one replica on each host; /health lists both nodes. (Check 5
   runs it with `--address 10.77.0.1:6379`.)
2. Serve's proxy on each host answers (Serve's default: a proxy on every machine with a
   replica), and requests through either are made by both replicas; the same seed gives the
   same image on both hosts.
3. The bot, on this machine, makes an image through host2's proxy.
4. SIGTERM: the command exits 0 and its application is gone; the cluster stays.
5. With the model folder removed from host2, the command says once which machine failed and
   why, while Serve retries (three times here); host1's replica answers meanwhile; once the
   folder is copied back, Serve's next retry starts the replica and the command says it
   serves. Then, while it serves, host2 loses the folder again and its replica is killed:
   the command says so again, and the replica comes back with the folder.
6. Host2 crashes (every process of it killed at once): the fleet's ingress runs on host1,
   where the command runs, so /health through host1 drops host2's replica within seconds;
   the command says the cluster lost the room for a replica, host1's replica answers
   meanwhile, and when host2 joins again a replica starts on it.

Needs root on Linux, with `ip`, `unshare` and `nsenter`: it adds two network namespaces, a
bridge and addresses, and removes them, with every process in them, at the end. Run it from the
repository root after `make test` (about 2 min):

    sudo .venv/bin/python bench/two_hosts.py

Its last line: two_hosts_ok=yes|no
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fleet.support import distance, poll, wait_for_line  # noqa: E402

SUBNET = "10.77.0"
THIS_MACHINE = f"{SUBNET}.254"
BRIDGE = "imagine-br0"
GCS_PORT = 6379  # Ray's default: free, since each host has a network of its own
SERVE_PORT = 8000
MODELS = "/tmp/imagine-models"  # the same path on both hosts, each in its own /tmp
API_KEY = "two-hosts-key"
BODY = {"prompt": "a red fox in the snow", "width": 512, "height": 512, "steps": 1, "seed": 7}
SAME_IMAGE = 0.5  # mean absolute difference of pixels (0-255): what batching may change
FLEET = "imagine-bot fleet:"


class CheckFailed(Exception):
    """One of the checks did not hold; the message says which and what was seen. (A poll
    that runs out raises AssertionError, as in the tests it comes from.)"""


@dataclass(frozen=True)
class Host:
    """A host: its network namespace, its address, and the `ray start` holding its namespaces."""

    name: str
    netns: str
    ip: str
    ray_start: subprocess.Popen[bytes]

    def run(self, *command: str) -> list[str]:
        """A command line that runs inside this host (its network and its /tmp)."""
        return ["nsenter", "--target", str(self.ray_start.pid), "--net", "--mount", "--",
                *command]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the folder of logs (in /var/tmp) rather than remove it")
    args = parser.parse_args()
    missing = [tool for tool in ("ip", "unshare", "nsenter") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        print("two hosts: needs root on Linux with ip, unshare and nsenter "
              f"({'missing: ' + ', '.join(missing) if missing else 'not root'}); "
              "run it with sudo", file=sys.stderr)
        return 2
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        work = Path(tempfile.mkdtemp(prefix="imagine-two-hosts-", dir="/var/tmp"))
        if not args.keep_logs:
            cleanup.callback(shutil.rmtree, work, ignore_errors=True)
        try:
            check_two_hosts(work, cleanup)
        except (CheckFailed, AssertionError) as failed:  # AssertionError: a poll ran out
            kept = "kept" if args.keep_logs else "removed at exit; --keep-logs keeps them"
            print(f"FAILED: {failed} (logs in {work}, {kept})")
            print("two_hosts_ok=no")
            return 1
    print(f"done in {time.monotonic() - started:.0f} s")
    print("two_hosts_ok=yes")
    return 0


@dataclass(frozen=True)
class Cluster:
    """The two hosts' Ray cluster, with what the checks share."""

    host1: Host  # Ray's head; the fleet command runs here
    host2: Host
    env: dict[str, str]  # with Ray's token
    work: Path  # logs, the staged model, the bot's data
    model: Path  # the tiny Flux staged here, copied into each host's /tmp

    def url(self, host: Host) -> str:
        """The fleet's URL at a host's Serve proxy."""
        return f"http://{host.ip}:{SERVE_PORT}"

    def start_fleet(self, stderr: Path, address: str) -> subprocess.Popen[bytes]:
        """`imagine-bot fleet --address ADDRESS` on host1: 2 replicas, 1 GPU each, on
        0.0.0.0."""
        command = self.host1.run(
            sys.executable, "-m", "bot", "fleet", "--address", address,
            "--model", f"flux-schnell={MODELS}/flux", "--replicas", "2", "--host", "0.0.0.0",
            "--port", str(SERVE_PORT))
        return start(command, {**self.env, "IMAGINE_WORKER_API_KEY": API_KEY,
                               "IMAGINE_CONFIG": str(self.work / "absent.toml")}, stderr)


def check_two_hosts(work: Path, cleanup: contextlib.ExitStack) -> None:
    """Everything the module's docstring lists, in that order."""
    from bot.worker.synthetic import save_tiny_pipeline

    model = save_tiny_pipeline("flux-schnell", work / "flux")
    env = {**environment(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    cleanup.enter_context(bridge())
    head = f"{SUBNET}.1:{GCS_PORT}"
    host1 = cleanup.enter_context(host(
        "host1", f"{SUBNET}.1", model, env, work, "--head", "--port", str(GCS_PORT),
        "--num-cpus", "2"))
    poll(lambda: reachable(host1.ip, GCS_PORT), 90, "Ray's head on host1", every_s=0.5)
    host2 = cleanup.enter_context(host(
        "host2", f"{SUBNET}.2", model, env, work, "--address", head, "--num-cpus", "1"))
    poll(lambda: nodes(head, env) == 2 or None, 90, "host2 in the cluster", every_s=0.5)
    print(f"two hosts on this machine: {host1.netns} ({host1.ip}, Ray's head) and "
          f"{host2.netns} ({host2.ip}), each with its own network, /tmp and /dev/shm; "
          f"ray {version('ray')}")
    cluster = Cluster(host1, host2, env, work, model)
    check_the_fleet_across_both_hosts(cluster)
    stderr = work / "fleet-2.err"
    command = check_a_model_missing_on_one_host(cluster, stderr)
    check_a_host_that_crashes_and_comes_back(cluster, command, stderr)
    stop(command, stderr)


def check_the_fleet_across_both_hosts(cluster: Cluster) -> None:
    """Checks 1 to 4: both hosts hold the model."""
    stderr = cluster.work / "fleet-1.err"
    since = time.monotonic()
    command = cluster.start_fleet(stderr, "auto")  # as docs/fleet.md runs it on the head
    said = wait_for_line(command, stderr, f"{FLEET} serving", 300)
    print(f"fleet: {said!r} after {time.monotonic() - since:.0f} s")
    replicas = health(cluster.url(cluster.host1))
    if len({r["node"] for r in replicas}) != 2:
        raise CheckFailed(f"the 2 replicas are not on 2 nodes: {replicas}")
    print(f"health via host1: {len(replicas)} replicas on nodes "
          f"{sorted(r['node'] for r in replicas)}")
    images: dict[str, bytes] = {}  # the last image of seed 7 from each replica
    for proxy in (cluster.host1, cluster.host2):
        answers = concurrent_images(cluster.url(proxy), 4)
        made_by = {replica for replica, _ in answers}
        if len(made_by) != 2:
            raise CheckFailed(f"4 requests through {proxy.name}'s proxy were made by {made_by}")
        images.update(answers)
        print(f"images through {proxy.name}'s proxy ({cluster.url(proxy)}): 4 of 4 answered "
              "200, by both replicas")
    difference = distance(*images.values())
    if difference > SAME_IMAGE:
        raise CheckFailed(f"seed 7 differs between the hosts: {difference:.2f}")
    print(f"seed 7 on both hosts: the same image (mean pixel difference {difference:.2f})")
    made = bot_image(cluster.url(cluster.host2), cluster.work)
    print(f"the bot on this machine, through host2's proxy: exit 0, {made.name}")
    stop(command, stderr)
    if http_status(f"{cluster.url(cluster.host1)}/health") != 404:
        raise CheckFailed("the application still answers after the command stopped")
    print("SIGTERM: exit 0, the application is gone (/health 404), the cluster stays")


def check_a_model_missing_on_one_host(cluster: Cluster,
                                      stderr: Path) -> subprocess.Popen[bytes]:
    """Check 5: host2 loses the model folder, then gets it back; the fleet command, left
    serving on both hosts."""
    host1_url = cluster.url(cluster.host1)
    subprocess.run(cluster.host2.run("rm", "-rf", f"{MODELS}/flux"), check=True)
    since = time.monotonic()
    command = cluster.start_fleet(stderr, f"{cluster.host1.ip}:{GCS_PORT}")
    said = wait_for_line(command, stderr, f"{FLEET} a replica of flux-schnell failed to start "
                         f"on {cluster.host2.ip}", 300)
    print(f"model folder missing on host2: {said!r} after {time.monotonic() - since:.0f} s")
    replicas = poll(lambda: live_replicas(host1_url) or None, 120, "host1's replica",
                    every_s=0.5)
    if len(replicas) != 1:
        raise CheckFailed(f"/health lists {replicas} with host2's replica failing")
    host1_node = replicas[0]["node"]
    answers = concurrent_images(host1_url, 1)
    print(f"meanwhile: /health lists 1 replica, an image is answered 200 by {answers[0][0]}")
    poll(lambda: True if retries(stderr) >= 3 else None, 180,
         "three retries of host2's replica", every_s=0.5)
    subprocess.run(cluster.host2.run("cp", "-r", str(cluster.model), f"{MODELS}/flux"),
                   check=True)
    since = time.monotonic()
    said = wait_for_line(command, stderr, f"{FLEET} serving", 300)
    replicas = health(host1_url)
    print(f"model folder copied back onto host2: {said!r} after "
          f"{time.monotonic() - since:.0f} s; {len(replicas)} replicas on "
          f"{len({r['node'] for r in replicas})} nodes")
    told = [line for line in fleet_lines(stderr) if "failed to start" in line]
    print(f"the failure was said {len(told)} time(s) while Serve started the replica "
          f"{retries(stderr)} time(s) in vain")
    if len(told) != 1:
        raise CheckFailed(f"the failure was said {len(told)} times, not once")

    # While serving: host2 loses the folder again and its replica dies.
    subprocess.run(cluster.host2.run("rm", "-rf", f"{MODELS}/flux"), check=True)
    host2_replica = next(r for r in replicas if r["node"] != host1_node)
    os.kill(host2_replica["pid"], signal.SIGKILL)
    since = time.monotonic()
    said = wait_for_line(command, stderr, f"{FLEET} a replica of flux-schnell failed to start "
                         f"on {cluster.host2.ip}", 300, nth=2)
    print(f"while serving, host2's replica killed and its folder gone: the line again after "
          f"{time.monotonic() - since:.0f} s")
    subprocess.run(cluster.host2.run("cp", "-r", str(cluster.model), f"{MODELS}/flux"),
                   check=True)
    since = time.monotonic()
    replicas = poll(lambda: found if len(found := live_replicas(host1_url)) == 2 else None,
                    300, "host2's replica back", every_s=0.5)
    print(f"folder back: {len(replicas)} replicas on {len({r['node'] for r in replicas})} "
          f"nodes after {time.monotonic() - since:.0f} s")
    return command


def check_a_host_that_crashes_and_comes_back(cluster: Cluster,
                                             command: subprocess.Popen[bytes],
                                             stderr: Path) -> None:
    """Check 6: every process of host2 killed at once while the fleet serves; then host2
    joins again."""
    host1_url = cluster.url(cluster.host1)
    ingress = http_json(f"{host1_url}/health")["ingress"]["node"]
    since = time.monotonic()
    stop_namespace(cluster.host2.netns, crash=True)
    cluster.host2.ray_start.wait(timeout=10)
    # Had the fleet's one ingress run on host2, nothing would answer until Serve had started
    # another: it runs where the command does, host1.
    replicas = poll(lambda: found if len(found := live_replicas(host1_url)) == 1 else None,
                    120, "/health with host2's replica gone", every_s=0.5)
    if replicas[0]["node"] != ingress:
        raise CheckFailed(f"the ingress ran on node {ingress}, not on host1's "
                          f"{replicas[0]['node']}")
    print(f"host2 crashed (SIGKILL to all its processes): /health through host1 lists 1 "
          f"replica {time.monotonic() - since:.0f} s later; the ingress runs on host1 "
          f"({ingress}), where the command runs")
    said = wait_for_line(command, stderr, f"{FLEET} the cluster lost room:", 120)
    print(f"the command: {said!r} {time.monotonic() - since:.0f} s after the crash")
    answers = concurrent_images(host1_url, 2)
    print(f"meanwhile: 2 images answered 200 by {sorted({r for r, _ in answers})}")
    since = time.monotonic()
    start_ray(cluster.host2.netns, cluster.host2.ip, cluster.model, cluster.env,
              cluster.work / "host2-again.log", "--address", f"{cluster.host1.ip}:{GCS_PORT}",
              "--num-cpus", "1")
    replicas = poll(lambda: found if len(found := live_replicas(host1_url)) == 2 else None,
                    300, "a replica on host2 once it joined again", every_s=0.5)
    print(f"host2 joined again: {len(replicas)} replicas on "
          f"{len({r['node'] for r in replicas})} nodes after {time.monotonic() - since:.0f} s")


def environment() -> dict[str, str]:
    """This process's environment without the bot's own settings, offline and quiet."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("IMAGINE_", "RAY_"))}
    env.update({"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0",
                "TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error"})
    return env


@contextlib.contextmanager
def bridge() -> Iterator[None]:
    """The bridge the hosts join, with this machine's address on it."""
    ip("link", "add", BRIDGE, "type", "bridge")
    try:
        ip("addr", "add", f"{THIS_MACHINE}/24", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")
        yield
    finally:
        ip("link", "del", BRIDGE, check=False)


@contextlib.contextmanager
def host(name: str, address: str, model: Path, env: dict[str, str], logs: Path,
         *ray_options: str) -> Iterator[Host]:
    """A network namespace on the bridge running `ray start --block` with a /tmp and a
    /dev/shm of its own (the model copied into that /tmp); afterwards every process in the
    namespace is stopped and the namespace removed."""
    netns = f"imagine-{name}"
    inside, outside = f"im-{name}", f"im-{name}-br"
    ip("netns", "add", netns)
    try:
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", netns)
        ip("link", "set", outside, "master", BRIDGE)
        ip("link", "set", outside, "up")
        for step in (("addr", "add", f"{address}/24", "dev", inside),
                     ("link", "set", inside, "up"), ("link", "set", "lo", "up")):
            ip("netns", "exec", netns, "ip", *step)
        ray_start = start_ray(netns, address, model, env, logs / f"{name}.log", *ray_options)
        try:
            yield Host(name, netns, address, ray_start)
        finally:
            stop_namespace(netns)
            ray_start.wait(timeout=10)
    finally:
        ip("link", "del", outside, check=False)
        ip("netns", "del", netns, check=False)


def start_ray(netns: str, address: str, model: Path, env: dict[str, str], log: Path,
              *ray_options: str) -> subprocess.Popen[bytes]:
    """`ray start --block` in a network namespace, in a mount namespace of its own with a
    fresh /tmp and /dev/shm, the model copied into that /tmp."""
    ray = Path(sys.executable).parent / "ray"
    script = (f"mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /dev/shm && "
              f"mkdir -p {MODELS} && cp -r {model} {MODELS}/flux && "
              f"exec {ray} start --node-ip-address {address} --num-gpus 1 "
              f"{' '.join(ray_options)} --block --disable-usage-stats")
    # `ip netns exec`, `unshare` and `exec` keep the process: its pid is ray start's.
    with log.open("wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", script], env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_namespace(netns: str, *, crash: bool = False) -> None:
    """SIGTERM every process in the namespace (`ray start` stops its node), then SIGKILL what
    is left after 30 s; or, to crash the host, SIGKILL at once."""
    def pids() -> list[int]:
        found = ip("netns", "pids", netns, check=False).split()
        return [int(pid) for pid in found if pid.isdigit()]

    steps = [(signal.SIGKILL, 10.0)]
    if not crash:
        steps.insert(0, (signal.SIGTERM, 30.0))
    for signum, patience in steps:
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        deadline = time.monotonic() + patience
        while pids() and time.monotonic() < deadline:
            time.sleep(0.5)


def ip(*arguments: str, check: bool = True) -> str:
    """Run `ip` (iproute2); its output."""
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise CheckFailed(f"ip {' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout


def nodes(address: str, env: dict[str, str]) -> int:
    """How many live nodes `ray status` counts in the cluster at `address`."""
    status = subprocess.run([str(Path(sys.executable).parent / "ray"), "status", "--address",
                             address], env=env, capture_output=True, text=True)
    return sum(1 for line in status.stdout.splitlines() if line.strip().startswith("1 node_"))


def reachable(address: str, port: int) -> bool | None:
    """True once something accepts TCP connections at address:port."""
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=2):
        return True
    return None


def start(command: list[str], env: dict[str, str], stderr: Path) -> subprocess.Popen[bytes]:
    """Start a command from the repository root, its stderr to a file."""
    with stderr.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=out)


def stop(command: subprocess.Popen[bytes], stderr: Path) -> None:
    """SIGTERM the fleet command; it must exit 0 after saying it stops."""
    command.send_signal(signal.SIGTERM)
    try:
        code = command.wait(timeout=120)
    finally:
        command.kill()
    if code != 0 or f"{FLEET} stopping" not in fleet_lines(stderr):
        raise CheckFailed(f"the command exited {code} on SIGTERM: {fleet_lines(stderr)}")


def fleet_lines(stderr: Path) -> list[str]:
    """The command's own lines on its stderr (Ray's forwarded logs left out)."""
    return [line for line in stderr.read_text(errors="replace").splitlines()
            if line.startswith(FLEET)]


def retries(stderr: Path) -> int:
    """How many failed replica starts Serve's controller logged (Ray forwards its log to the
    command's stderr)."""
    return stderr.read_text(errors="replace").count("Exception in Replica(")


def health(url: str) -> list[dict[str, Any]]:
    """The replicas /health lists, at least one."""
    replicas = live_replicas(url)
    if not replicas:
        raise CheckFailed(f"{url}/health lists no live replica")
    return replicas


def http_json(url: str) -> dict[str, Any]:
    """The JSON of a GET with the key, which must answer 200."""
    import httpx

    answer = httpx.get(url, headers={"x-api-key": API_KEY}, timeout=30)
    if answer.status_code != 200:
        raise CheckFailed(f"{url} answered {answer.status_code}: {answer.text[:200]}")
    found: dict[str, Any] = answer.json()
    return found


def live_replicas(url: str) -> list[dict[str, Any]]:
    """The replicas /health lists; none while it answers 503 or not at all (none is up, or
    Serve is replacing the fleet's ingress)."""
    import httpx

    try:
        answer = httpx.get(f"{url}/health", headers={"x-api-key": API_KEY}, timeout=10)
    except httpx.TransportError:
        return []
    if answer.status_code == 503:
        return []
    if answer.status_code != 200:
        raise CheckFailed(f"{url}/health answered {answer.status_code}: {answer.text[:200]}")
    replicas: list[dict[str, Any]] = answer.json()["replica_list"]
    return replicas


def http_status(url: str) -> int:
    """The status code of a GET with the key."""
    import httpx

    return httpx.get(url, headers={"x-api-key": API_KEY}, timeout=30).status_code


def concurrent_images(url: str, count: int) -> list[tuple[str, bytes]]:
    """`count` requests for the same image sent at once: (replica, image) for each."""
    import httpx

    def one(_: int) -> tuple[str, bytes]:
        answer = httpx.post(f"{url}/v1/flux-schnell", json=BODY,
                            headers={"x-api-key": API_KEY}, timeout=120)
        if answer.status_code != 200:
            raise CheckFailed(f"{url} answered {answer.status_code}: {answer.text[:200]}")
        return answer.headers["x-imagine-replica"], answer.content

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def bot_image(url: str, work: Path) -> Path:
    """`imagine-bot imagine` on this machine with the fleet at `url` as its worker."""
    out = work / "bot-out"
    env = {**environment(), "IMAGINE_CONFIG": str(work / "absent.toml"),
           "IMAGINE_STORAGE__PATH": str(work / "bot-data"), "IMAGINE_METRICS__PORT": "0",
           "IMAGINE_WORKER__URL": url, "IMAGINE_WORKER_API_KEY": API_KEY,
           "IMAGINE_ROUTING__FLUX_SCHNELL": "worker"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "imagine", f"{BODY['prompt']} --w 512 --h 512 --steps 1",
         "--model", "flux-schnell", "--seed", "7", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    files = list(out.iterdir()) if out.exists() else []
    if done.returncode != 0 or len(files) != 1:
        raise CheckFailed(f"the bot exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return files[0]


if __name__ == "__main__":
    sys.exit(main())
