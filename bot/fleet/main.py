"""`imagine-bot fleet`: the worker's models on many GPUs and machines, behind one URL (Ray Serve).

    imagine-bot fleet --model flux-schnell=SOURCE [--model chroma=SOURCE] ...
                      [--replicas N | --min-replicas A --max-replicas B]
                      [--gpus-per-replica X] [--cpus-per-replica Y]
                      [--max-batch-size N] [--batch-wait-ms MS]
                      [--address auto|HOST:PORT|ray://HOST:PORT] [--host H] [--port P]
                      [--cpu-offload] [--attention-slicing] [--vae-tiling] [--compile]

Options left out come from the config's [fleet] section, then the defaults. Without --address
a local Ray starts with this command (and stops with it); with one, the fleet joins that
cluster (`ray start --head` on one machine, `ray start --address HEAD:6379` on the others).
Ray, torch and diffusers are imported only inside run_fleet, so `imagine-bot --help` works
without the fleet extra. Every start-up problem is one line on stderr: exit code 2 for bad
options, a cluster out of reach or a Ray of its own too small for the replicas, 1 when Serve
gives up on the deployment. A replica that fails to start while Serve retries it (on a machine
without the model, say), and, once serving, a cluster that lost the room for the replicas (a
machine gone), are told once each, and the command waits on.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.worker.main import (
    API_KEY_ENV,
    add_pipeline_arguments,
    configure_logging,
    fail,
    is_loopback,
)
from bot.worker.sources import DEFAULT_SOURCES, SourceError, parse_model_options, resolve_source

if TYPE_CHECKING:
    from bot.fleet.spec import FleetSpec

APP_NAME = "imagine"
log = logging.getLogger("bot.fleet")
# "bot.worker.sources.SourceError: " before a traceback's last line: the sentence follows it.
_EXCEPTION_TYPE = re.compile(r"^(?:\w+\.)*\w*(?:Error|Exception): ")
# How Serve's deployment message begins while it retries a replica that failed to start, and
# where Ray's error in it names the machine: "(pid=..., ip=10.0.0.2, actor_id=...)".
_RETRYING_A_REPLICA = "A replica failed to start"
_NODE_IP = re.compile(r"\bip=([^,)\s]+)")


class DeployFailed(Exception):
    """Serve gave up on the fleet's application; the message says why."""


@dataclass(frozen=True)
class FleetOptions:
    """The command's options once merged with [fleet] and the defaults."""

    models: tuple[str, ...]
    min_replicas: int
    max_replicas: int
    gpus_per_replica: float
    cpus_per_replica: float
    max_batch_size: int
    batch_wait_s: float
    address: str
    host: str
    port: int


