"""The defaults tables on a real SQLite file, and a database from before /settings."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from bot.core.defaults import Defaults, Layers, Provenance
from bot.store.db import MIGRATIONS, Database
from bot.store.jobs_repo import JobRepository
from bot.store.settings_repo import SettingsRepository

SCOPE = "discord:g1"


@pytest.fixture
async def repo(tmp_path: Path):
    db = await Database(tmp_path / "imagine.db").open()
    yield SettingsRepository(db)
    await db.close()


async def test_a_users_defaults_and_the_workspaces_are_kept_apart(repo):
    await repo.save(SCOPE, "ann", {"steps": 6})
    await repo.save(SCOPE, None, {"aspect_ratio": "16:9"})

    assert await repo.layers(SCOPE, "ann") == Layers(Defaults(steps=6),
                                                    Defaults(aspect_ratio="16:9"))
    assert await repo.layers(SCOPE, "bob") == Layers(Defaults(), Defaults(aspect_ratio="16:9"))


async def test_the_same_user_in_another_scope_has_other_defaults(repo):
    await repo.save(SCOPE, "ann", {"model": "kolors"})

    assert await repo.layers("slack:T1", "ann") == Layers()


async def test_saving_one_setting_keeps_the_others(repo):
    await repo.save(SCOPE, "ann", {"model": "kolors", "steps": 30})

    stored = await repo.save(SCOPE, "ann", {"cfg": 5.0})

    assert stored == Defaults(model="kolors", steps=30, cfg=5.0)


async def test_clearing_forgets_only_the_named_settings(repo):
    await repo.save(SCOPE, "ann", {"model": "kolors", "steps": 30})

    stored = await repo.save(SCOPE, "ann", {}, ("steps",))

    assert stored == Defaults(model="kolors")


async def test_defaults_survive_closing_and_reopening_the_database(tmp_path):
    db = await Database(tmp_path / "imagine.db").open()
    await SettingsRepository(db).save(SCOPE, "ann", {"negative_prompt": "blur, text"})
    await db.close()

    db = await Database(tmp_path / "imagine.db").open()
    try:
        layers = await SettingsRepository(db).layers(SCOPE, "ann")
    finally:
        await db.close()

    assert layers.user == Defaults(negative_prompt="blur, text")


async def test_a_database_from_before_settings_opens_and_its_jobs_load_without_provenance(
        tmp_path):
    path = tmp_path / "imagine.db"
    before = MIGRATIONS.index(next(m for m in MIGRATIONS if "user_defaults" in m))
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:before]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {before}")
    request = {"prompt": "a fox", "model": "flux-schnell", "width": 1024, "height": 1024,
               "aspect_ratio": "1:1", "steps": 4, "sampler": "euler", "scheduler": "normal",
               "seed": 5, "image_format": "jpeg", "image_quality": 90}
    actor = {"platform": "discord", "user_id": "ann", "workspace_id": "g1"}
    conn.execute("INSERT INTO jobs (id, state, platform, scope, user_id, actor, request, target, "
                 "cost, created_at) VALUES ('old1', 'done', 'discord', ?, 'ann', ?, ?, ?, 1, ?)",
                 (SCOPE, json.dumps(actor), json.dumps(request),
                  json.dumps({"platform": "discord", "channel_id": "c1"}), time.time()))
    conn.commit()
    conn.close()

    db = await Database(path).open()
    try:
        job = await JobRepository(db, tmp_path).get("old1")
        layers = await SettingsRepository(db).layers(SCOPE, "ann")
    finally:
        await db.close()

    assert job is not None and job.provenance == Provenance()
    assert layers == Layers()
