"""Fixtures: a FakeSegmind on loopback and a SegmindBackend pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.backends.segmind import SegmindBackend
from tests.fakes.segmind import FakeSegmind

API_KEY = "sk-test-0123456789abcdef"
MODELS = ("chroma", "flux-schnell", "kolors")


@pytest.fixture
async def fake() -> AsyncIterator[FakeSegmind]:
    """A fresh FakeSegmind that expects API_KEY."""
    async with FakeSegmind(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def backend(fake: FakeSegmind) -> AsyncIterator[SegmindBackend]:
    """A SegmindBackend for every model, talking to `fake`."""
    client = SegmindBackend(base_url=fake.base_url, api_key=API_KEY, timeout_s=5, models=MODELS)
    yield client
    await client.aclose()
