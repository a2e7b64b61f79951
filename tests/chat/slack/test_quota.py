"""/imagine-quota: everyone sees their balance; admins (config or Slack admins/owners) manage."""

from __future__ import annotations

from bot.core.jobs import Actor
from tests.chat.slack.conftest import ADA, ANN, BOB, CHANNEL, OLGA, whisper


def _actor(user: str) -> Actor:
    return Actor(platform="slack", user_id=user, workspace_id="T0001")


async def test_quota_alone_shows_the_callers_balance(bot, slack):
    await slack.slash_command("/imagine-quota", "", user=ANN, channel=CHANNEL)

    assert (await whisper(slack, ANN)).startswith("You have 50 credits left: 50 per day, 0 used.")


async def test_a_member_cannot_run_admin_commands(bot, slack):
    await slack.slash_command("/imagine-quota", "grant <@U0BOB|bob> 10", user=BOB, channel=CHANNEL)

    assert await whisper(slack, BOB) == (
        "Only Slack workspace admins can change quotas; /imagine-quota alone shows your balance.")
    assert (await bot.service.quota_status(_actor(BOB))).balance == 50


async def test_a_workspace_admin_grants_credits_to_a_mentioned_user(bot, slack):
    await slack.slash_command("/imagine-quota", "grant <@U0ANN|ann> 10", user=ADA, channel=CHANNEL)

    assert await whisper(slack, ADA) == f"Granted 10 one-off credits to <@{ANN}>."
    assert (await bot.service.quota_status(_actor(ANN))).balance == 60


async def test_the_workspace_owner_blocks_a_user_who_then_cannot_imagine(bot, slack):
    await slack.slash_command("/imagine-quota", "block <@U0BOB|bob>", user=OLGA, channel=CHANNEL)
    assert await whisper(slack, OLGA) == f"<@{BOB}> is blocked."

    await slack.slash_command("/imagine", "a red fox", user=BOB, channel=CHANNEL)

    assert await whisper(slack, BOB) == (
        "You are blocked from generating images here; ask an admin.")


async def test_admin_user_ids_from_the_config_are_admins(start_bot, slack_settings, slack):
    await start_bot(slack_settings(slack={"admin_user_ids": ["U0CONFIG"]}))

    await slack.slash_command("/imagine-quota", "set <@U0ANN> 5 week", user="U0CONFIG",
                              channel=CHANNEL)

    assert await whisper(slack, "U0CONFIG") == f"<@{ANN}> now has 5 credits per week."


async def test_an_admin_command_must_name_the_user_with_a_mention(bot, slack):
    await slack.slash_command("/imagine-quota", "show ann", user=ADA, channel=CHANNEL)

    assert await whisper(slack, ADA) == (
        "Name the user with an @-mention, as in /imagine-quota show @ann.")


async def test_a_malformed_admin_command_answers_the_usage(bot, slack):
    await slack.slash_command("/imagine-quota", "launch <@U0ANN>", user=ADA, channel=CHANNEL)

    assert (await whisper(slack, ADA)).startswith("Unknown quota command. Usage: show USER")
