"""One model's pipeline per replica, with requests that wait together run as one call.

A ModelReplica loads its Engine once (on the GPU Ray gave it: Ray sets CUDA_VISIBLE_DEVICES,
so cuda:0 is that GPU) and makes images on one thread, as the worker does. `@serve.batch`
gathers the requests that arrive within `batch_wait_s` (up to `max_batch_size` images); those
with the same batch_key (model, size, steps, cfg, sampler, scheduler) run as one pipeline call,
the rest one after another. Failures come back as values (ReplicaAnswer.status), not raised,
so the ingress answers them with the worker's own sentences.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import ray
from ray import serve

from bot.fleet.board import BOARD_NAMESPACE, ReplicaReport, board_name
from bot.fleet.routing import LeastBusyRouter
from bot.fleet.spec import FleetSpec, images_in
from bot.worker.contract import OutOfMemory, encode_images
from bot.worker.params import GenerationParams, batch_key

log = logging.getLogger("bot.fleet")

FAILED = "The fleet failed while generating; its replica's log has the details."
# Reports go out from the heartbeat task, never from a request's path (a Ray call costs
# milliseconds there); a change wakes it, and changes closer together than this share one.
REPORT_GAP_S = 0.05


@dataclass(frozen=True)
class ReplicaAnswer:
    """What a replica sends back for one request: encoded images, or a status and sentence."""

    replica: str
    images: tuple[bytes, ...] = ()
    status: int = 200
    error: str = ""
    batch: int = 1  # images made in the same pipeline call
    seconds: float = 0.0  # this request's share of the pipeline call
    replica_ms: float = 0.0  # from arriving at the replica to the answer (waiting included)


def group_by_key(batch: list[GenerationParams]) -> list[list[int]]:
    """Indexes of `batch` grouped into pipeline calls, in arrival order of each group's first."""
    groups: dict[object, list[int]] = {}
    alone: list[list[int]] = []
    order: list[list[int]] = []
    for index, params in enumerate(batch):
        key = batch_key(params)
        if key is None:
            alone.append([index])
            order.append(alone[-1])
        elif key in groups:
            groups[key].append(index)
        else:
            groups[key] = [index]
            order.append(groups[key])
    return order


