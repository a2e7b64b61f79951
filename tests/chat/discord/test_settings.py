"""/settings over a loopback Discord: show, set, reset, server defaults, "only to me"."""

from __future__ import annotations

from typing import Any

from bot.core.jobs import Actor
from tests.chat.discord.conftest import ADA, ANN, BOB, job_id_of
from tests.fakes.discord import FakeDiscord, FakeUser

EPHEMERAL = 64


async def _answer(fake: FakeDiscord, by: FakeUser, **options: Any) -> dict[str, Any]:
    """Run /settings and return the bot's answer (the interaction callback's data)."""
    sent = await fake.slash("settings", by=by, **options)
    callback = await fake.wait_for("callback", token=sent.token)
    return callback.payload["data"]


async def test_settings_without_options_shows_your_defaults_to_you_alone(bot, fake_discord):
    answer = await _answer(fake_discord, ANN)

    assert answer["flags"] == EPHEMERAL
    assert answer["content"].startswith("Your defaults (a flag you type wins")
    assert "model: flux-schnell (model default)" in answer["content"]
    assert "visibility: in the channel (default)" in answer["content"]


async def test_a_saved_default_is_used_by_the_next_imagine_and_named_in_info(bot, fake_discord):
    saved = await _answer(fake_discord, ANN, model="kolors", steps=30)
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    result = await fake_discord.wait_for("followup", token=sent.token)

    job = await bot.service.get_job(job_id_of(result.payload))
    press = await fake_discord.click(result.message, f"imagine:info:{job.id}", by=ANN)
    info = (await fake_discord.wait_for("callback", token=press.token)).payload["data"]
    fields = {f["name"]: f["value"] for f in info["embeds"][0]["fields"]}
    assert saved["content"].startswith("Saved your defaults: model kolors, steps 30.")
    assert (job.request.model, job.request.steps) == ("kolors", 30)
    assert fields["Steps"] == "30 (your default)"


async def test_a_value_out_of_range_for_the_model_is_one_ephemeral_sentence(bot, fake_discord):
    answer = await _answer(fake_discord, ANN, steps=30)
    shown = await _answer(fake_discord, ANN)

    assert answer["flags"] == EPHEMERAL
    assert answer["content"] == ("steps 30 is not allowed: flux-schnell takes a whole number "
                                 "from 1 to 8.")
    assert "steps: 4 (model default)" in shown["content"]


async def test_a_member_without_manage_server_cannot_change_the_server_defaults(
        bot, fake_discord):
    answer = await _answer(fake_discord, ANN, server=True, model="kolors")

    assert answer["content"].startswith("Only admins can change the server defaults")
    assert (await bot.service.user_settings.layers(
        _actor(ANN))).workspace.model is None


async def test_a_server_default_applies_to_members_unless_their_own_default_wins(
        bot, fake_discord):
    await _answer(fake_discord, ADA, server=True, aspect="16:9")
    await _answer(fake_discord, BOB, aspect="3:4")
    ann = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    bob = await fake_discord.slash("imagine", by=BOB, prompt="a blue fox")

    ann_job = job_id_of((await fake_discord.wait_for("followup", token=ann.token)).payload)
    bob_job = job_id_of((await fake_discord.wait_for("followup", token=bob.token)).payload)
    assert (await bot.service.get_job(ann_job)).request.aspect_ratio == "16:9"
    assert (await bot.service.get_job(bob_job)).request.aspect_ratio == "3:4"


async def test_reset_all_forgets_every_default_of_yours(bot, fake_discord):
    await _answer(fake_discord, ANN, model="kolors", negative="blur")

    answer = await _answer(fake_discord, ANN, reset="all")
    shown = await _answer(fake_discord, ANN)

    assert answer["content"] == "All your defaults are reset."
    assert "model: flux-schnell (model default)" in shown["content"]


async def test_only_to_me_defers_privately_and_sends_the_result_ephemerally(bot, fake_discord):
    await _answer(fake_discord, ANN, visibility="me")

    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    callback = await fake_discord.wait_for("callback", token=sent.token)
    result = await fake_discord.wait_for("followup", token=sent.token)

    assert callback.payload["data"]["flags"] & EPHEMERAL
    assert result.payload["flags"] & EPHEMERAL
    assert len(result.files) == 1


async def test_defaults_survive_a_restart_of_the_bot(start_bot, discord_settings, fake_discord):
    settings = discord_settings()
    first = await start_bot(settings)
    await _answer(fake_discord, ANN, model="chroma")
    await first.stop()

    await start_bot(settings)
    shown = await _answer(fake_discord, ANN)

    assert "model: chroma (your default)" in shown["content"]


async def test_a_private_result_delivered_after_a_restart_goes_to_a_direct_message(
        start_bot, discord_settings, fake_discord, fake_segmind):
    settings = discord_settings()
    first = await start_bot(settings)
    await _answer(fake_discord, ANN, visibility="me")
    fake_segmind.latency_s = 5.0
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    await fake_discord.wait_for("edit_original", token=sent.token)
    await first.stop()  # the job stays in SQLite; its interaction is gone with the process

    fake_segmind.latency_s = 0.0
    await start_bot(settings)
    posted = await fake_discord.wait_for("channel_message")

    assert fake_discord.requests("open_dm")
    assert posted.path == f"/channels/{FakeDiscord.DM_CHANNEL_ID}/messages"
    assert len(posted.files) == 1


def _actor(user: FakeUser) -> Actor:
    return Actor("discord", str(user.id), str(FakeDiscord.GUILD_ID))
