"""/quota and /quota-admin, and a DM session whose quota is the user's alone."""

from __future__ import annotations

from bot.chat.discord._commands import NOT_ADMIN
from tests.chat.discord.conftest import ADA, ANN, BOB
from tests.fakes.discord import FakeDiscord, FakeUser


async def _answer(fake: FakeDiscord, command: str, by: FakeUser, *, dm: bool = False,
                  **options: object) -> dict:
    """Run a command and return the bot's interaction callback."""
    sent = await fake.slash(command, by=by, dm=dm, **options)
    callback = await fake.wait_for("callback", token=sent.token)
    return callback.payload


async def test_quota_shows_the_callers_balance_to_them_alone(bot, fake_discord):
    answer = await _answer(fake_discord, "quota", ANN)

    assert answer["type"] == 4 and answer["data"]["flags"] == 64
    assert answer["data"]["content"].startswith("You have 50 credits left: 50 per day, 0 used.")


async def test_quota_admin_is_refused_to_a_member_without_manage_server(bot, fake_discord):
    answer = await _answer(fake_discord, "quota-admin", ANN, action="grant", user=ANN,
                           amount="100")
    quota = await _answer(fake_discord, "quota", ANN)

    assert answer["data"]["flags"] == 64
    assert answer["data"]["content"] == NOT_ADMIN
    assert quota["data"]["content"].startswith("You have 50 credits left")


async def test_a_manage_server_member_grants_credits_without_pinging_anyone(bot, fake_discord):
    answer = await _answer(fake_discord, "quota-admin", ADA, action="grant", user=ANN,
                           amount="25")
    quota = await _answer(fake_discord, "quota", ANN)

    assert answer["data"]["content"] == f"Granted 25 one-off credits to <@{ANN.id}>."
    assert answer["data"]["allowed_mentions"] == {"parse": []}
    assert quota["data"]["content"].startswith("You have 75 credits left")


async def test_a_member_with_a_configured_admin_role_may_use_quota_admin(
        start_bot, discord_settings, fake_discord):
    await start_bot(discord_settings(discord={"admin_role_ids": [FakeDiscord.ROLE_ID]}))
    helper = FakeUser(1010, "hal", roles=(FakeDiscord.ROLE_ID,))

    answer = await _answer(fake_discord, "quota-admin", helper, action="block", user=BOB)
    sent = await fake_discord.slash("imagine", by=BOB, prompt="a fox")
    notice = (await fake_discord.wait_for("followup", token=sent.token)).payload

    assert answer["data"]["content"] == f"<@{BOB.id}> is blocked."
    assert notice["flags"] == 64
    assert notice["content"] == "You are blocked from generating images here; ask an admin."


async def test_quota_admin_top_lists_spenders_as_mentions_that_ping_nobody(
        start_bot, discord_settings, fake_discord):
    await start_bot(discord_settings(discord={"admin_user_ids": [BOB.id]}))
    sent = await fake_discord.slash("imagine", by=ANN, prompt="a red fox")
    await fake_discord.wait_for("followup", token=sent.token)

    answer = await _answer(fake_discord, "quota-admin", BOB, action="top")

    assert answer["data"]["content"] == f"Top spenders, last 30 days:\n1. <@{ANN.id}>: 1 credits"
    assert answer["data"]["allowed_mentions"] == {"parse": []}


async def test_a_dm_session_is_answered_in_the_dm_and_charged_to_the_user_alone(
        bot, fake_discord):
    sent = await fake_discord.slash("imagine", by=ANN, dm=True, prompt="a red fox")
    followup = await fake_discord.wait_for("followup", token=sent.token)
    in_dm = await _answer(fake_discord, "quota", ANN, dm=True)
    in_server = await _answer(fake_discord, "quota", ANN)

    assert followup.message["channel_id"] == str(FakeDiscord.DM_CHANNEL_ID)
    assert len(followup.files) == 1
    assert in_dm["data"]["content"].startswith("You have 49 credits left")
    assert in_server["data"]["content"].startswith("You have 50 credits left")
    job = await bot.service.get_job(followup.payload["embeds"][0]["footer"]["text"][4:])
    assert job.actor.scope == f"discord:user:{ANN.id}"
    assert job.target.workspace_id is None
