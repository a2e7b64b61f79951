"""GET /health: the models loaded, the device, the queue depth and seconds per image."""

from __future__ import annotations

from tests.worker.support import Served


def test_health_lists_the_loaded_models_and_the_device(worker: Served) -> None:
    body = worker.health().json()

    assert body["models"] == ["chroma", "flux-schnell", "kolors"]
    assert body["device"] == "cpu"
    assert body["dtype"] == "float32"


def test_health_reports_an_empty_queue_when_idle(worker: Served) -> None:
    assert worker.health().json()["queue_depth"] == 0


def test_health_reports_mean_seconds_per_image_of_each_model_used(worker: Served) -> None:
    worker.small("kolors")
    worker.small("kolors", seed=2)

    body = worker.health().json()
    assert body["seconds_per_image"]["kolors"] > 0
    assert body["images"]["kolors"] >= 2
