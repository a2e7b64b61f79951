"""/imagine over a loopback Discord: deferral, progress edits, the result, mentions, policy."""

from __future__ import annotations

import itertools
import logging

import pytest

from tests.chat.discord.conftest import ANN, BOB, BOT_TOKEN, custom_ids, job_id_of
from tests.fakes.discord import FakeDiscord, FakeUser

CAROL = FakeUser(1004, "carol")


async def test_imagine_is_deferred_publicly_within_the_three_second_deadline(bot, fake_discord):
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")

    callback = await fake_discord.wait_for("callback", token=sent.token)
    await fake_discord.wait_for("followup", token=sent.token)

    assert callback.payload["type"] == 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE
    assert not callback.payload.get("data", {}).get("flags", 0) & 64  # everyone sees it
    assert callback.at - sent.sent_at < 3.0


async def test_the_original_response_shows_the_queue_position_and_eta(
        start_bot, discord_settings, fake_discord, fake_segmind):
    await start_bot(discord_settings(segmind={"concurrency": 1}), progress_interval_s=0.05)
    fake_segmind.latency_s = 1.0
    first = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    await fake_discord.wait_for("edit_original", token=first.token,
                                where=lambda c: "Generating" in c.payload.get("content", ""))
    await fake_discord.slash("imagine", by=BOB, prompt="a blue fox")
    third = await fake_discord.slash("imagine", by=CAROL, prompt="a green fox")

    edit = await fake_discord.wait_for("edit_original", token=third.token)

    assert edit.payload["content"].startswith("Queued: position 2 in the queue, about")
    assert edit.payload["allowed_mentions"] == {"parse": []}


async def test_progress_edits_of_one_job_are_spaced_by_the_interval(
        start_bot, discord_settings, fake_discord, fake_segmind):
    await start_bot(discord_settings(segmind={"concurrency": 1}), progress_interval_s=0.5)
    fake_segmind.latency_s = 0.3
    sends = [await fake_discord.slash("imagine", by=user, prompt=f"fox {user.name}")
             for user in (ANN, BOB, CAROL)]
    last = sends[-1]
    await fake_discord.wait_for("edit_original", token=last.token,
                                where=lambda c: c.payload.get("content") == "Done.")
    edits = fake_discord.requests("edit_original", token=last.token)

    progress = [e for e in edits if e.payload["content"] != "Done."]
    gaps = [b.at - a.at for a, b in itertools.pairwise(progress)]
    assert len(progress) >= 2
    assert all(gap >= 0.45 for gap in gaps), gaps
    assert edits[-1].payload["content"] == "Done."


async def test_the_result_is_a_multipart_follow_up_with_the_image_files_and_buttons(
        bot, fake_discord):
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox", samples=2, seed=7)

    followup = await fake_discord.wait_for("followup", token=sent.token)

    job = await bot.service.get_job(job_id_of(followup.payload))
    assert [f.data for f in followup.files] == [p.read_bytes() for p in job.images]
    assert [f.filename for f in followup.files] == [f"{job.id}-1.jpg", f"{job.id}-2.jpg"]
    assert len(followup.message["attachments"]) == 2
    assert custom_ids(followup.payload) == [
        f"imagine:reroll:{job.id}", f"imagine:edit:{job.id}", f"imagine:info:{job.id}",
        f"imagine:delete:{job.id}", f"imagine:vary:{job.id}:0", f"imagine:vary:{job.id}:1"]
    embed = followup.payload["embeds"][0]
    assert embed["description"] == "a red fox"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Seed"] == "7…8"
    assert fields["Model"] == "flux-schnell"
    assert fields["Balance"] == str(50 - job.cost)


async def test_everyone_and_role_mentions_in_a_prompt_ping_nobody(bot, fake_discord):
    prompt = "@everyone @here <@&555> look at this fox"
    sent = await fake_discord.slash("imagine", by=ANN, prompt=prompt)
    await fake_discord.wait_for("followup", token=sent.token)
    await fake_discord.wait_for("edit_original", token=sent.token,
                                where=lambda c: c.payload.get("content") == "Done.")

    sent_messages = [c for c in fake_discord.requests(token=sent.token)
                     if c.kind in ("followup", "edit_original")]
    assert sent_messages
    for captured in sent_messages:
        mentions = captured.allowed_mentions
        assert mentions is not None and mentions["parse"] == []
        assert mentions.get("users", []) in ([], [ANN.id])
        assert not mentions.get("roles")


async def test_a_blocked_term_is_refused_in_one_ephemeral_sentence_and_costs_nothing(
        start_bot, discord_settings, fake_discord):
    await start_bot(discord_settings(policy={"blocked_terms": ["gore"]}))
    sent = await fake_discord.slash("imagine", by=ANN, prompt="gore in the snow")

    notice = await fake_discord.wait_for("followup", token=sent.token)
    await fake_discord.wait_for("delete_original", token=sent.token)
    quota = await fake_discord.slash("quota", by=ANN)
    answer = await fake_discord.wait_for("callback", token=quota.token)

    assert notice.payload["flags"] == 64
    assert notice.payload["content"] == (
        "That prompt uses a term this server does not allow. Nothing was charged.")
    assert answer.payload["data"]["content"].startswith("You have 50 credits left")


