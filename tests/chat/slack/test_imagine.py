"""/imagine and @mentions over Socket Mode: progress, uploads, buttons, errors, rate limits."""

from __future__ import annotations

import itertools
import logging

from bot.chat.guard import UNEXPECTED
from bot.chat.render import HANDED_BACK
from bot.core.jobs import Actor
from tests.chat.slack.conftest import (
    ANN,
    BOB,
    CHANNEL,
    job_count,
    job_of,
    progress_of,
    result,
    texts,
    whisper,
)
from tests.fakes.slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET
from tests.reliability.support import until


async def test_a_slash_command_is_acked_at_once(bot, slack):
    ack = await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)

    assert ack["envelope_id"].startswith("env-")  # slack.ack waits at most 3 s


async def test_the_progress_message_moves_from_queued_to_generating_to_done(
    bot, slack, fake_segmind
):
    fake_segmind.latency_s = 0.3
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    job = await job_of(bot, await result(slack))

    progress = progress_of(slack, job)
    states = [text.split("\n")[1] for text in progress.history]
    assert progress.channel == CHANNEL
    assert progress.history[0].startswith("“a red fox”")
    assert states[0].startswith("Queued: next in line")
    assert any(state.startswith("Generating") for state in states)
    assert states[-1] == "Done."


async def test_the_images_are_uploaded_byte_for_byte_with_a_summary(bot, slack):
    await slack.slash_command("/imagine", "a lighthouse --n 2 --seed 7", user=ANN,
                              channel=CHANNEL)
    job = await job_of(bot, await result(slack))

    uploads = [u for u in slack.uploads.values() if u.completed]
    assert [u.data for u in uploads] == [path.read_bytes() for path in job.images]
    assert all(u.channel == CHANNEL and u.thread_ts is None for u in uploads)
    comment = uploads[0].initial_comment or ""
    assert comment.startswith(f"<@{ANN}> “a lighthouse”")
    for part in ("Model: flux-schnell", "Seed: 7…8", "Size: 1024×1024", "Cost: 2 credits",
                 "Balance: 48"):
        assert part in comment


async def test_the_result_has_reroll_vary_edit_info_and_delete_carrying_the_job_id(bot, slack):
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    message = await result(slack)
    job = await job_of(bot, message)

    buttons = {e["action_id"]: e["value"] for b in message.blocks
               for e in b.get("elements", []) if e.get("type") == "button"}
    assert buttons == {"imagine_reroll": job.id, "imagine_vary": f"{job.id}:0",
                       "imagine_edit": job.id, "imagine_info": job.id,
                       "imagine_delete": job.id}
    assert message.channel == CHANNEL


async def test_several_images_get_one_vary_button_each(bot, slack):
    await slack.slash_command("/imagine", "three owls --n 3", user=ANN, channel=CHANNEL)
    message = await result(slack)
    job = await job_of(bot, message)

    labels = {e["text"]["text"]: e["value"] for b in message.blocks
              for e in b.get("elements", []) if e.get("type") == "button"}
    assert {k: v for k, v in labels.items() if k.startswith("V")} == {
        "V1": f"{job.id}:0", "V2": f"{job.id}:1", "V3": f"{job.id}:2"}
    assert "Vary" not in labels


async def test_a_mention_with_flags_does_what_the_slash_command_does_in_its_thread(bot, slack):
    await slack.mention("<@UBOT> a knight --ar 3:4", user=ANN, channel=CHANNEL,
                        thread_ts="1700000000.000100")
    message = await result(slack)
    job = await job_of(bot, message)

    assert job.request.prompt == "a knight"
    assert job.request.aspect_ratio == "3:4"
    assert progress_of(slack, job).thread_ts == "1700000000.000100"
    assert message.thread_ts == "1700000000.000100"
    assert all(u.thread_ts == "1700000000.000100" for u in slack.uploads.values())


async def test_a_prompt_that_tries_to_mention_everyone_is_posted_inert(bot, slack):
    # What Slack sends when a user types: a cat <!channel> <!here> <@U0BOB> @everyone & co
    typed = "a cat &lt;!channel&gt; &lt;!here&gt; &lt;@U0BOB&gt; <!everyone> &amp; co"
    await slack.slash_command("/imagine", typed, user=ANN, channel=CHANNEL)
    job = await job_of(bot, await result(slack))

    assert job.request.prompt == "a cat <!channel> <!here> <@U0BOB> @everyone & co"
    sent = texts(slack)
    assert not [t for t in sent if "<!" in t or "<@U0BOB" in t]
    assert any("&lt;!channel&gt; &lt;!here&gt; &lt;@U0BOB&gt;" in t for t in sent)
    assert not [c for c in slack.calls if c.args.get("link_names") not in (None, False)]


