"""Fixtures for bench/worker.py's tests: the script loaded by path, and its full-size
FLUX.1-schnell pipeline built on torch's meta device (shapes and dtypes, no memory behind them).

bench/ is not a package, so the script is loaded from its file. Nothing touches the network
and no GPU is needed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.library_noise import silence_library_noise

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from the hub, ever
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

# The worker extra, imported plainly (after the settings above, which they read at import):
# `make test` installs it, so without it the install is broken and these tests must fail to
# collect, never be skipped.
import diffusers  # noqa: F401
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "worker.py"


@pytest.fixture(scope="session")
def bench() -> ModuleType:
    """bench/worker.py as a module (registered in sys.modules, as its dataclasses need)."""
    spec = importlib.util.spec_from_file_location("bench_worker", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def meta_flux(bench: ModuleType) -> Any:
    """The GPU mode's full-size pipeline, built by its own builder on the meta device."""
    return bench.build_flux(bench.FULL_SIZE, torch.device("meta"), torch.bfloat16)


@pytest.fixture(scope="session")
def flops_1024(bench: ModuleType, meta_flux: Any) -> Any:
    """FlopCounterMode's count of one 1024x1024, 4-step image of the full-size pipeline."""
    return bench.count_flux_flops(meta_flux, 1024, steps=4)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence the deprecation chatter of torch, numpy and diffusers in these tests only."""
    silence_library_noise(items, Path(__file__).parent)
