"""HTTP mode: Slack's signed requests reach the same handlers; a bad signature reaches nothing."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from bot.chat.slack import SlackAdapter
from bot.config import ConfigError
from tests.chat.slack.conftest import ANN, BOB, CHANNEL, job_count, job_of, result
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def http_bot(start_bot, slack_settings):
    """A bot in HTTP mode (no app token) on a free loopback port."""
    bot = await start_bot(slack_settings("http"))
    assert bot.adapter.mode == "http"
    return bot


async def test_a_signed_slash_command_is_acked_and_imagined(http_bot, slack):
    status, _ = await FakeSlack.signed_post(
        http_bot.adapter.events_url,
        slack.command_payload("/imagine", "a red fox --seed 3", user=ANN, channel=CHANNEL))
    job = await job_of(http_bot, await result(slack))

    assert status == 200
    assert (job.request.prompt, job.request.seed) == ("a red fox", 3)
    assert slack.connections == 0  # no websocket in HTTP mode


async def test_a_signed_button_click_is_handled(http_bot, slack):
    await FakeSlack.signed_post(http_bot.adapter.events_url, slack.command_payload(
        "/imagine", "a red fox", user=ANN, channel=CHANNEL))
    message = await result(slack)

    status, _ = await FakeSlack.signed_post(
        http_bot.adapter.events_url, slack.click_payload(message, "imagine_reroll", user=BOB),
        kind="interactive")
    second = await job_of(http_bot, await result(slack, 2))

    assert status == 200
    assert (second.action, second.actor.user_id) == ("reroll", BOB)


async def test_a_signed_mention_event_is_imagined(http_bot, slack):
    status, _ = await FakeSlack.signed_post(
        http_bot.adapter.events_url,
        slack.mention_payload("<@UBOT> a knight --ar 3:4", user=ANN, channel=CHANNEL),
        kind="event")
    job = await job_of(http_bot, await result(slack))

    assert status == 200
    assert (job.request.prompt, job.request.aspect_ratio) == ("a knight", "3:4")


async def test_a_bad_signature_is_refused_with_401_and_queues_nothing(http_bot, slack):
    status, _ = await FakeSlack.signed_post(
        http_bot.adapter.events_url,
        slack.command_payload("/imagine", "a red fox", user=ANN, channel=CHANNEL),
        secret="not-the-signing-secret")

    assert status == 401
    assert await job_count(http_bot) == 0
    assert [c.method for c in slack.calls] == []  # not even users.info


async def test_a_stale_signature_is_refused_with_401_and_queues_nothing(http_bot, slack):
    status, _ = await FakeSlack.signed_post(
        http_bot.adapter.events_url,
        slack.command_payload("/imagine", "a red fox", user=ANN, channel=CHANNEL),
        timestamp=int(time.time()) - 10 * 60)  # signed right, but ten minutes old

    assert status == 401
    assert await job_count(http_bot) == 0


async def test_http_mode_needs_the_signing_secret(slack_settings):
    settings = slack_settings("http").model_copy(update={"slack_signing_secret": None})

    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackAdapter(None, settings)  # type: ignore[arg-type]


async def test_the_bot_token_is_required(slack_settings):
    settings = slack_settings().model_copy(update={"slack_bot_token": None})

    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackAdapter(None, settings)  # type: ignore[arg-type]


async def test_socket_mode_is_used_when_the_app_token_is_set(slack_settings):
    settings = slack_settings().model_copy(
        update={"slack_app_token": SecretStr("xapp-1"), "slack_signing_secret": None})

    assert SlackAdapter(None, settings).mode == "socket"  # type: ignore[arg-type]
