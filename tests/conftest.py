"""Shared fixtures: a fake Segmind on loopback and settings/services that point at it, and the
tiny random-weight pipelines that the worker's and the fleet's tests both load."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import build_service
from bot.config import Settings
from bot.core.service import ImagineService
from bot.store.db import DATABASE_THREAD
from tests.fakes.segmind import FakeSegmind

SEGMIND_KEY = "test-segmind-key-5f2c"


def _database_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(DATABASE_THREAD)}


@pytest.fixture(autouse=True)
def _every_database_is_closed() -> Iterator[None]:
    """A test that leaves a database open fails: in the bot that is a leaked connection and
    thread, and its thread would keep the test process from exiting."""
    before = _database_threads()
    yield
    left = _database_threads() - before
    for thread in left:
        thread.join(timeout=2)  # a closed database's thread ends as soon as it is idle
    assert not [t for t in left if t.is_alive()], "the test left a Database open"


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


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three tiny pipelines, saved in diffusers' folder layout (once per test process)."""
    from bot.worker.synthetic import TINY_MODELS, save_tiny_pipeline

    root = tmp_path_factory.mktemp("models")
    return {model: save_tiny_pipeline(model, root / model) for model in TINY_MODELS}


@pytest.fixture(scope="session")
def engine(model_dirs: dict[str, Path]) -> Any:
    """An Engine holding the three tiny pipelines, loaded through from_pretrained."""
    import torch

    from bot.worker.pipelines import Engine
    from bot.worker.sources import resolve_source

    # The tiny models' ops are so small that syncing threads costs more than it saves; the
    # fleet's replicas run on one thread too (Ray sets OMP_NUM_THREADS=1), for equal numerics.
    torch.set_num_threads(1)
    return Engine.load({m: resolve_source(m, str(path)) for m, path in model_dirs.items()})
