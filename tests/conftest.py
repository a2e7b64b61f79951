"""Shared fixtures: a fake Segmind on loopback and settings/services that point at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_service
from bot.config import Settings
from bot.core.service import ImagineService
from tests.fakes.segmind import FakeSegmind

SEGMIND_KEY = "test-segmind-key-5f2c"


@pytest.fixture
async def fake_segmind() -> AsyncIterator[FakeSegmind]:
    """A loopback Segmind that answers fast with small real images."""
    async with FakeSegmind(api_key=SEGMIND_KEY) as fake:
        yield fake


def make_settings(data_dir: Path, segmind_url: str | None, **sections: Any) -> Settings:
    """Settings for a test: SQLite under data_dir, Segmind at segmind_url, fast retries."""
    data: dict[str, Any] = {
        "storage": {"path": str(data_dir)},
        "dispatch": {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, "progress_interval_s": 0.05},
    }
    if segmind_url:
        data["segmind"] = {"base_url": segmind_url, "timeout_s": 5}
        data["segmind_api_key"] = SEGMIND_KEY
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Settings.model_validate(data)


@pytest.fixture
def settings_for(tmp_path: Path, fake_segmind: FakeSegmind) -> Callable[..., Settings]:
    """settings_for(quota={...}, ...) -> Settings pointing at the fake Segmind."""
    def build(**sections: Any) -> Settings:
        return make_settings(tmp_path / "data", fake_segmind.base_url, **sections)

    return build


@pytest.fixture
async def service(settings_for: Callable[..., Settings]) -> AsyncIterator[ImagineService]:
    """A started service on a fresh database, stopped after the test."""
    svc = await build_service(settings_for())
    await svc.start()
    yield svc
    await svc.stop()
