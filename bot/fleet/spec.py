"""What the fleet deploys: models, replica counts, GPUs per replica and batching. No Ray here.

A FleetSpec travels to every replica (Ray pickles it), so everything in it is plain data plus
`loader`, a picklable callable that builds one model's Engine inside a replica: SourceLoader
for real weights (a folder or a hub id), or bot.worker.synthetic's fixed-latency loader for
the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.worker.params import GenerationParams
from bot.worker.sources import EngineOptions, ModelSource

if TYPE_CHECKING:
    from bot.worker.pipelines import Engine

EngineLoader = Callable[[str], "Engine"]

DEFAULT_MAX_BATCH_SIZE = 4
DEFAULT_BATCH_WAIT_S = 0.02  # long enough to catch requests sent together, short beside a step


@dataclass(frozen=True)
class SourceLoader:
    """Loads one model's pipeline from its source inside a replica (Engine.load)."""

    sources: tuple[tuple[str, ModelSource], ...]
    options: EngineOptions | None = None

    def __call__(self, model: str) -> Engine:
        """The Engine holding `model` alone, placed on this replica's device."""
        from bot.worker.pipelines import Engine

        source = dict(self.sources)[model]
        engine = Engine.load({model: source}, self.options or EngineOptions())
        if self.options is not None and self.options.compile:
            engine.warm_up()
        return engine


@dataclass(frozen=True)
class FleetSpec:
    """The Serve application: one deployment per model, each autoscaled between bounds."""

    models: tuple[str, ...]
    loader: EngineLoader
    min_replicas: int = 1
    max_replicas: int = 1
    gpus_per_replica: float = 1.0
    cpus_per_replica: float = 1.0
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_wait_s: float = DEFAULT_BATCH_WAIT_S
    max_queued_requests: int = 1000  # beyond this, per model, the ingress answers 503
    # Each request to the least busy replica of all (bot.fleet.routing); False keeps Serve's
    # default (the less busy of two drawn at random), which bench/fleet.py compares.
    least_busy: bool = True
    app_name: str = "imagine"
    # Tests and benches shorten this; a replica reports to the board at least this often.
    heartbeat_s: float = 1.0
    # The autoscaler's pace, Serve's defaults: load must last upscale_delay_s before a replica
    # is added (a GPU replica takes minutes to load) and be gone downscale_delay_s before one
    # is stopped; replicas report their queues every metrics_interval_s. Tests shorten them.
    upscale_delay_s: float = 30.0
    downscale_delay_s: float = 600.0
    metrics_interval_s: float = 10.0
    # How often Serve checks each replica (Serve's default); a replica whose process died is
    # found at the next check and replaced. Tests shorten it.
    health_check_period_s: float = 10.0
    # A stopping replica (a scale-down, a redeploy, the command's stop) first waits this long,
    # then as long again while it still has requests. Serve's default is 2 s; routers learn of
    # the stop within milliseconds, so a shorter first wait loses nothing and stops sooner.
    drain_check_s: float = 0.5

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("a fleet needs at least one model")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ValueError("replicas: 1 <= min_replicas <= max_replicas")
        if self.gpus_per_replica < 0 or self.cpus_per_replica < 0:
            raise ValueError("gpus and cpus per replica cannot be negative")
        if self.max_batch_size < 1 or self.batch_wait_s < 0:
            raise ValueError("max_batch_size >= 1 and batch_wait_s >= 0")
        if min(self.upscale_delay_s, self.downscale_delay_s) < 0 or self.metrics_interval_s <= 0:
            raise ValueError("scaling delays >= 0 and metrics_interval_s > 0")
        if self.health_check_period_s <= 0 or self.drain_check_s <= 0:
            raise ValueError("health_check_period_s > 0 and drain_check_s > 0")

    @property
    def max_ongoing_requests(self) -> int:
        """Requests one replica holds at once: a batch running and the next one gathering.
        (One batch's worth did worse across 4 replicas in bench/fleet.py; see bench/README.)"""
        return 2 * self.max_batch_size

    @property
    def ingress_max_ongoing_requests(self) -> int:
        """Requests the ingress holds at once: all that every model's replicas and queue can
        take, so that requests wait at the model's router (least busy first), never in front
        of the ingress. (Serve's default of 5 left 4 replicas 0.8 busy in bench/fleet.py.)"""
        per_model = self.max_replicas * self.max_ongoing_requests + self.max_queued_requests
        return len(self.models) * per_model

    def autoscaling(self) -> dict[str, float | int] | None:
        """Serve's autoscaling_config, or None for a fixed replica count."""
        if self.min_replicas == self.max_replicas:
            return None
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "initial_replicas": self.min_replicas,
            # A replica with a full batch in flight is as busy as it should get.
            "target_ongoing_requests": self.max_batch_size,
            "upscale_delay_s": self.upscale_delay_s,
            "downscale_delay_s": self.downscale_delay_s,
            "metrics_interval_s": self.metrics_interval_s,
            # Serve's default window: the mean load over the last three reports.
            "look_back_period_s": 3 * self.metrics_interval_s,
        }