def add_fleet_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the fleet's options to `parser` (used by `imagine-bot fleet`)."""
    defaults = ", ".join(f"{m}={s}" for m, s in DEFAULT_SOURCES.items())
    parser.add_argument("--model", action="append", default=[], metavar="MODEL[=SOURCE]",
                        help="a model to serve, repeatable; SOURCE is a diffusers folder (the "
                             f"same path on every machine) or a hub id (defaults: {defaults})")
    parser.add_argument("--replicas", type=int, default=None,
                        help="a fixed number of replicas per model")
    parser.add_argument("--min-replicas", type=int, default=None,
                        help="autoscaling: the fewest replicas per model (default 1)")
    parser.add_argument("--max-replicas", type=int, default=None,
                        help="autoscaling: the most replicas per model (default: min)")
    parser.add_argument("--gpus-per-replica", type=float, default=None,
                        help="GPUs each replica takes (default 1; 0 runs on the CPU)")
    parser.add_argument("--cpus-per-replica", type=float, default=None,
                        help="CPUs each replica takes (default 1)")
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="images one pipeline call may make for waiting requests (default 4)")
    parser.add_argument("--batch-wait-ms", type=float, default=None,
                        help="how long a replica waits to gather a batch (default 20)")
    parser.add_argument("--address", default=None,
                        help="a Ray cluster to join: auto, HOST:PORT or ray://HOST:PORT "
                             "(default: start a local Ray)")
    parser.add_argument("--host", default=None, help="address of the one URL (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="its port (default 8000)")
    add_pipeline_arguments(parser)


def fleet_options(args: argparse.Namespace, configured: Any) -> FleetOptions:
    """Merge the command line over a [fleet] section (bot.config.FleetSettings or None)."""

    def pick(name: str, default: Any) -> Any:
        given = getattr(args, name, None)
        if given is not None:
            return given
        return getattr(configured, name, default) if configured is not None else default

    models = list(getattr(args, "model", None) or [])
    if not models and configured is not None:
        models = [f"{m}={s}" if s else m for m, s in configured.models.items()]
    low_given, high_given = getattr(args, "min_replicas", None), getattr(args, "max_replicas", None)
    if getattr(args, "replicas", None) is not None:
        low = high = args.replicas
    elif low_given is not None or high_given is not None:
        low = low_given if low_given is not None else 1
        high = high_given if high_given is not None else low
    elif configured is not None:
        low, high = configured.replica_bounds()
    else:
        low = high = 1
    wait_ms = getattr(args, "batch_wait_ms", None)
    if wait_ms is not None:
        batch_wait_s = wait_ms / 1000
    else:
        batch_wait_s = configured.batch_wait_s if configured is not None else 0.02
    return FleetOptions(
        models=tuple(models), min_replicas=low, max_replicas=high,
        gpus_per_replica=pick("gpus_per_replica", 1.0),
        cpus_per_replica=pick("cpus_per_replica", 1.0),
        max_batch_size=pick("max_batch_size", 4), batch_wait_s=batch_wait_s,
        address=pick("address", "") or "", host=pick("host", "127.0.0.1"),
        port=pick("port", 8000),
    )


def run_fleet(args: argparse.Namespace) -> int:
    """Deploy the fleet and serve until SIGINT or SIGTERM; returns the exit code."""
    try:
        options = fleet_options(args, _configured(getattr(args, "config", None)))
        chosen = parse_model_options(list(options.models))
        sources = {model: resolve_source(model, source) for model, source in chosen.items()}
    except SourceError as exc:
        return _fail(str(exc))
    api_key = os.environ.get(API_KEY_ENV) or None
    if api_key is None and not is_loopback(options.host) \
            and not getattr(args, "insecure_no_key", False):
        return _fail(f"listening on {options.host} without {API_KEY_ENV} would let anyone on "
                     "the network use the GPUs; set it (clients send it as x-api-key) or pass "
                     "--insecure-no-key")
    try:
        import ray
        from ray import serve

        from bot.fleet.app import build_app
        from bot.fleet.spec import FleetSpec, SourceLoader, resource_shortfall
        from bot.worker.sources import EngineOptions
    except ImportError as exc:
        return _fail(f"the fleet needs the fleet and worker extras (pip install "
                     f"'imagine-bot[worker,fleet]'): {exc.name or exc} is missing")
    try:
        spec = FleetSpec(
            models=tuple(sources), app_name=APP_NAME,
            loader=SourceLoader(tuple(sources.items()), EngineOptions(
                cpu_offload=getattr(args, "cpu_offload", False),
                attention_slicing=getattr(args, "attention_slicing", False),
                vae_tiling=getattr(args, "vae_tiling", False),
                compile=getattr(args, "compile", False),
            )),
            min_replicas=options.min_replicas, max_replicas=options.max_replicas,
            gpus_per_replica=options.gpus_per_replica,
            cpus_per_replica=options.cpus_per_replica,
            max_batch_size=options.max_batch_size, batch_wait_s=options.batch_wait_s,
        )
    except ValueError as exc:
        return _fail(str(exc))
    unreachable = cluster_unreachable(options.address)
    if unreachable:  # Ray itself would retry for minutes before saying so
        return _fail(f"could not reach the Ray cluster at {options.address}: {unreachable}")
    configure_logging("bot.fleet", "fleet")  # Ray logs its own lines at WARNING
    try:
        # "local": a Ray of its own even where RAY_ADDRESS or an earlier `ray start` on this
        # machine would make ray.init join that cluster (and the stop would end its Serve).
        ray.init(address=options.address or "local", logging_level=logging.WARNING)
    except Exception as exc:  # a cluster that refuses us, or is not Ray: one line
        return _fail(f"could not join the Ray cluster at {options.address}: {_first_line(exc)}"
                     f"{auth_hint(options.address)}")
    # Ours replace the handler ray.init installed (which exits on the spot): a signal during
    # the deployment stops the fleet cleanly.
    stop = _stop_on_signals()
    shortfall = resource_shortfall(spec, live_machines())
    if shortfall and not options.address:  # a Ray of its own never gets more
        ray.shutdown()
        return _fail(f"the fleet cannot start on this machine's Ray: {shortfall}")
    if shortfall:  # a cluster may grow (a node joins, an autoscaler adds one)
        print(f"imagine-bot fleet: waiting for room: {shortfall}; the replicas start once the "
              "cluster has it (Ctrl-C stops)", file=sys.stderr)
    try:
        serve_was_running = serve_is_running()  # then Serve keeps its HTTP address
        serve.start(http_options={"host": options.host, "port": options.port})
        # Not serve.run: it waits for the application without a way to stop the wait, and a
        # replica with no room waits for ever. run_many can leave the waiting to us.
        here = ray.get_runtime_context().get_node_id()  # the ingress's place, while it is up
        serve.run_many([serve.RunTarget(build_app(spec, api_key, ingress_node=here),
                                        name=APP_NAME, route_prefix="/")],
                       wait_for_applications_running=False)
        teller = Teller()
        running = _wait_until_running(stop, teller)
    except Exception as exc:  # a deployment that cannot start: one line, never a traceback
        if options.address:  # no failed application left behind in a cluster that stays
            with contextlib.suppress(Exception):
                serve.delete(APP_NAME)
        ray.shutdown()
        return _fail(f"the fleet did not start: {_first_line(exc)}", code=1)
    if running:
        where = (f"at http://{options.host}:{options.port}" if not serve_was_running else
                 "at the address of the Serve already running on this cluster (--host and "
                 "--port apply only to a Serve this command starts)")
        print(f"imagine-bot fleet: serving {', '.join(sources)} {where} "
              f"({_replicas_text(options)} per model); Ctrl-C stops it", file=sys.stderr)
        _serve_until_stopped(stop, teller, spec)
    print("imagine-bot fleet: stopping", file=sys.stderr)
    _stop_fleet(own_ray=not options.address)
    return 0


def cluster_unreachable(address: str) -> str | None:
    """Why nothing answers at a HOST:PORT or ray://HOST:PORT address, or None when something
    does (or the address is empty or `auto`, which Ray resolves on this machine)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            return None
    except OSError as exc:
        return (f"nothing answers there ({exc.strerror or type(exc).__name__}); is `ray start "
                "--head` running on that machine, with that port?")


def auth_hint(address: str) -> str:
    """What to try when joining `address` failed: Ray sends its token to an address given
    explicitly only with RAY_AUTH_MODE=token ("auto" finds the local token by itself)."""
    if os.environ.get("RAY_AUTH_MODE") or address in ("", "auto"):
        return ""
    return (" (a cluster that uses Ray's token authentication needs RAY_AUTH_MODE=token and its "
            "token in RAY_AUTH_TOKEN or ~/.ray/auth_token; see docs/fleet.md)")


def serve_is_running() -> bool:
    """Whether Ray Serve already runs on the connected cluster (its proxies are up)."""
    from ray import serve

    return bool(serve.status().proxies)


def _replicas_text(options: FleetOptions) -> str:
    if options.min_replicas == options.max_replicas:
        return f"{options.min_replicas} replica{'s' if options.min_replicas > 1 else ''}"
    return f"{options.min_replicas} to {options.max_replicas} replicas"


def live_machines() -> list[dict[str, float]]:
    """Each live machine's resources in the Ray this process is connected to (Ray's
    ray.nodes()), as resource_shortfall takes them."""
    import ray

    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


class Teller:
    """Says each of the fleet's troubles once, on stderr, while it lasts: one that clears and
    comes back later is said again."""

    def __init__(self) -> None:
        self._told: set[str] = set()

    def tell(self, troubles: list[str]) -> None:
        """Print the troubles not said yet; forget those no longer in the list."""
        for trouble in sorted(set(troubles) - self._told):
            print(f"imagine-bot fleet: {trouble}", file=sys.stderr)
        self._told = set(troubles)


def troubles(app: Any, shortfall: str | None = None) -> list[str]:
    """What the command tells of an application (Serve's ApplicationStatusOverview) and of the
    cluster's room for its replicas (resource_shortfall's sentence, or None)."""
    # Serve gives up on a deployment only while none of its replicas has started; after that
    # it retries for ever (a machine without the model folder, say).
    said = [f"{failure}; Serve keeps retrying it (Ctrl-C stops)"
            for failure in start_failures(app)]
    if shortfall:
        said.append(f"the cluster lost room: {shortfall}; the missing replicas start once it "
                    "has room again")
    return said


def _wait_until_running(stop: threading.Event, teller: Teller) -> bool:
    """Wait until the application runs (True) or `stop` is set before it does (False); raises
    DeployFailed with Serve's reason when Serve gives up on it."""
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    stopped = False
    while True:  # the status is read once more after a stop: it may have come as it ran
        app = serve.status().applications.get(APP_NAME)
        if app is not None and app.status == ApplicationStatus.RUNNING:
            return True
        if app is not None and app.status == ApplicationStatus.DEPLOY_FAILED:
            raise DeployFailed(deploy_failure(app))
        if app is not None:
            teller.tell(troubles(app))
        if stopped:
            return False
        stopped = stop.wait(0.25)


