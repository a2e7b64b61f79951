"""GET /health at the ingress: the worker's answer, for the whole fleet."""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import RayActorError

from bot.fleet.board import BOARD_NAMESPACE, board_name
from tests.fleet.support import FLEET_APP, SMALL, Fleet, poll


def test_health_lists_the_models_and_every_live_replica(fleet: Fleet) -> None:
    health = fleet.health().json()

    assert health["models"] == ["flux-schnell"]
    assert health["fleet"] is True
    assert health["replicas"] == {"flux-schnell": 2}
    assert health["device"] == "fleet of 2 replicas: cpu"
    assert len({r["pid"] for r in health["replica_list"]}) == 2


def test_health_names_the_ingress_node(fleet: Fleet) -> None:
    # The package's Ray has one node (the command's tests add a second only for a while).
    node = ray.get_runtime_context().get_node_id()[:12]

    assert fleet.health().json()["ingress"]["node"] == node


def test_health_offers_the_samplers_the_bot_routes_by(fleet: Fleet) -> None:
    samplers = fleet.health().json()["samplers"]

    assert samplers["flux-schnell"]["sampler_name"] == ["euler", "euler_a"]
    assert "normal" in samplers["flux-schnell"]["scheduler"]


def test_health_counts_images_and_measures_seconds_per_image(fleet: Fleet) -> None:
    before = fleet.health().json()["images"]["flux-schnell"]
    fleet.post("flux-schnell", {**SMALL, "seed": 3})

    health = fleet.health().json()

    assert health["images"]["flux-schnell"] == before + 1
    assert health["seconds_per_image"]["flux-schnell"] > 0
    assert health["queue_depth"] == 0


def test_health_lists_the_replicas_again_soon_after_its_board_died(fleet: Fleet) -> None:
    # The board holds the replicas' reports; one on a machine that went down dies alone.
    board = ray.get_actor(board_name(FLEET_APP), namespace=BOARD_NAMESPACE)
    ray.kill(board, no_restart=True)

    def dead() -> bool | None:
        try:
            ray.get(board.snapshot.remote(1.0), timeout=10)
        except RayActorError:
            return True
        return None

    poll(dead, 30, "the board's death")
    statuses: list[int] = []

    def both_listed() -> dict[str, Any] | None:
        response = fleet.health()
        statuses.append(response.status_code)
        found = response.json() if response.status_code == 200 else None
        return found if found and found["replicas"] == {"flux-schnell": 2} else None

    poll(both_listed, 30, "both replicas on /health again")

    assert statuses[0] == 503  # the premise: the ingress found its board gone
    assert 500 not in statuses
