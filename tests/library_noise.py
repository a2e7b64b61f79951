"""The deprecation chatter of torch, numpy and diffusers, silenced in the tests that load them."""

from __future__ import annotations

from pathlib import Path

import pytest

_LIBRARY_NOISE = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*:UserWarning:diffusers"),
]


def silence_library_noise(items: list[pytest.Item], folder: Path) -> None:
    """Add the warning filters to every collected test under `folder`."""
    for item in items:
        if folder in Path(str(item.path)).parents:
            for mark in _LIBRARY_NOISE:
                item.add_marker(mark)