class ModelReplica:
    """A Serve deployment class (bound in app.py): one model, one Engine, one GPU thread."""

    # Serve calls __del__ also on a replica whose __init__ raised (a model that failed to
    # load): what __del__ reads has a value before __init__ sets it.
    _gpu: ThreadPoolExecutor | None = None
    _board: Any = None  # the board's actor handle, looked up by each heartbeat
    _beat: asyncio.Task[None] | None = None

    # Ray actors (and so Serve replicas) may construct asynchronously; type checkers object.
    async def __init__(self, model: str, spec: FleetSpec) -> None:  # type: ignore[misc]
        context = serve.get_replica_context()
        self.model = model
        self.name = f"{model}/{context.replica_tag}"
        self.spec = spec
        self._board_name = board_name(context.app_name)
        self._gpu = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imagine-gpu")
        loop = asyncio.get_running_loop()
        self.engine = await loop.run_in_executor(self._gpu, spec.loader, model)
        self.run_batch.set_max_batch_size(spec.max_batch_size)  # type: ignore[attr-defined]
        self.run_batch.set_batch_wait_timeout_s(spec.batch_wait_s)  # type: ignore[attr-defined]
        self._ongoing = 0
        self._images = 0
        self._node = ray.get_runtime_context().get_node_id()[:12]
        self._changed = asyncio.Event()  # set when `ongoing` changes: report it soon
        self._beat = asyncio.create_task(self._heartbeat())
        log.info("replica %s ready on %s", self.name, self.engine.device_name)

    async def generate(self, params: GenerationParams) -> ReplicaAnswer:
        """Make one validated request's images (batched with others where they fit)."""
        started = time.perf_counter()
        self._ongoing += 1
        self._changed.set()
        try:
            answer: ReplicaAnswer = await self.run_batch(params)
        finally:
            self._ongoing -= 1
            self._changed.set()
        return replace(answer, replica_ms=(time.perf_counter() - started) * 1000)

    @serve.batch(batch_size_fn=images_in)
    async def run_batch(self, batch: list[GenerationParams]) -> list[ReplicaAnswer]:
        """Run the gathered requests: one pipeline call per group of equal batch_key."""
        answers: list[ReplicaAnswer | None] = [None] * len(batch)
        loop = asyncio.get_running_loop()
        for group in group_by_key(batch):
            items = [batch[i] for i in group]
            made = await loop.run_in_executor(self._gpu, self._make, items)
            for index, answer in zip(group, made, strict=True):
                answers[index] = answer
        return [answer for answer in answers if answer is not None]

    def _make(self, items: list[GenerationParams]) -> list[ReplicaAnswer]:
        """On the GPU thread: generate and encode; failures become answers with a status."""
        started = time.perf_counter()
        try:
            if len(items) == 1:  # several samples of one request stay one image per call
                made = [self.engine.generate(items[0])]
            else:
                made = self.engine.generate_batch(items)
            encoded = [encode_images(images, params) for images, params in zip(made, items,
                                                                                 strict=True)]
        except OutOfMemory as exc:
            return [ReplicaAnswer(self.name, status=503, error=str(exc))] * len(items)
        except Exception:
            log.exception("replica %s failed on %d requests", self.name, len(items))
            return [ReplicaAnswer(self.name, status=500, error=FAILED)] * len(items)
        seconds = time.perf_counter() - started
        total = images_in(items)
        self._images += total
        return [
            ReplicaAnswer(self.name, tuple(data), batch=total,
                          seconds=seconds * params.samples / total)
            for data, params in zip(encoded, items, strict=True)
        ]

    def _find_board(self) -> Any:
        """The board's handle, or None while the ingress has not made it (or is replaced)."""
        try:
            return ray.get_actor(self._board_name, namespace=BOARD_NAMESPACE)
        except ValueError:
            return None

    def _report(self) -> None:
        """Tell the board how this replica stands (fire and forget)."""
        if self._board is None:
            return
        self._board.report.remote(ReplicaReport(
            replica=self.name, model=self.model, pid=os.getpid(), node=self._node,
            device=self.engine.device_name,
            dtype=str(self.engine.dtype).removeprefix("torch."),
            ongoing=self._ongoing, images=self._images, at=time.time(),
        ))

    async def _heartbeat(self) -> None:
        """Report every heartbeat_s, and soon after `ongoing` changes."""
        looked_up = -self.spec.heartbeat_s
        while True:
            if time.monotonic() - looked_up >= self.spec.heartbeat_s:
                # Looked up afresh each heartbeat (a call to Ray's control store, so off the
                # event loop): a board replaced with its ingress is found again soon.
                self._board = await asyncio.to_thread(self._find_board)
                looked_up = time.monotonic()
            self._changed.clear()
            self._report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.spec.heartbeat_s)
            await asyncio.sleep(REPORT_GAP_S)

    async def __del__(self) -> None:
        """On a clean stop: leave the board at once rather than fading out of it."""
        if self._beat is not None:
            self._beat.cancel()
        if self._board is not None:
            with contextlib.suppress(Exception):
                self._board.leave.remote(self.name)
        if self._gpu is not None:
            self._gpu.shutdown(wait=False)

    def __repr__(self) -> str:
        return f"ModelReplica({self.name})"


def deployment_options(spec: FleetSpec) -> dict[str, Any]:
    """Serve options of one model's deployment: replicas, resources, queue bounds."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_gpus": spec.gpus_per_replica,
                              "num_cpus": spec.cpus_per_replica},
        "max_ongoing_requests": spec.max_ongoing_requests,
        "max_queued_requests": spec.max_queued_requests,
        # Loading a large pipeline takes minutes; Serve must not give up on it meanwhile.
        "health_check_timeout_s": 60,
        "health_check_period_s": spec.health_check_period_s,
        "graceful_shutdown_wait_loop_s": spec.drain_check_s,
    }
    if spec.least_busy:
        options["request_router_config"] = {"request_router_class": LeastBusyRouter}
    autoscaling = spec.autoscaling()
    if autoscaling is None:
        options["num_replicas"] = spec.min_replicas
    else:
        options["autoscaling_config"] = autoscaling
    return options
