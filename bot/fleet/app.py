"""The fleet's Serve application: one ingress URL in front of one deployment per model.

    POST /v1/{model}   the worker's contract (bot/worker/app.py): the same fields, validation,
                       answers and errors; every image answer also carries
                       x-imagine-replica    the replica that made it ("<model>/<replica tag>")
                       x-imagine-batch      images made in the same pipeline call
                       x-imagine-replica-ms time inside the replica, waiting for a batch included
                       x-imagine-pipeline-ms this request's share of its pipeline call
    GET  /health       the worker's fields for the whole fleet (models with a live replica,
                       queue_depth, seconds_per_image, images, samplers) plus "replicas" (live
                       replicas per model), "queues" (requests in flight per model) and
                       "replica_list" (each live replica: node, pid, device, ongoing, images)
                       and "ingress" (its node and pid);
                       503 while no replica is live

Errors are the worker's (400, 401, 404, 405, 413, 500, 503 out of memory) plus 503 with a
sentence when a replica dies while making the image (the bot's retry sends it again and Ray
replaces the replica), when a model's queue is full (max_queued_requests), or when its
deployment cannot run. The ingress validates every request before any replica sees it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import (
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.catalog import Catalog
from bot.fleet.board import (
    BOARD_NAMESPACE,
    MISSED_HEARTBEATS,
    FleetBoard,
    ReplicaReport,
    board_name,
)
from bot.fleet.replica import ModelReplica, ReplicaAnswer, deployment_options
from bot.fleet.spec import FleetSpec
from bot.worker.contract import error, guarded, http_error, image_answer, read_json_body
from bot.worker.params import parse_body
from bot.worker.samplers import table_for

log = logging.getLogger("bot.fleet")

NODE_ID_LABEL = "ray.io/node-id"  # the label Ray gives every node: its id

REPLICA_DIED = ("A replica of the fleet stopped while making this image; send it again "
                "(another replica takes it).")


@dataclass
class _ModelFigures:
    """What the ingress counts per model (it sees every request: the fleet has one ingress)."""

    in_flight: int = 0
    images: int = 0
    seconds: float = 0.0


class FleetIngress:
    """The HTTP front of the fleet: API key, validation, routing to the model deployments."""

    # Ray actors (and so Serve replicas) may construct asynchronously; type checkers object.
    async def __init__(  # type: ignore[misc]
        self, replicas: Mapping[str, Any], heartbeat_s: float, api_key: str | None
    ) -> None:
        self.replicas = dict(replicas)  # model -> DeploymentHandle
        self.heartbeat_s = heartbeat_s
        self.api_key = api_key or None
        self.catalog = Catalog()
        self.tables = {model: table_for(model) for model in self.replicas}
        self.figures = {model: _ModelFigures() for model in self.replicas}
        self.cancelled = 0
        self.node = ray.get_runtime_context().get_node_id()[:12]  # as replicas name theirs
        self.board = self._board()

    def _board(self) -> Any:
        """The board's actor handle: the running board, else a new one on this machine.

        The board lives as long as this ingress (it is its owner), on its machine: placed
        anywhere else, a machine that goes down could take the board away from a live
        ingress. Replicas find it by name at each heartbeat."""
        this_machine = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                      soft=False)
        return ray.remote(FleetBoard).options(
            name=board_name(serve.get_replica_context().app_name), namespace=BOARD_NAMESPACE,
            get_if_exists=True, num_cpus=0, scheduling_strategy=this_machine,
        ).remote()

    async def _reports(self) -> list[ReplicaReport]:
        """The replicas heard from within a few heartbeats, from the board; none while a new
        board replaces one that is gone."""
        try:
            reports: list[ReplicaReport] = await self.board.snapshot.remote(
                MISSED_HEARTBEATS * self.heartbeat_s)
        except RayActorError:  # its process died, or its machine (an earlier ingress's board)
            log.warning("the fleet's board is gone; starting a new one")
            self.board = self._board()
            return []  # the replicas report to the new board at their next heartbeat
        return reports

    def __serve_build_asgi_app__(self) -> Starlette:
        """The Starlette app Serve runs in this ingress (serve.ingress, late-bound)."""
        return Starlette(
            routes=[
                Route("/health", guarded(self.health, self.api_key), methods=["GET"]),
                Route("/v1/{model}", guarded(self.generate, self.api_key), methods=["POST"]),
            ],
            exception_handlers={HTTPException: http_error},
        )

    async def generate(self, request: Request) -> Response:
        """POST /v1/{model}: validate here, make the images on a replica, answer as the worker."""
        model = request.path_params["model"]
        spec = self.catalog.get(model) if model in self.replicas else None
        if spec is None or spec.name != model:
            served = ", ".join(sorted(self.replicas))
            return error(404, f"Model {model[:40]!r} is not served here; this fleet serves "
                              f"{served}.")
        params = parse_body(spec, await read_json_body(request), self.tables[model])
        figures = self.figures[model]
        figures.in_flight += 1
        try:
            answer: ReplicaAnswer = await self.replicas[model].generate.remote(params)
        except (RayActorError, ActorUnavailableError, ReplicaUnavailableError) as exc:
            log.warning("a %s replica died during a request: %s", model, type(exc).__name__)
            return error(503, REPLICA_DIED)
        except BackPressureError:
            return error(503, f"Every {model} replica is busy and its queue is full; try again "
                              "shortly.")
        except DeploymentUnavailableError:
            return error(503, f"No {model} replica can take work: its deployment failed to "
                              "start; the fleet's log says why.")
        except asyncio.CancelledError:
            self.cancelled += 1  # the client went away; Serve cancels the replica's call
            raise
        finally:
            figures.in_flight -= 1
        if answer.status != 200:
            return error(answer.status, answer.error)
        figures.images += len(answer.images)
        figures.seconds += answer.seconds
        return image_answer(list(answer.images), params, {
            "x-imagine-replica": answer.replica,
            "x-imagine-batch": str(answer.batch),
            "x-imagine-replica-ms": f"{answer.replica_ms:.1f}",
            "x-imagine-pipeline-ms": f"{answer.seconds * 1000:.1f}",
        })

    async def health(self, request: Request) -> Response:
        """GET /health: the worker's answer for the whole fleet, from the replicas' reports."""
        reports = await self._reports()
        live = {model: [r for r in reports if r.model == model] for model in self.replicas}
        models = sorted(model for model, found in live.items() if found)
        if not models:
            return error(503, "No replica of the fleet is running yet (they may still be "
                              "loading their models); try again shortly.")
        devices = sorted({r.device for r in reports})
        return JSONResponse({
            "models": models,
            "device": f"fleet of {len(reports)} replicas: {', '.join(devices)}",
            "dtype": ", ".join(sorted({r.dtype for r in reports})),
            "queue_depth": sum(f.in_flight for f in self.figures.values()),
            "seconds_per_image": {
                m: round(f.seconds / f.images, 4) for m, f in self.figures.items() if f.images
            },
            "images": {m: f.images for m, f in self.figures.items()},
            "cancelled": self.cancelled,
            "samplers": {
                m: {"sampler_name": list(t.samplers), "scheduler": list(t.schedules)}
                for m, t in self.tables.items() if m in models
            },
            "fleet": True,
            "replicas": {m: len(found) for m, found in live.items()},
            "queues": {m: f.in_flight for m, f in self.figures.items()},
            "replica_list": [r.public() for r in reports],
            "ingress": {"node": self.node, "pid": os.getpid()},
        })


def build_app(spec: FleetSpec, api_key: str | None = None, ingress_node: str | None = None
              ) -> Any:
    """The Serve application for `spec`: pass it to serve.run (an ingress and one deployment
    per model; the api_key, if set, guards every route; the ingress runs on the Ray node
    `ingress_node` while that node is up, if one is given)."""
    replicas = {
        model: serve.deployment(name=model, **deployment_options(spec))(ModelReplica).bind(
            model, spec)
        for model in spec.models
    }
    # One ingress replica: it is light (validation and routing only) and, being the only one,
    # it sees the whole fleet's queue for /health. It never gets the spec's loader, so its
    # process imports no torch.
    ingress = serve.deployment(
        name="ingress", num_replicas=1, ray_actor_options=ingress_actor_options(ingress_node),
        max_ongoing_requests=spec.ingress_max_ongoing_requests,
        graceful_shutdown_wait_loop_s=spec.drain_check_s,
    )(serve.ingress()(FleetIngress))
    return ingress.bind(replicas, spec.heartbeat_s, api_key)


def ingress_actor_options(node: str | None) -> dict[str, Any]:
    """The ingress's Ray actor options: no CPU of its own and, given a node, that node first.

    The command gives the node it runs on (the head machine, in docs/fleet.md): placed on a
    GPU machine instead, the one ingress would take the fleet's URL down with that machine
    until Serve had started another. Anywhere else will do when that node is gone."""
    if node is None:
        return {"num_cpus": 0}
    return {"num_cpus": 0, "label_selector": {NODE_ID_LABEL: node},
            "fallback_strategy": [{"label_selector": {}}]}
