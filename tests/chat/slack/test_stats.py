"""/imagine-stats for workspace admins over Socket Mode, and the admin alerts in
[slack] admin_channel."""

from __future__ import annotations

import io

from PIL import Image

from bot.chat.slack._stats import ADMINS_ONLY, NO_CHANNEL
from tests.chat.slack.conftest import ADA, ANN, BOB, CHANNEL, result, whisper
from tests.fakes.slack import FakeSlack

ADMIN_CHANNEL = "C0ADMINS"
CHART_S = 60.0  # matplotlib's first import builds its font cache: slow on a fresh machine
BUDGET = {"limit": 2.0, "warn_at": 0.5, "prices": {"flux-schnell": 1.0}}


def admin_posts(slack: FakeSlack) -> list[str]:
    """The texts the bot posted in the admin channel."""
    return [message.text for message in slack.posted(ADMIN_CHANNEL)]


async def test_an_admin_gets_the_numbers_only_they_see_and_the_chart_in_the_admin_channel(
        start_bot, slack_settings, slack):
    await start_bot(slack_settings(slack={"admin_channel": ADMIN_CHANNEL}))
    await slack.slash_command("/imagine", "a red fox --n 2", user=ANN, channel=CHANNEL)
    await result(slack)

    await slack.slash_command("/imagine-stats", "30d", user=ADA, channel=CHANNEL)
    [answer] = await slack.wait_for("chat.postEphemeral", within=CHART_S, user=ADA)
    text = str(answer["text"])

    assert "Jobs: 1 (1 done, 0 failed, 0 cancelled, 0 waiting); images: 2." in text
    assert f"Top users: <@{ANN}> 2 credits (2 images)." in text
    assert text.endswith(f"(The chart is in <#{ADMIN_CHANNEL}>.)")
    [chart] = [u for u in slack.uploads.values() if u.channel == ADMIN_CHANNEL]
    with Image.open(io.BytesIO(chart.data)) as image:
        assert (image.format, image.size) == ("PNG", (1200, 800))


async def test_without_an_admin_channel_the_admin_gets_the_numbers_and_a_note(bot, slack):
    await slack.slash_command("/imagine-stats", "", user=ADA, channel=CHANNEL)

    text = await whisper(slack, ADA)

    assert text.startswith("Stats since ") and text.endswith(NO_CHANNEL)
    assert slack.uploads == {}


async def test_a_member_is_refused_the_stats(bot, slack):
    await slack.slash_command("/imagine-stats", "7d", user=BOB, channel=CHANNEL)

    assert await whisper(slack, BOB) == ADMINS_ONLY


async def test_a_since_that_cannot_be_read_is_answered_with_one_sentence(bot, slack):
    await slack.slash_command("/imagine-stats", "last tuesday", user=ADA, channel=CHANNEL)

    assert await whisper(slack, ADA) == (
        "since 'last tuesday' cannot be read: use 24h, 7d, 30d (any number of h, d or w) or a "
        "date such as 2025-01-31.")


async def test_the_budget_alerts_are_posted_once_each_to_the_admin_channel(
        start_bot, slack_settings, slack):
    bot = await start_bot(slack_settings(slack={"admin_channel": ADMIN_CHANNEL}, budget=BUDGET))
    for prompt in ("one", "two"):
        await slack.slash_command("/imagine", prompt, user=ANN, channel=CHANNEL)
    await slack.wait_until(lambda: len(admin_posts(slack)) >= 2)
    await slack.slash_command("/imagine", "three", user=ANN, channel=CHANNEL)
    refused = await whisper(slack, ANN)
    assert bot.service.alerts is not None
    await bot.service.alerts.settled()

    assert refused.startswith("The team's image budget for this month is used up")
    assert [text.split(":")[0] for text in admin_posts(slack)] == [
        "Budget warning", "Budget used up"]


async def test_a_chart_the_admin_channel_refuses_leaves_the_numbers_and_says_why(
        start_bot, slack_settings, slack):
    slack.absent_from.add(ADMIN_CHANNEL)  # nobody invited the bot there
    await start_bot(slack_settings(slack={"admin_channel": ADMIN_CHANNEL}))

    await slack.slash_command("/imagine-stats", "7d", user=ADA, channel=CHANNEL)
    [answer] = await slack.wait_for("chat.postEphemeral", within=CHART_S, user=ADA)

    assert str(answer["text"]).startswith("Stats since ")
    assert str(answer["text"]).endswith(
        f"(The chart could not be posted in <#{ADMIN_CHANNEL}>: invite me there.)")