async def test_nsfw_terms_pass_only_in_age_restricted_channels(
        start_bot, discord_settings, fake_discord):
    await start_bot(discord_settings(policy={"nsfw_terms": ["nude"]}))
    here = await fake_discord.slash("imagine", by=ANN, prompt="a nude statue")
    there = await fake_discord.slash("imagine", by=ANN, prompt="a nude statue",
                                     channel_id=FakeDiscord.NSFW_CHANNEL_ID)

    refused = await fake_discord.wait_for("followup", token=here.token)
    made = await fake_discord.wait_for("followup", token=there.token)

    assert refused.payload["flags"] == 64 and "age-restricted" in refused.payload["content"]
    assert len(made.files) == 1


async def test_an_image_over_the_upload_limit_is_sent_as_webp_and_says_so(
        bot, fake_discord, fake_segmind):
    fake_segmind.image_scale = 2  # 512 px PNGs of a few kB
    fake_discord.attachment_size_limit = 2000
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox --format png")

    followup = await fake_discord.wait_for("followup", token=sent.token)

    (upload,) = followup.files
    assert upload.filename.endswith(".webp") and len(upload.data) <= 2000
    assert upload.data[8:12] == b"WEBP"
    assert "Image 1 was sent as WebP to fit Discord's upload limit." in followup.payload["content"]


@pytest.mark.parametrize(("model", "typed", "offered"), [
    ("flux-schnell", "", ["euler"]),
    ("chroma", "dpmpp_2", ["dpmpp_2s_a", "dpmpp_2m", "dpmpp_2m_sde"]),
])
async def test_sampler_autocomplete_offers_only_what_the_chosen_model_accepts(
        bot, fake_discord, model, typed, offered):
    sent = await fake_discord.slash("imagine", by=ANN, focused="sampler", prompt="a fox",
                                    model=model, sampler=typed)

    callback = await fake_discord.wait_for("callback", token=sent.token)

    assert callback.payload["type"] == 8
    assert [c["value"] for c in callback.payload["data"]["choices"]] == offered


async def test_commands_sync_to_the_configured_servers_with_the_catalogs_choices(
        start_bot, discord_settings, fake_discord):
    await start_bot(discord_settings(discord={"guild_ids": [FakeDiscord.GUILD_ID]}))

    sync = await fake_discord.wait_for("command_sync")

    assert sync.path.endswith(f"/guilds/{FakeDiscord.GUILD_ID}/commands")
    commands = {c["name"]: c for c in sync.payload["items"]}
    assert set(commands) == {"imagine", "quota", "quota-admin", "settings", "stats", "queue",
                             "history"}
    options = {o["name"]: o for o in commands["imagine"]["options"]}
    assert [c["value"] for c in options["model"]["choices"]] == ["flux-schnell", "chroma",
                                                                 "kolors"]
    assert options["sampler"]["autocomplete"] is True
    assert str(commands["quota-admin"]["default_member_permissions"]) == str(1 << 5)


async def test_a_member_let_past_discords_own_gate_is_told_privately_who_may_use_quota_admin(
        bot, fake_discord):
    # default_member_permissions only hides the command; a server's admins can lift it for
    # anyone, so the bot checks again and answers a member without Manage Server:
    sent = await fake_discord.slash("quota-admin", by=BOB, action="grant", user=ANN, amount="5")

    answer = (await fake_discord.wait_for("callback", token=sent.token)).payload

    assert answer["data"]["content"] == (
        "Only members with Manage Server or the bot's configured admins can use /quota-admin.")
    assert answer["data"]["flags"] == 64


async def test_the_bot_token_never_reaches_the_log(bot, fake_discord, caplog):
    caplog.set_level(logging.DEBUG)
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    await fake_discord.wait_for("followup", token=sent.token)

    assert BOT_TOKEN not in caplog.text


async def test_a_failed_job_is_reported_privately_with_its_refund(bot, fake_discord, fake_segmind):
    fake_segmind.faults = [400]
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")

    notice = await fake_discord.wait_for("followup", token=sent.token)
    await fake_discord.wait_for("delete_original", token=sent.token)
    quota = await fake_discord.slash("quota", by=ANN)
    answer = await fake_discord.wait_for("callback", token=quota.token)

    assert notice.payload["flags"] == 64
    assert notice.payload["content"] == ("The image service rejected the request; check the "
                                         "prompt and options. Your credits were refunded.")
    assert answer.payload["data"]["content"].startswith("You have 50 credits left")


async def test_an_unexpected_failure_reaches_the_user_as_a_plain_sentence_and_the_log_has_the_traceback(
        start_bot, discord_settings, fake_discord, caplog):
    bot = await start_bot(discord_settings())
    await bot.service.db.close()  # the database is gone: every call into the core now fails
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")

    notice = await fake_discord.wait_for("followup", token=sent.token)

    assert notice.payload["flags"] == 64
    text = notice.payload["content"]
    assert "Traceback" not in text and "\n" not in text and text.endswith(".")
    assert any(record.exc_info for record in caplog.records if record.levelno >= logging.ERROR)


async def test_markdown_in_a_prompt_is_shown_as_plain_text_in_the_result(bot, fake_discord):
    sent = await fake_discord.slash("imagine", by=ANN,
                                    prompt="[click me](https://evil.example) **bold** a fox")
    result = await fake_discord.wait_for("followup", token=sent.token)

    description = result.payload["embeds"][0]["description"]
    assert "\\[click me](" in description  # an escaped bracket: no masked link
    assert "\\*\\*bold\\*\\*" in description
