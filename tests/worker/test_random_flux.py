"""The random-weight FLUX.1-schnell the GPU benchmarks time, shrunk (TINY): the fleet's loader
for it travels by pickle and serves images through the worker's own path."""

from __future__ import annotations

import pickle

import pytest
import torch

from bot.core.catalog import Catalog
from bot.worker.params import parse_body
from bot.worker.random_flux import FULL_SIZE, TINY, RandomFluxLoader


def test_the_loader_builds_the_full_size_pipeline_unless_told_otherwise() -> None:
    assert RandomFluxLoader().configs == FULL_SIZE


def test_the_loader_survives_pickling_as_ray_sends_it_to_a_replica() -> None:
    loader = RandomFluxLoader(TINY)

    assert pickle.loads(pickle.dumps(loader)) == loader


def test_the_loaded_engine_makes_an_image_of_the_asked_size_on_the_replicas_device() -> None:
    torch.set_num_threads(1)  # tiny ops: syncing threads costs more than it saves
    engine = RandomFluxLoader(TINY)("flux-schnell")
    spec = Catalog().get("flux-schnell")
    assert spec is not None
    params = parse_body(spec, {"prompt": "a red fox in the snow", "width": 512, "height": 768,
                               "steps": 1}, engine.tables["flux-schnell"])

    image = engine.generate(params)[0]

    assert engine.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert image.size == (512, 768)
    assert len(set(image.getdata())) > 1  # decoded from latents, not a blank


def test_the_loader_builds_flux_schnell_only() -> None:
    with pytest.raises(ValueError, match="flux-schnell only"):
        RandomFluxLoader(TINY)("kolors")
