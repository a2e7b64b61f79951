"""Result buttons: Reroll, Vary, Edit (modal), Info, Delete, by the owner and by others."""

from __future__ import annotations

import copy
from typing import Any

from tests.chat.discord.conftest import ADA, ANN, BOB, job_id_of
from tests.fakes.discord import FakeDiscord


async def _result(fake: FakeDiscord, **options: Any) -> dict[str, Any]:
    """Run /imagine as Ann and return the result message the bot posted."""
    sent = await fake.slash("imagine", by=ANN, **{"prompt": "a red fox", **options})
    followup = await fake.wait_for("followup", token=sent.token)
    assert followup.message is not None
    return followup.message


async def test_reroll_by_another_member_is_charged_to_the_presser(bot, fake_discord):
    result = await _result(fake_discord, seed=5)
    parent = job_id_of(result)

    press = await fake_discord.click(result, f"imagine:reroll:{parent}", by=BOB)
    followup = await fake_discord.wait_for("followup", token=press.token)

    child = await bot.service.get_job(job_id_of(followup.payload))
    assert child.parent_id == parent and child.action == "reroll"
    assert child.actor.user_id == str(BOB.id)
    assert child.request.prompt == "a red fox" and child.request.seed != 5
    assert child.target.reply_to_message_id == result["id"]
    assert followup.payload["content"] == f"<@{BOB.id}> rerolled"
    assert followup.payload["allowed_mentions"]["users"] == [BOB.id]


async def test_vary_of_the_second_image_varies_that_image_alone(bot, fake_discord):
    result = await _result(fake_discord, seed=100, samples=2)
    parent = job_id_of(result)

    press = await fake_discord.click(result, f"imagine:vary:{parent}:1", by=ANN)
    followup = await fake_discord.wait_for("followup", token=press.token)

    child = await bot.service.get_job(job_id_of(followup.payload))
    assert child.action == "vary" and child.request.samples == 1
    assert child.request.seed == 102  # Segmind has no variation input: the neighbouring seed
    assert len(followup.files) == 1


async def test_info_of_a_variation_says_how_it_was_varied(bot, fake_discord):
    result = await _result(fake_discord, seed=100)
    varied = await fake_discord.click(result, f"imagine:vary:{job_id_of(result)}:0", by=ANN)
    child = (await fake_discord.wait_for("followup", token=varied.token)).message

    press = await fake_discord.click(child, f"imagine:info:{job_id_of(child)}", by=ANN)
    answer = await fake_discord.wait_for("callback", token=press.token)

    fields = {f["name"]: f["value"] for f in answer.payload["data"]["embeds"][0]["fields"]}
    assert fields["Variation"] == "the neighbouring seed (the service has no variation input)"
    assert fields["From"] == f"vary of job {job_id_of(result)}"


async def test_edit_opens_a_prefilled_modal_whose_submit_starts_a_new_job(bot, fake_discord):
    result = await _result(fake_discord, model="kolors", negative_prompt="blur")
    parent = job_id_of(result)

    press = await fake_discord.click(result, f"imagine:edit:{parent}", by=ANN)
    modal = await fake_discord.wait_for("callback", token=press.token)
    inputs = {c["custom_id"]: c.get("value") for row in modal.payload["data"]["components"]
              for c in row["components"]}
    submit = await fake_discord.submit_modal(
        modal.payload["data"]["custom_id"],
        {"prompt": "a red fox in the rain", "negative_prompt": "blur, snow"}, by=ANN)
    deferral = await fake_discord.wait_for("callback", token=submit.token)
    followup = await fake_discord.wait_for("followup", token=submit.token)

    assert modal.payload["type"] == 9
    assert inputs == {"prompt": "a red fox", "negative_prompt": "blur"}
    assert deferral.payload["type"] == 5
    child = await bot.service.get_job(job_id_of(followup.payload))
    assert (child.action, child.parent_id) == ("edit", parent)
    assert child.request.prompt == "a red fox in the rain"
    assert child.request.negative_prompt == "blur, snow"
    assert child.request.model == "kolors"
    assert followup.payload["embeds"][0]["description"] == "a red fox in the rain"


async def test_info_shows_every_parameter_to_the_presser_alone(bot, fake_discord):
    result = await _result(fake_discord, seed=9)
    job_id = job_id_of(result)

    press = await fake_discord.click(result, f"imagine:info:{job_id}", by=BOB)
    answer = await fake_discord.wait_for("callback", token=press.token)

    assert answer.payload["type"] == 4 and answer.payload["data"]["flags"] == 64
    fields = {f["name"]: f["value"] for f in answer.payload["data"]["embeds"][0]["fields"]}
    assert fields["Job"] == job_id and fields["Seed"] == "9 (typed)"
    assert fields["Backend"] == "segmind"
    assert {"Prompt", "Sampler / scheduler", "Cost", "Took"} <= set(fields)


async def test_delete_by_another_member_is_refused(bot, fake_discord):
    result = await _result(fake_discord)

    press = await fake_discord.click(result, f"imagine:delete:{job_id_of(result)}", by=BOB)
    answer = await fake_discord.wait_for("callback", token=press.token)

    assert answer.payload["data"]["flags"] == 64
    assert answer.payload["data"]["content"] == (
        "Only the owner of that image or an admin can do that.")
    assert fake_discord.messages[result["id"]]["attachments"]


async def test_delete_by_an_admin_clears_the_message_and_stops_its_buttons(bot, fake_discord):
    result = await _result(fake_discord)
    job_id = job_id_of(result)
    stale = copy.deepcopy(result)  # as a client that has not refreshed yet still shows it

    press = await fake_discord.click(result, f"imagine:delete:{job_id}", by=ADA)
    answer = await fake_discord.wait_for("callback", token=press.token)
    again = await fake_discord.click(stale, f"imagine:reroll:{job_id}", by=ANN)
    refusal = await fake_discord.wait_for("followup", token=again.token)

    assert answer.payload["type"] == 7  # UPDATE_MESSAGE
    assert answer.payload["data"]["attachments"] == []
    assert answer.payload["data"]["components"] == []
    assert fake_discord.messages[result["id"]]["attachments"] == []
    assert refusal.payload["flags"] == 64
    assert refusal.payload["content"] == (
        "That image no longer exists (it was deleted or expired).")