def _serve_until_stopped(stop: threading.Event, teller: Teller, spec: FleetSpec) -> None:
    """Wait for SIGINT or SIGTERM, telling meanwhile of replicas that fail to start (a
    replacement, or one more under load, on a machine without the model) and of a cluster
    that lost the room for them (a machine gone)."""
    from ray import serve

    from bot.fleet.spec import resource_shortfall

    unread = False  # the last read failed: warned once until one succeeds
    while not stop.wait(2.0):
        try:
            app = serve.status().applications.get(APP_NAME)
            shortfall = resource_shortfall(spec, live_machines())
        except Exception as exc:  # the cluster out of reach for a while: read on
            if not unread:
                log.warning("could not read the fleet's status from Ray: %s", _first_line(exc))
            unread = True
            continue
        unread = False
        if app is not None:
            teller.tell(troubles(app, shortfall))


def deploy_failure(app: Any) -> str:
    """Why Serve gave up on an application (its ApplicationStatusOverview): the last line of
    each failed deployment's message, which is the exception its replicas raised, else the
    application's own message."""
    reasons = [_exception_line(name, deployment.message)
               for name, deployment in app.deployments.items()
               if deployment.status == "DEPLOY_FAILED" and deployment.message.strip()]
    return "; ".join(reasons)[:300] or _first_line(app.message or "Serve gave no reason")


