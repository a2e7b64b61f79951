"""Fixtures for the GPU worker's tests: tiny real pipelines, loaded like real weights, served
over a real socket on loopback.

The tiny Flux, Chroma and Kolors pipelines have random weights and locally trained tokenizers
(bot.worker.synthetic); they are saved with save_pretrained into a session folder and loaded
back by Engine.load, the worker's own from_pretrained path (the `model_dirs` and `engine`
fixtures of tests/conftest.py, shared with the fleet's tests). Nothing touches the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.library_noise import silence_library_noise
from tests.worker.support import Served, serve

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may come from the hub, ever
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

# The worker extra, imported plainly (after the settings above, which they read at import):
# `make test` installs it, so without it the install is broken and these tests must fail to
# collect, never be skipped.
import diffusers  # noqa: F401
import torch  # noqa: F401


@pytest.fixture(scope="session")
def worker(engine: Any) -> Iterator[Served]:
    """The worker without an API key, over a real socket."""
    yield from serve(engine)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence the deprecation chatter of torch, numpy and diffusers in these tests only."""
    silence_library_noise(items, Path(__file__).parent)
