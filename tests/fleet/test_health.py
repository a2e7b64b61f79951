"""GET /health at the ingress: the worker's answer, for the whole fleet."""

from __future__ import annotations

from tests.fleet.support import SMALL, Fleet


def test_health_lists_the_models_and_every_live_replica(fleet: Fleet) -> None:
    health = fleet.health().json()

    assert health["models"] == ["flux-schnell"]
    assert health["fleet"] is True
    assert health["replicas"] == {"flux-schnell": 2}
    assert health["device"] == "fleet of 2 replicas: cpu"
    assert len({r["pid"] for r in health["replica_list"]}) == 2


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
