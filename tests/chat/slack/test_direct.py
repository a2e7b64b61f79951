"""Direct messages: prompts sent to the bot in its App Home Messages tab, and /imagine in DMs."""

from __future__ import annotations

import logging

from bot.chat.slack._direct import ELSEWHERE
from bot.core.jobs import Actor
from tests.chat.slack.conftest import ANN, job_count, job_of, result

DM_BETWEEN_ANN_AND_BOB = "D0ANN0BOB"


async def balance(bot, user: str) -> int | None:
    """The user's credits left."""
    return (await bot.service.quota_status(Actor("slack", user, "T0001"))).balance


async def test_a_message_to_the_bot_in_its_dm_is_imagined_into_that_dm(bot, slack):
    await slack.direct_message("a red fox --seed 3", user=ANN)

    message = await result(slack)

    dm = slack.im_with(ANN)
    uploads = [u for u in slack.uploads.values() if u.completed]
    assert message.channel == dm
    assert uploads and all(u.channel == dm for u in uploads)


async def test_a_prompt_sent_in_the_dm_is_charged_once(bot, slack):
    await slack.direct_message("a red fox", user=ANN)
    await result(slack)

    assert await job_count(bot) == 1
    assert await balance(bot, ANN) == 49


async def test_a_dm_message_that_slack_retries_is_imagined_once(bot, slack):
    payload = slack.direct_message_payload("a red fox", user=ANN)
    await slack.ack(await slack.send_envelope("events_api", payload))
    await slack.ack(await slack.send_envelope("events_api", {**payload}, retry_attempt=1))
    await result(slack)

    assert await job_count(bot) == 1
    assert await balance(bot, ANN) == 49


async def test_a_mention_in_the_dm_that_also_arrives_as_app_mention_is_imagined_once(bot, slack):
    message = slack.direct_message_payload("<@UBOT> a red fox", user=ANN)
    mention = slack.mention_payload("<@UBOT> a red fox", user=ANN,
                                    channel=message["event"]["channel"])
    mention["event"].update(ts=message["event"]["ts"], event_ts=message["event"]["ts"])
    await slack.ack(await slack.send_envelope("events_api", message))
    await slack.ack(await slack.send_envelope("events_api", mention))
    await result(slack)

    assert await job_count(bot) == 1


async def test_edits_and_bot_posts_in_the_dm_are_not_prompts(bot, slack):
    edited = slack.direct_message_payload("a red fox", user=ANN)
    edited["event"]["subtype"] = "message_changed"
    from_a_bot = slack.direct_message_payload("a blue fox", user=ANN)
    from_a_bot["event"]["bot_id"] = "B0OTHER"
    for payload in (edited, from_a_bot):
        await slack.ack(await slack.send_envelope("events_api", payload))
    await slack.direct_message("a green fox", user=ANN)  # the one prompt

    message = await result(slack)

    assert (await job_of(bot, message)).request.prompt == "a green fox"
    assert await job_count(bot) == 1


async def test_imagine_typed_in_the_users_dm_with_the_bot_is_imagined_there(bot, slack):
    dm = slack.im_with(ANN)
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=dm)

    message = await result(slack)

    assert message.channel == dm
    assert await balance(bot, ANN) == 49


async def test_imagine_typed_in_a_dm_between_other_people_says_what_works_and_charges_nothing(
        bot, slack, caplog):
    caplog.set_level(logging.INFO)
    await slack.slash_command("/imagine", "a red fox", user=ANN,
                              channel=DM_BETWEEN_ANN_AND_BOB)

    [reply] = await slack.wait_for("response_url")

    assert reply["text"] == ELSEWHERE
    assert reply["response_type"] == "ephemeral"
    assert await job_count(bot) == 0
    assert await balance(bot, ANN) == 50
    assert slack.calls_to("chat.postMessage", status=None) == []
    assert not [r for r in caplog.records if r.exc_info]
