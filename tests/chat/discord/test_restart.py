"""A restart of the bot (new service and adapter on the same data folder) loses nothing."""

from __future__ import annotations

import json
import time

import discord

from bot.chat.discord._convert import InteractionState, token_valid
from bot.core.jobs import ReplyTarget
from tests.chat.discord.conftest import ANN, BOB, job_id_of
from tests.fakes.discord import FakeDiscord


async def test_buttons_on_a_result_posted_before_a_restart_still_work(
        start_bot, discord_settings, fake_discord):
    settings = discord_settings()
    first = await start_bot(settings)
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    result = (await fake_discord.wait_for("followup", token=sent.token)).message
    await first.stop()

    second = await start_bot(settings)
    press = await fake_discord.click(result, f"imagine:reroll:{job_id_of(result)}", by=BOB)
    followup = await fake_discord.wait_for("followup", token=press.token)

    child = await second.service.get_job(job_id_of(followup.payload))
    assert child.parent_id == job_id_of(result)
    assert len(followup.files) == 1


async def test_an_edit_modal_opened_before_a_restart_is_accepted_after_it(
        start_bot, discord_settings, fake_discord):
    settings = discord_settings()
    first = await start_bot(settings)
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    result = (await fake_discord.wait_for("followup", token=sent.token)).message
    press = await fake_discord.click(result, f"imagine:edit:{job_id_of(result)}", by=ANN)
    modal = await fake_discord.wait_for("callback", token=press.token)
    await first.stop()

    second = await start_bot(settings)
    submit = await fake_discord.submit_modal(modal.payload["data"]["custom_id"],
                                             {"prompt": "a red fox at night"}, by=ANN)
    followup = await fake_discord.wait_for("followup", token=submit.token)

    child = await second.service.get_job(job_id_of(followup.payload))
    assert (child.action, child.request.prompt) == ("edit", "a red fox at night")


async def test_a_job_cut_short_by_a_restart_is_posted_in_its_thread_replying_with_a_mention(
        start_bot, discord_settings, fake_discord, fake_segmind):
    settings = discord_settings()
    first = await start_bot(settings)
    fake_segmind.latency_s = 5.0
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox",
                                    channel_id=FakeDiscord.THREAD_ID)
    deferral = await fake_discord.wait_for("callback", token=sent.token)
    await fake_discord.wait_for("edit_original", token=sent.token)
    await first.stop()  # the job was running: it stays in SQLite

    fake_segmind.latency_s = 0.0
    second = await start_bot(settings)
    posted = await fake_discord.wait_for("channel_message")

    progress_id = deferral.message["id"]
    assert posted.path == f"/channels/{FakeDiscord.THREAD_ID}/messages"
    assert str(posted.payload["message_reference"]["message_id"]) == progress_id
    assert posted.payload["content"] == f"<@{ANN.id}>"
    assert posted.payload["allowed_mentions"] == {"parse": [], "users": [ANN.id]}
    assert len(posted.files) == 1
    await second.service.bus.drain()  # the listener has finished with the event
    job = await second.service.get_job(job_id_of(posted.payload))
    assert job.delivered and job.target.thread_id == str(FakeDiscord.THREAD_ID)


async def test_a_result_discord_refused_is_delivered_once_after_the_restart(
        start_bot, discord_settings, fake_discord):
    settings = discord_settings()
    first = await start_bot(settings)
    fake_discord.refuse = {"followup", "channel_message"}
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    await fake_discord.wait_for("channel_message")  # the fallback, refused as well
    await first.stop()

    fake_discord.refuse = set()
    second = await start_bot(settings)
    posted = await fake_discord.wait_for("channel_message", where=lambda c: c.message is not None)
    await second.service.bus.drain()  # the replayed result has been handled to the end
    job = await second.service.get_job(job_id_of(posted.payload))

    assert len(posted.files) == 1
    assert posted.payload["content"] == f"<@{ANN.id}>"
    assert job.delivered  # so no later start offers it again
    results = [c for c in fake_discord.captured if c.kind in ("followup", "channel_message")
               and c.files and c.message is not None]  # every post of the images that landed
    assert results == [posted]
    assert len(fake_discord.requests("followup", token=sent.token)) == 1  # only the refused one


def test_an_interaction_token_is_not_used_in_its_last_half_minute():
    now = time.time()
    fresh = ReplyTarget("discord", "1",
                        adapter_state=InteractionState(token="t", expires_at=now + 600).to_text())
    late = ReplyTarget("discord", "1",
                       adapter_state=InteractionState(token="t", expires_at=now + 20).to_text())

    assert token_valid(fresh, now) and not token_valid(late, now)


def test_the_interaction_state_reads_back_what_it_wrote():
    state = InteractionState(token="t", expires_at=1234.5, application_id="99",
                             filesize_limit=8_000_000)

    assert InteractionState.of(ReplyTarget("discord", "1", adapter_state=state.to_text())) == state


def test_a_target_made_elsewhere_has_no_token_and_the_default_upload_limit():
    state = InteractionState.of(ReplyTarget("discord", "1"))

    assert not state.token_valid()
    assert state.filesize_limit == discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


def test_an_interaction_stored_by_an_older_version_is_read_with_its_upload_limit():
    stored = json.dumps({"interaction_token": "t", "interaction_expires_at": 1234.5,
                         "application_id": "99", "filesize_limit": "8000000"})

    state = InteractionState.of(ReplyTarget("discord", "1", adapter_state=stored))

    assert state == InteractionState(token="t", expires_at=1234.5, application_id="99",
                                     filesize_limit=8_000_000)
