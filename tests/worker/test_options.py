"""The small-GPU options load and keep images right (on the CPU, offload is declined aloud)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bot.core.catalog import Catalog
from bot.worker.params import parse_body
from bot.worker.pipelines import Engine
from bot.worker.sources import EngineOptions, resolve_source

OPTIONS = EngineOptions(cpu_offload=True, attention_slicing=True, vae_tiling=True)


@pytest.fixture(scope="module")
def tuned(model_dirs: dict[str, Path]) -> Engine:
    """flux-schnell and kolors loaded with every memory option on."""
    sources = {m: resolve_source(m, str(model_dirs[m])) for m in ("flux-schnell", "kolors")}
    return Engine.load(sources, OPTIONS)


def make(engine: Engine, model: str, **fields: Any) -> Any:
    spec = Catalog().get(model)
    assert spec is not None
    params = parse_body(spec, {"prompt": "a fox", "steps": 2, **fields}, engine.tables[model])
    return engine.generate(params)[0]


def test_vae_tiling_is_switched_on(tuned: Engine) -> None:
    assert all(m.pipeline.vae.use_tiling for m in tuned.models.values())


@pytest.mark.parametrize("model", ["flux-schnell", "kolors"])
def test_tiled_and_sliced_generation_keeps_the_asked_size(tuned: Engine, model: str) -> None:
    assert make(tuned, model, width=1024, height=768).size == (1024, 768)


def test_tiled_decoding_differs_only_slightly_from_whole_decoding(tuned: Engine, engine: Engine) -> None:
    import numpy as np

    tiled = np.asarray(make(tuned, "kolors", width=1024, height=1024, seed=3), dtype=float)
    whole = np.asarray(make(engine, "kolors", width=1024, height=1024, seed=3), dtype=float)

    assert 0 < np.abs(tiled - whole).mean() < 20  # tiles blend at their seams


def test_cpu_offload_without_a_gpu_is_declined_in_the_log(
    model_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    source = resolve_source("kolors", str(model_dirs["kolors"]))
    with caplog.at_level(logging.WARNING, logger="bot.worker"):
        Engine.load({"kolors": source}, EngineOptions(cpu_offload=True))

    assert "--cpu-offload needs a CUDA GPU; kolors stays on cpu" in caplog.text


def test_warm_up_makes_an_image_per_model_without_counting_it(tuned: Engine) -> None:
    before = tuned.images_made()

    tuned.warm_up()

    assert tuned.images_made() == before
