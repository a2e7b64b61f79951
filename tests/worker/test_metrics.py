"""GET /metrics: Prometheus text scraped over a real socket, moved by real generations.

The registry is process-global (other tests generate too), so every check reads the figures
before and after and asserts the difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.worker.support import MODELS, Served, serve

KEY = "metrics-key-51c0"


def scrape(worker: Served, **kwargs: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """GET /metrics and parse it: {(sample name, labels): value}."""
    response = worker.client.get("/metrics", **kwargs)
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:
    """One sample's value; 0 when it has not been seen yet (a labelled child not created)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def keyed(engine: Any) -> Iterator[Served]:
    """The worker with an API key, over a real socket."""
    yield from serve(engine, api_key=KEY)


def test_a_generation_moves_requests_images_and_seconds_by_exactly_its_share(worker: Served) -> None:
    before = scrape(worker)

    response = worker.small("flux-schnell", samples=2, base64=True)
    assert response.status_code == 200

    after = scrape(worker)
    model = {"model": "flux-schnell"}
    assert (value(after, "imagine_worker_requests_total", **model, status="200")
            - value(before, "imagine_worker_requests_total", **model, status="200")) == 1
    assert (value(after, "imagine_worker_images_total", **model)
            - value(before, "imagine_worker_images_total", **model)) == 2
    assert (value(after, "imagine_worker_generation_seconds_count", **model)
            - value(before, "imagine_worker_generation_seconds_count", **model)) == 1
    assert (value(after, "imagine_worker_generation_seconds_sum", **model)
            > value(before, "imagine_worker_generation_seconds_sum", **model))
    # The other models were not touched.
    for other in set(MODELS) - {"flux-schnell"}:
        assert (value(after, "imagine_worker_images_total", model=other)
                == value(before, "imagine_worker_images_total", model=other))


def test_refused_requests_are_counted_by_status_and_make_no_image(worker: Served) -> None:
    before = scrape(worker)

    assert worker.small("kolors", steps=999).status_code == 400
    assert worker.post("no-such-model", {"prompt": "a fox"}).status_code == 404

    after = scrape(worker)
    assert (value(after, "imagine_worker_requests_total", model="kolors", status="400")
            - value(before, "imagine_worker_requests_total", model="kolors", status="400")) == 1
    # A path naming an unknown model must not mint a label value of its own.
    assert (value(after, "imagine_worker_requests_total", model="other", status="404")
            - value(before, "imagine_worker_requests_total", model="other", status="404")) == 1
    assert not any(dict(labels).get("model") == "no-such-model" for _, labels in after)
    assert (value(after, "imagine_worker_images_total", model="kolors")
            == value(before, "imagine_worker_images_total", model="kolors"))
    assert (value(after, "imagine_worker_generation_seconds_count", model="kolors")
            == value(before, "imagine_worker_generation_seconds_count", model="kolors"))


def test_queue_depth_and_loaded_models_are_read_at_scrape_time(worker: Served) -> None:
    samples = scrape(worker)

    assert value(samples, "imagine_worker_queue_jobs") == 0
    for model in MODELS:
        assert value(samples, "imagine_worker_models_loaded", model=model) == 1


def test_the_text_parses_and_every_worker_metric_has_help_and_a_type(worker: Served) -> None:
    text = worker.client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    expected = {
        "imagine_worker_requests": "counter",
        "imagine_worker_images": "counter",
        "imagine_worker_generation_seconds": "histogram",
        "imagine_worker_queue_jobs": "gauge",
        "imagine_worker_models_loaded": "gauge",
    }
    for name, kind in expected.items():
        assert families[name].type == kind
        assert families[name].documentation


def test_metrics_wants_the_api_key_like_health(keyed: Served) -> None:
    refused = keyed.client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json() == {
        "error": "Missing or invalid API key: send it in the x-api-key header."
    }

    scrape(keyed, headers={"x-api-key": KEY})