# The option that gives a replica less of each resource.
_OPTIONS = {"GPU": "--gpus-per-replica, or 0 to run on the CPU", "CPU": "--cpus-per-replica"}
_HAIR = 1e-9  # fractions such as 3 x 0.1 add up a hair over 0.3


def resource_shortfall(spec: FleetSpec, nodes: Sequence[Mapping[str, float]]) -> str | None:
    """What a cluster whose live machines have these resources (each one's "Resources" in
    Ray's ray.nodes()) lacks to start every model's minimum replicas, as a sentence with the
    options that fix it; None when they fit. (Serve would otherwise wait for room without end.)

    A replica takes its GPUs and CPUs on one machine, so the replicas must fit machine by
    machine, not only in the cluster's totals."""
    replicas = len(spec.models) * spec.min_replicas
    needs = {"GPU": spec.gpus_per_replica, "CPU": spec.cpus_per_replica}
    per_model = f" ({spec.min_replicas} per model)" if len(spec.models) > 1 else ""
    if replicas == 1:
        start, fix = "the 1 replica to start needs", "give it less"
    else:
        start = f"the {replicas} replicas to start{per_model} need"
        fix = "start fewer (--replicas, --min-replicas) or give each less"
    for resource, each in needs.items():
        needed, present = replicas * each, sum(node.get(resource, 0.0) for node in nodes)
        if needed > present + _HAIR:
            plural = "s" if needed != 1 else ""
            share = f" ({each:g} each)" if replicas > 1 else ""
            return (f"{start} {needed:g} {resource}{plural}{share} and the cluster has "
                    f"{present:g}; {fix} ({_OPTIONS[resource]})")
    room = sum(_replicas_on(node, needs) for node in nodes)
    if room >= replicas:
        return None
    used = {resource: each for resource, each in needs.items() if each}
    one_machine = " and ".join(f"{each:g} {resource}{'s' if each != 1 else ''}"
                               for resource, each in used.items()) + " on one machine"
    options = "; ".join(_OPTIONS[resource] for resource in used)
    if replicas == 1:
        return (f"no machine in the cluster has room for the 1 replica to start, which needs "
                f"{one_machine}; {fix} ({options})")
    return (f"the cluster's machines have room for {room} of the {replicas} replicas to "
            f"start{per_model}, each of which needs {one_machine}; {fix} ({options})")


def _replicas_on(node: Mapping[str, float], needs: Mapping[str, float]) -> float:
    """How many replicas with these needs one machine with these resources holds."""
    return min((math.floor(node.get(resource, 0.0) / each + _HAIR)
                for resource, each in needs.items() if each), default=math.inf)


def images_in(batch: Sequence[GenerationParams]) -> int:
    """A batch's size for @serve.batch: its images, not its requests."""
    return sum(params.samples for params in batch)
