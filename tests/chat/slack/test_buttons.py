"""The buttons under a result and the Edit modal; they carry the job id, so they survive restarts."""

from __future__ import annotations

import pytest

from bot.core.errors import JobNotFound
from tests.chat.slack.conftest import (
    ADA,
    ANN,
    BOB,
    CHANNEL,
    job_of,
    progress_of,
    result,
    results,
    whisper,
)


async def _imagine(bot, slack, text: str = "a red fox", user: str = ANN):
    await slack.slash_command("/imagine", text, user=user, channel=CHANNEL)
    message = await result(slack, len(results(slack)) + 1)
    return message, await job_of(bot, message)


async def test_reroll_makes_a_new_seed_and_charges_the_clicker(bot, slack):
    message, first = await _imagine(bot, slack)

    await slack.click(message, "imagine_reroll", user=BOB)
    second = await job_of(bot, await result(slack, 2))

    assert (second.action, second.parent_id) == ("reroll", first.id)
    assert second.request.prompt == first.request.prompt
    assert second.request.seed != first.request.seed
    assert second.actor.user_id == BOB
    assert (await bot.service.quota_status(second.actor)).balance == 50 - second.cost
    assert (await bot.service.quota_status(first.actor)).balance == 50 - first.cost


async def test_vary_under_the_second_image_varies_that_image(bot, slack):
    message, first = await _imagine(bot, slack, "two owls --n 2 --seed 100")

    await slack.click(message, "imagine_vary_2", user=ANN)
    second = await job_of(bot, await result(slack, 2))

    assert (second.action, second.parent_id) == ("vary", first.id)
    assert second.request.samples == 1
    # Image 2 was made with seed 101; Segmind has no variation input, so Vary takes the
    # neighbouring seed of that image.
    assert (second.request.seed, second.request.variation_seed) == (102, None)


async def test_edit_opens_a_modal_prefilled_with_the_prompt(bot, slack):
    message, job = await _imagine(bot, slack, "a red fox --seed 5")

    await slack.click(message, "imagine_edit", user=BOB)
    [opened] = await slack.wait_for("views.open")

    view = opened["view"]
    prompt = next(b for b in view["blocks"] if b.get("block_id") == "prompt")
    assert prompt["element"]["initial_value"] == "a red fox"
    assert opened["trigger_id"].startswith("trigger-")
    assert job.id in view["private_metadata"]


async def test_submitting_the_edit_modal_imagines_the_new_prompt_with_the_same_seed(bot, slack):
    message, first = await _imagine(bot, slack, "a red fox --seed 5")
    await slack.click(message, "imagine_edit", user=BOB)
    [opened] = await slack.wait_for("views.open")

    ack = await slack.submit_view(opened["view"], {"prompt": "a blue fox"}, user=BOB)
    second = await job_of(bot, await result(slack, 2))

    assert "payload" not in ack  # the modal closes
    assert (second.action, second.parent_id) == ("edit", first.id)
    assert (second.request.prompt, second.request.seed) == ("a blue fox", 5)
    assert second.actor.user_id == BOB
    assert progress_of(slack, second).channel == CHANNEL


async def test_an_edit_the_core_refuses_is_shown_inside_the_modal(bot, slack):
    message, _ = await _imagine(bot, slack)
    await slack.click(message, "imagine_edit", user=ANN)
    [opened] = await slack.wait_for("views.open")

    ack = await slack.submit_view(opened["view"], {"prompt": "a fox --bogus 1"}, user=ANN)

    assert ack["payload"]["response_action"] == "errors"
    assert ack["payload"]["errors"]["prompt"].startswith("Unknown flag --bogus.")


async def test_info_shows_every_parameter_to_the_clicker_only(bot, slack):
    message, job = await _imagine(bot, slack, "a red fox --seed 42")

    await slack.click(message, "imagine_info", user=BOB)
    text = await whisper(slack, BOB)

    for line in (f"*Job:* {job.id}", "*Prompt:* a red fox", "*Model:* flux-schnell",
                 "*Seed:* 42", "*Size:* 1024×1024 (1:1)", "*Steps:* 4", "*Cost:* 1 credit",
                 "*Backend:* segmind"):
        assert line in text
    assert slack.calls_to("chat.postEphemeral")[0]["channel"] == CHANNEL


async def test_someone_else_cannot_delete_a_result(bot, slack):
    message, job = await _imagine(bot, slack)

    await slack.click(message, "imagine_delete", user=BOB)

    assert await whisper(slack, BOB) == "Only the owner of that image or an admin can do that."
    assert (await bot.service.get_job(job.id)).images
    assert not message.deleted


async def test_the_owner_deletes_a_result_with_its_files_and_buttons(bot, slack):
    message, job = await _imagine(bot, slack, "a red fox --n 2")
    file_ids = set(slack.uploads)

    await slack.click(message, "imagine_delete", user=ANN)
    await slack.wait_for("chat.delete")

    assert {c["file"] for c in slack.calls_to("files.delete")} == file_ids
    assert slack.uploads == {}
    assert message.deleted
    assert progress_of(slack, job).text == f"_Image deleted by <@{ANN}>._"
    with pytest.raises(JobNotFound):
        await bot.service.get_job(job.id)


async def test_a_workspace_admin_may_delete_anyones_result(bot, slack):
    message, job = await _imagine(bot, slack)

    await slack.click(message, "imagine_delete", user=ADA)
    await slack.wait_for("chat.delete")

    with pytest.raises(JobNotFound):
        await bot.service.get_job(job.id)


async def test_a_button_of_a_deleted_result_says_it_is_gone(bot, slack):
    message, _ = await _imagine(bot, slack)
    await slack.click(message, "imagine_delete", user=ANN)
    await slack.wait_for("chat.delete")

    await slack.click(message, "imagine_reroll", user=BOB)

    assert await whisper(slack, BOB) == (
        "That image no longer exists (it was deleted or expired).")


async def test_buttons_work_after_a_restart(start_bot, slack_settings, slack):
    settings = slack_settings()
    before = await start_bot(settings)
    message, first = await _imagine(before, slack)
    await before.stop()

    after = await start_bot(settings)  # a new service and adapter on the same data folder
    await slack.click(message, "imagine_reroll", user=BOB)
    second = await job_of(after, await result(slack, 2))

    assert slack.connections == 2
    assert (second.action, second.parent_id) == ("reroll", first.id)
    assert [u.completed for u in slack.uploads.values()] == [True, True]


async def test_a_result_slack_refused_is_delivered_after_a_restart(start_bot, slack_settings, slack):
    settings = slack_settings()
    before = await start_bot(settings, rate_limit_retries=0)
    slack.rate_limit("files.getUploadURLExternal", times=1)  # the upload fails for good
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    await slack.wait_until(lambda: slack.calls_to("files.getUploadURLExternal", status=429))
    await before.stop()
    [progress] = slack.posted(CHANNEL)

    after = await start_bot(settings)  # replays the undelivered result
    message = await result(slack)
    job = await job_of(after, message)

    assert job.target.message_id == progress.ts  # the same progress message, edited again
    assert [m.ts for m in slack.posted(CHANNEL) if m not in results(slack)] == [progress.ts]
    assert progress.history[-1].endswith("Done.")
    assert [u.completed for u in slack.uploads.values()] == [True]
