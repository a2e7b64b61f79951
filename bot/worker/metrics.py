"""The GPU worker's Prometheus metrics, served at GET /metrics beside GET /health.

    imagine_worker_requests_total{model, status}     POST /v1/{model} answers, by HTTP status
    imagine_worker_generation_seconds{model}         seconds per successful generate() call
    imagine_worker_images_total{model}               images made
    imagine_worker_queue_jobs                        jobs waiting plus the one running, at scrape
    imagine_worker_models_loaded{model}              1 for each model this worker serves

Labels stay low in cardinality: `model` is one of the catalog's names (a path naming anything
else is counted as "other") and `status` an HTTP code. Never a label per user, prompt or job.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST", "GENERATION_SECONDS", "IMAGES", "REQUESTS", "LiveSource",
    "model_label", "render", "track",
]

OTHER_MODEL = "other"

REQUESTS = Counter(
    "imagine_worker_requests_total",
    "Generation requests answered, by model and HTTP status.",
    ["model", "status"],
)
# A tiny model on a CPU takes well under a second, a 1024 px chroma on a small GPU minutes.
GENERATION_SECONDS = Histogram(
    "imagine_worker_generation_seconds",
    "Seconds spent in one successful generation call (all of its samples), by model.",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
IMAGES = Counter(
    "imagine_worker_images_total",
    "Images generated, by model.",
    ["model"],
)


class LiveSource(Protocol):
    """What the scrape-time collector reads from a running worker app."""

    def queue_depth(self) -> int:
        """Jobs waiting plus the one running."""
        ...

    def loaded_models(self) -> Iterable[str]:
        """The names of the models served."""
        ...


class _LiveCollector(Collector):
    """Reads the queue depth and the loaded models from the live worker apps at scrape time.

    Weak references: an app that is gone drops out of the figures by itself. A process runs one
    app; tests run several at once, so their depths add up and their models are merged.
    """

    def __init__(self) -> None:
        self._sources: weakref.WeakSet[LiveSource] = weakref.WeakSet()

    def track(self, source: LiveSource) -> None:
        self._sources.add(source)

    def describe(self) -> Iterator[Metric]:
        # Names only, so registering does not need a running app.
        yield GaugeMetricFamily("imagine_worker_queue_jobs", "")
        yield GaugeMetricFamily("imagine_worker_models_loaded", "", labels=["model"])

    def collect(self) -> Iterator[Metric]:
        sources = list(self._sources)
        depth = GaugeMetricFamily(
            "imagine_worker_queue_jobs", "Generation jobs waiting plus the one running."
        )
        depth.add_metric([], sum(s.queue_depth() for s in sources))
        yield depth
        loaded = GaugeMetricFamily(
            "imagine_worker_models_loaded", "1 for each model this worker serves.", labels=["model"]
        )
        for model in sorted({m for s in sources for m in s.loaded_models()}):
            loaded.add_metric([model], 1)
        yield loaded


_LIVE = _LiveCollector()
REGISTRY.register(_LIVE)


def track(source: LiveSource) -> None:
    """Report `source`'s queue depth and models at every scrape while it lives."""
    _LIVE.track(source)


def model_label(model: str, served: Iterable[str]) -> str:
    """`model` if this worker serves it, else "other" (a path must not mint a label value)."""
    return model if model in set(served) else OTHER_MODEL


def render() -> bytes:
    """The process's metrics in Prometheus' text format (send with CONTENT_TYPE_LATEST)."""
    return generate_latest(REGISTRY)