async def test_a_bad_request_is_answered_privately_in_one_sentence_and_costs_nothing(
    bot, slack
):
    await slack.slash_command("/imagine", "a fox --ar 99:1", user=ANN, channel=CHANNEL)

    text = await whisper(slack, ANN)
    assert text.startswith("aspect_ratio '99:1' is not allowed")
    assert "Traceback" not in text
    assert slack.calls_to("chat.postMessage") == []
    assert await job_count(bot) == 0


async def test_a_failed_generation_says_why_and_that_credits_were_refunded(
    bot, slack, fake_segmind
):
    fake_segmind.faults = [400]
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)

    await slack.wait_until(lambda: any(
        "refunded" in m.text for m in slack.posted(CHANNEL)))
    [progress] = slack.posted(CHANNEL)
    assert progress.text.endswith("Your credits were refunded.")
    assert "Traceback" not in progress.text
    assert slack.uploads == {}
    assert (await bot.service.quota_status(Actor("slack", ANN, "T0001"))).balance == 50
    ledger = await bot.service.db.read("SELECT kind FROM ledger ORDER BY id")
    assert [row["kind"] for row in ledger] == ["reserve", "refund"]


async def test_the_user_never_sees_a_traceback_when_something_unexpected_breaks(bot, slack):
    await bot.service.db.close()  # the core now fails with an error that is no ImagineError

    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)

    assert await whisper(slack, ANN) == UNEXPECTED


async def test_a_rate_limited_call_is_retried_after_retry_after(bot, slack):
    slack.rate_limit("chat.postMessage", times=1, retry_after=0)
    slack.rate_limit("files.completeUploadExternal", times=1, retry_after=0)

    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    await result(slack)

    assert len(slack.calls_to("chat.postMessage", status=429)) == 1
    assert len(slack.calls_to("files.completeUploadExternal", status=429)) == 1
    assert [u.completed for u in slack.uploads.values()] == [True]


async def test_progress_edits_are_paced_to_one_per_interval_per_job(
    start_bot, slack_settings, slack, fake_segmind
):
    await start_bot(slack_settings(segmind={"concurrency": 1}), update_interval_s=0.4)
    fake_segmind.latency_s = 0.25
    for user in ("U0A1", "U0A2", "U0A3"):  # each waits behind the others; positions change
        await slack.slash_command("/imagine", f"a fox for {user}", user=user, channel=CHANNEL)
    await result(slack, 3)

    for message in slack.posted(CHANNEL):
        if message.blocks:
            continue  # a result message, never edited
        moments = [c.at for c in slack.calls if c.status == 200
                   and c.method in ("chat.postMessage", "chat.update")
                   and c.answer.get("ts") == message.ts]
        gaps = [b - a for a, b in itertools.pairwise(moments)]
        assert len(message.history) >= 2
        assert min(gaps) >= 0.35, (message.history, gaps)


async def test_no_token_or_secret_reaches_the_logs(start_bot, slack, caplog):
    caplog.set_level(logging.DEBUG)
    await start_bot()
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    await result(slack)

    assert caplog.records
    for secret in (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET):
        assert secret not in caplog.text


async def test_in_a_channel_the_bot_is_not_in_the_user_is_told_to_invite_it_and_refunded(
    start_bot, slack_settings, slack, fake_segmind
):
    bot = await start_bot(slack_settings(segmind={"concurrency": 1}))
    fake_segmind.latency_s = 0.5
    await slack.slash_command("/imagine", "a busy worker", user=BOB, channel=CHANNEL)
    await slack.wait_for("chat.postMessage")  # bob's job holds the only worker
    slack.absent_from.add("C0ELSEWHERE")

    await slack.slash_command("/imagine", "a red fox", user=ANN, channel="C0ELSEWHERE")
    [reply] = await slack.wait_for("response_url")  # an ephemeral message cannot go there

    assert reply["text"] == ("I cannot post in this channel: invite me with /invite @imagine "
                             "and try again. Your credits were refunded.")
    assert reply["response_type"] == "ephemeral"
    assert (await bot.service.quota_status(Actor("slack", ANN, "T0001"))).balance == 50


async def test_a_mention_slack_sends_twice_is_imagined_once(bot, slack):
    payload = slack.mention_payload("<@UBOT> a red fox", user=ANN, channel=CHANNEL)
    await slack.ack(await slack.send_envelope("events_api", payload))
    await slack.ack(await slack.send_envelope("events_api", {**payload}))  # Slack's retry
    await result(slack)

    assert await job_count(bot) == 1


async def test_a_job_handed_back_on_stop_says_so_in_its_progress_message(
    bot, slack, fake_segmind
):
    fake_segmind.latency_s = 30
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    await until(lambda: len(fake_segmind.requests) == 1, 10, "the job running")
    [progress] = slack.messages.values()

    await bot.stop()

    assert progress.history[-1].split("\n")[1] == HANDED_BACK
