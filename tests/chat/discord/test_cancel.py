"""The Cancel button on a waiting job's progress message (what the owner and others see when
they press it is tested once for every platform in tests/chat/test_everywhere.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core.jobs import JobState
from tests.chat.discord.conftest import ADA, ANN
from tests.fakes.discord import Captured, FakeDiscord


def _buttons(message: dict[str, Any]) -> list[str]:
    return [c.get("custom_id", "") for row in message.get("components", [])
            for c in row.get("components", [])]


def _with_cancel(captured: Captured) -> bool:
    return captured.message is not None and any(
        b.startswith("imagine:cancel:") for b in _buttons(captured.message))


async def _waiting_job(fake: FakeDiscord, fake_segmind) -> tuple[str, dict[str, Any], str]:
    """Ann's second job waits behind her first, held at the fake Segmind; returns its interaction
    token, its progress message (with Cancel) and its job id."""
    fake_segmind.gate = asyncio.Event()
    await fake.slash("imagine", by=ANN, prompt="first")
    sent = await fake.slash("imagine", by=ANN, prompt="second")
    edit = await fake.wait_for("edit_original", token=sent.token, where=_with_cancel)
    assert edit.message is not None
    cancel = next(b for b in _buttons(edit.message) if b.startswith("imagine:cancel:"))
    return sent.token, edit.message, cancel.split(":")[2]


async def test_a_waiting_job_has_a_cancel_button_on_its_progress_message(
        start_bot, discord_settings, fake_discord, fake_segmind):
    await start_bot(discord_settings(segmind={"concurrency": 1}))

    _, progress, job_id = await _waiting_job(fake_discord, fake_segmind)

    assert _buttons(progress) == [f"imagine:cancel:{job_id}"]
    assert progress["content"].startswith("Queued")


async def test_an_admin_may_cancel_someone_elses_waiting_job(
        start_bot, discord_settings, fake_discord, fake_segmind):
    bot = await start_bot(discord_settings(segmind={"concurrency": 1}))
    token, progress, job_id = await _waiting_job(fake_discord, fake_segmind)

    await fake_discord.click(progress, f"imagine:cancel:{job_id}", by=ADA)
    await fake_discord.wait_for("followup", token=token)

    assert (await bot.service.get_job(job_id)).state is JobState.CANCELLED


async def test_the_cancel_button_goes_once_the_job_has_run(
        start_bot, discord_settings, fake_discord, fake_segmind):
    await start_bot(discord_settings(segmind={"concurrency": 1}))
    token, _, _ = await _waiting_job(fake_discord, fake_segmind)

    fake_segmind.gate.set()
    await fake_discord.wait_for("followup", token=token)  # the result
    done = await fake_discord.wait_for("edit_original", token=token,
                                       where=lambda c: c.payload.get("content") == "Done.")

    assert done.payload["components"] == []