def start_failures(app: Any) -> list[str]:
    """What Serve is retrying in an application (its ApplicationStatusOverview, deploying or
    replacing a replica): for each deployment whose replica failed to start, which machine
    (its IP, where Ray's error names it) and the exception the replica raised."""
    failures = []
    for name, deployment in app.deployments.items():
        if deployment.message.startswith(_RETRYING_A_REPLICA):
            node = _NODE_IP.search(deployment.message)
            where = f" on {node.group(1)}" if node else ""
            reason = _exception_line(name, deployment.message)[:300].rstrip(".")
            failures.append(f"a replica of {name} failed to start{where}: {reason}")
    return failures


def _exception_line(deployment: str, message: str) -> str:
    """The last line of a Serve message holding a replica's traceback (the exception), without
    its type, and beginning with the deployment's name."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    reason = _EXCEPTION_TYPE.sub("", lines[-1], count=1)
    return reason if reason.startswith(f"{deployment}:") else f"{deployment}: {reason}"


def _stop_fleet(*, own_ray: bool) -> None:
    """Delete the application; on a Ray of the command's own, end Serve and that Ray too."""
    import ray
    from ray import serve

    # Deleted first, while the proxies still run: requests in flight get their answers as the
    # replicas drain. serve.shutdown stops the proxies with everything else.
    serve.delete(APP_NAME)
    if own_ray:
        serve.shutdown()
    ray.shutdown()


def _stop_on_signals() -> threading.Event:
    """An event that SIGINT or SIGTERM (a container's stop) sets."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _configured(path: Path | None) -> Any:
    """The config's [fleet] section, or None when the bot's settings cannot be imported."""
    try:
        from bot.config import ConfigError, Settings
    except ImportError:
        return None
    try:
        return Settings.load(path).fleet
    except ConfigError as exc:
        raise SourceError(f"config: {exc}") from None


def _first_line(exc: BaseException | str) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _fail(line: str, code: int = 2) -> int:
    return fail("fleet", line, code)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.fleet.main",
                                     description="Serve image models on a Ray cluster.")
    add_fleet_arguments(parser)
    return run_fleet(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_main())
