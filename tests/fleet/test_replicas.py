"""Two replicas behind one URL: both take work, and each image is the worker's own."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from bot.fleet.replica import ModelReplica
from bot.worker.contract import encode_images
from bot.worker.params import parse_body
from tests.fleet.support import SMALL, Fleet, distance


def test_concurrent_requests_are_answered_by_both_replicas(fleet: Fleet) -> None:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda seed: fleet.post("flux-schnell", {**SMALL, "seed": seed}),
                                range(8)))

    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.headers["x-imagine-replica"] for a in answers}) == 2


def test_an_image_answer_carries_the_workers_headers_and_its_replica(fleet: Fleet) -> None:
    response = fleet.post("flux-schnell", {**SMALL, "seed": 41})

    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-seeds"] == "41"
    assert response.headers["x-imagine-replica"].startswith("flux-schnell/")
    assert response.headers["x-imagine-replica"] in {
        r["replica"] for r in fleet.live_replicas()}


def test_an_image_answer_tells_its_share_of_the_pipeline_call_within_its_time_in_the_replica(
        fleet: Fleet) -> None:
    response = fleet.post("flux-schnell", {**SMALL, "seed": 42})

    pipeline_ms = float(response.headers["x-imagine-pipeline-ms"])
    assert 0 < pipeline_ms <= float(response.headers["x-imagine-replica-ms"])


def test_the_fleet_makes_the_image_the_worker_makes_for_a_seed(fleet: Fleet, engine: Any) -> None:
    body = {**SMALL, "seed": 77, "image_format": "png"}
    params = parse_body(engine.catalog.get("flux-schnell"), body, engine.tables["flux-schnell"])

    alone = encode_images(engine.generate(params), params)[0]

    assert distance(fleet.post("flux-schnell", body).content, alone) < 0.5


def test_several_samples_come_back_as_base64_with_their_seeds(fleet: Fleet) -> None:
    response = fleet.post("flux-schnell", {**SMALL, "seed": 5, "samples": 2, "base64": True})

    assert response.json()["seeds"] == [5, 6]
    assert len(response.json()["images"]) == 2


# Python calls __del__ too, when the instance is collected: Serve's destructors are coroutines.
@pytest.mark.filterwarnings("ignore:coroutine 'ModelReplica.__del__' was never awaited")
def test_a_replica_whose_model_failed_to_load_stops_without_an_error() -> None:
    # Serve calls the destructor of a replica whose __init__ raised (a machine without the
    # model folder): an instance on which __init__ set nothing of what __del__ reads.
    failed = ModelReplica.__new__(ModelReplica)

    asyncio.run(failed.__del__())
