"""Discord: /queue and /history (with Run again)."""

from __future__ import annotations

from bot.core.jobs import JobAction
from tests.chat.discord.conftest import ANN, BOB, job_id_of


async def test_history_is_private_and_run_again_repeats_the_job_with_its_seed(bot, fake_discord):
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox", seed=12)
    first_id = job_id_of((await fake_discord.wait_for("followup", token=sent.token)).payload)

    asked = await fake_discord.slash("history", by=ANN)
    listing = await fake_discord.wait_for("callback", token=asked.token)
    assert listing.message is not None
    assert listing.message["flags"] & 64  # only the asker sees it
    assert listing.message["content"].startswith("1. “a red fox” · flux-schnell")
    press = await fake_discord.click(listing.message, f"imagine:again:{first_id}", by=ANN)
    followup = await fake_discord.wait_for("followup", token=press.token)

    again = await bot.service.get_job(job_id_of(followup.payload))
    assert again.action is JobAction.AGAIN and again.parent_id == first_id
    assert again.request.seed == 12
    assert followup.payload["content"] == f"<@{ANN.id}> again"


async def test_someone_elses_history_does_not_list_my_jobs(bot, fake_discord):
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    await fake_discord.wait_for("followup", token=sent.token)

    asked = await fake_discord.slash("history", by=BOB)
    listing = await fake_discord.wait_for("callback", token=asked.token)

    assert listing.payload["data"]["content"] == "You have no images yet; try /imagine."
    assert not listing.payload["data"].get("components")


async def test_queue_with_nothing_waiting_says_so_and_gives_the_totals(bot, fake_discord):
    asked = await fake_discord.slash("queue", by=ANN)
    answer = await fake_discord.wait_for("callback", token=asked.token)

    assert answer.payload["data"]["content"] == (
        "You have no jobs waiting or running.\nAll users: the queue is empty.")
    assert answer.payload["data"]["flags"] == 64
