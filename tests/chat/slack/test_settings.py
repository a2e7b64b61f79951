"""/imagine-settings over a loopback Slack: the modal, its Save, workspace defaults."""

from __future__ import annotations

from typing import Any

from bot.core.defaults import Defaults
from bot.core.jobs import Actor
from tests.chat.slack.conftest import ADA, ANN, BOB, CHANNEL, job_of, result, whisper
from tests.fakes.slack import FakeSlack


async def _open(slack: FakeSlack, user: str, text: str = "", count: int = 1) -> dict[str, Any]:
    """Run /imagine-settings and return the modal it opened."""
    await slack.slash_command("/imagine-settings", text, user=user, channel=CHANNEL)
    opened = await slack.wait_for("views.open", count)
    return dict(opened[count - 1]["view"])


def _element(view: dict[str, Any], field: str) -> dict[str, Any]:
    return dict(next(b for b in view["blocks"] if b.get("block_id") == field)["element"])


async def test_the_command_opens_a_modal_prefilled_with_your_defaults(bot, slack):
    first = await _open(slack, ANN)
    await slack.submit_view(first, {"model": "kolors", "steps": "30"}, user=ANN)

    view = await _open(slack, ANN, count=2)

    assert view["callback_id"] == "imagine_settings"
    assert _element(view, "model")["initial_option"]["value"] == "kolors"
    assert _element(view, "steps")["initial_value"] == "30"
    assert _element(view, "aspect_ratio")["initial_option"]["value"] == "default"


async def test_saving_the_modal_stores_defaults_that_the_next_imagine_uses(bot, slack):
    view = await _open(slack, ANN)

    ack = await slack.submit_view(view, {"model": "kolors", "steps": "30", "cfg": "5"},
                                  user=ANN)
    saved = await whisper(slack, ANN)
    await slack.slash_command("/imagine", "a red fox", user=ANN, channel=CHANNEL)
    job = await job_of(bot, await result(slack))

    assert "payload" not in ack  # the modal closes
    assert saved.startswith("Saved your defaults: model kolors, steps 30, cfg 5.")
    assert (job.request.model, job.request.steps, job.request.cfg) == ("kolors", 30, 5.0)


async def test_a_value_out_of_range_is_shown_under_its_field_and_nothing_is_stored(bot, slack):
    view = await _open(slack, ANN)

    ack = await slack.submit_view(view, {"steps": "30"}, user=ANN)
    again = await _open(slack, ANN, count=2)

    assert ack["payload"]["response_action"] == "errors"
    assert ack["payload"]["errors"] == {
        "steps": "steps '30' is not allowed: flux-schnell takes a whole number from 1 to 8."}
    assert "initial_value" not in _element(again, "steps")


async def test_a_member_cannot_open_the_workspace_defaults(bot, slack):
    await slack.slash_command("/imagine-settings", "workspace", user=ANN, channel=CHANNEL)

    answer = await whisper(slack, ANN)

    assert answer.startswith("Only Slack workspace admins can change the workspace defaults")
    assert not slack.calls_to("views.open")


async def test_an_admins_workspace_defaults_apply_to_members(bot, slack):
    view = await _open(slack, ADA, "workspace")
    await slack.submit_view(view, {"aspect_ratio": "16:9"}, user=ADA)
    await whisper(slack, ADA)

    await slack.slash_command("/imagine", "a red fox", user=BOB, channel=CHANNEL)
    job = await job_of(bot, await result(slack))

    assert job.request.aspect_ratio == "16:9"
    assert job.provenance.source("aspect_ratio").value == "workspace"


async def test_emptying_a_field_forgets_that_default_only(bot, slack):
    view = await _open(slack, ANN)
    await slack.submit_view(view, {"model": "kolors", "negative_prompt": "blur"}, user=ANN)

    again = await _open(slack, ANN, count=2)
    await slack.submit_view(again, {"negative_prompt": ""}, user=ANN)
    await whisper(slack, ANN, 2)

    layers = await bot.service.user_settings.layers(Actor("slack", ANN, slack.team_id))
    assert layers.user == Defaults(model="kolors")


async def test_typed_show_answers_privately_with_each_source(bot, slack):
    await slack.slash_command("/imagine-settings", "show", user=ANN, channel=CHANNEL)

    answer = await whisper(slack, ANN)

    assert answer.startswith("Your defaults (a flag you type wins")
    assert "steps: 4 (model default)" in answer
    assert "visibility" not in answer  # a Discord setting


async def test_a_custom_aspect_set_elsewhere_is_offered_and_kept_by_save(bot, slack):
    ann = Actor("slack", ANN, slack.team_id)
    await bot.service.user_settings.change(ann, {"aspect": "5:4"})
    view = await _open(slack, ANN)

    await slack.submit_view(view, {"steps": "6"}, user=ANN)
    await whisper(slack, ANN)

    layers = await bot.service.user_settings.layers(ann)
    assert layers.user == Defaults(aspect_ratio="5:4", steps=6)
