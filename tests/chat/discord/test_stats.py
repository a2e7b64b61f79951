"""/stats for admins over a loopback Discord, and the admin alerts in [discord] admin_channel_id."""

from __future__ import annotations

import io

from PIL import Image

from bot.chat.discord._stats import NOT_ADMIN
from tests.chat.discord.conftest import ADA, ANN, BOB
from tests.fakes.discord import Captured, FakeDiscord

ADMIN_CHANNEL = 930000000000000077
CHART_S = 60.0  # matplotlib's first import builds its font cache: slow on a fresh machine
BUDGET = {"limit": 2.0, "warn_at": 0.5, "prices": {"flux-schnell": 1.0}}


async def imagine(fake: FakeDiscord, prompt: str, by=ANN) -> Captured:
    """One /imagine, waited for to its followup (the result, or the refusal)."""
    sent = await fake.slash("imagine", by=by, prompt=prompt)
    return await fake.wait_for("followup", token=sent.token)


def alerts(fake: FakeDiscord) -> list[str]:
    """What the bot posted in the admin channel."""
    return [c.payload["content"] for c in fake.requests("channel_message")
            if c.message and c.message["channel_id"] == str(ADMIN_CHANNEL)]


async def test_an_admin_gets_the_numbers_and_the_chart_that_only_they_see(bot, fake_discord):
    await imagine(fake_discord, "a red fox")
    await imagine(fake_discord, "a blue fox --n 2", by=BOB)

    sent = await fake_discord.slash("stats", by=ADA, since="7d")
    answer = await fake_discord.wait_for("followup", token=sent.token, within_s=CHART_S)

    text = answer.payload["content"]
    assert answer.payload["flags"] & 64
    assert "Jobs: 2 (2 done, 0 failed, 0 cancelled, 0 waiting); images: 3." in text
    assert "Credits: 3 charged, 0 refunded." in text
    assert f"Top users: <@{BOB.id}> 2 credits (2 images) · <@{ANN.id}> 1 credits" in text
    assert answer.payload["allowed_mentions"] == {"parse": []}
    with Image.open(io.BytesIO(answer.files[0].data)) as chart:
        assert (chart.format, chart.size) == ("PNG", (1200, 800))


async def test_stats_is_refused_to_a_member_without_manage_server(bot, fake_discord):
    sent = await fake_discord.slash("stats", by=ANN)

    callback = await fake_discord.wait_for("callback", token=sent.token)

    assert callback.payload["data"]["content"] == NOT_ADMIN
    assert callback.payload["data"]["flags"] == 64


async def test_the_budget_alerts_are_posted_once_each_to_the_admin_channel(
        start_bot, discord_settings, fake_discord):
    bot = await start_bot(discord_settings(discord={"admin_channel_id": ADMIN_CHANNEL},
                                           budget=BUDGET))
    await imagine(fake_discord, "one")
    await imagine(fake_discord, "two")
    refused = await imagine(fake_discord, "three")
    await imagine(fake_discord, "four")
    assert bot.service.alerts is not None
    await bot.service.alerts.settled()

    assert refused.payload["content"].startswith("The team's image budget for this month is used up")
    assert [text.split(":")[0] for text in alerts(fake_discord)] == [
        "Budget warning", "Budget used up"]
