"""/settings shared by every platform: the console's `settings ...`, and Info's sources."""

from __future__ import annotations

import io

import pytest

from bot.chat.console import ConsoleChat
from bot.chat.render import info_fields
from bot.chat.settings import parse_settings
from bot.core.errors import SettingError
from bot.core.jobs import Actor, ReplyTarget

ANN = Actor("discord", "1001", "g1")
ADMIN = Actor("discord", "1003", "g1", is_admin=True)


@pytest.fixture
async def console(service):
    out = io.StringIO()
    return ConsoleChat(service, out, user="operator"), out


def test_settings_flags_take_values_with_spaces():
    command = parse_settings("set --model kolors --no blur, text --ar 16:9")

    assert command.values == {"model": "kolors", "negative_prompt": "blur, text",
                              "aspect_ratio": "16:9"}


def test_an_unknown_settings_command_is_one_sentence_with_the_usage():
    with pytest.raises(SettingError) as raised:
        parse_settings("frob")

    assert raised.value.sentence().startswith("Unknown settings command 'frob'. Usage: settings")


async def test_console_settings_set_then_imagine_uses_the_default(console, service):
    chat, out = console
    await chat.handle("settings set --model kolors --steps 30")
    await chat.handle("/imagine a fox")

    assert "Saved your defaults: model kolors, steps 30." in out.getvalue()
    assert "queued kolors 1024x1024 30 steps" in out.getvalue()


async def test_console_settings_show_names_each_source(console):
    chat, out = console
    await chat.handle("settings server set --ar 16:9")
    await chat.handle("settings set --steps 6")
    await chat.handle("settings")

    shown = out.getvalue()
    assert "aspect: 16:9 (workspace default)" in shown
    assert "steps: 6 (your default)" in shown
    assert "model: flux-schnell (model default)" in shown
    assert "visibility" not in shown.split("Your defaults")[-1]  # a Discord setting


async def test_console_settings_refuses_a_bad_value_in_one_sentence(console, service):
    chat, out = console
    await chat.handle("settings set --steps 30")

    assert out.getvalue().strip().splitlines()[-1] == (
        "steps '30' is not allowed: flux-schnell takes a whole number from 1 to 8.")
    assert (await service.user_settings.layers(chat.actor)).user.steps is None


async def test_info_shows_each_value_with_where_it_came_from(service):
    await service.user_settings.change(ADMIN, {"model": "kolors"}, workspace=True)
    await service.user_settings.change(ANN, {"steps": "30", "cfg": "5"})
    job = await service.imagine(ANN, "a fox --seed 3", None, ReplyTarget("discord", "c1", "g1"))

    fields = dict(info_fields(job))

    assert fields["Model"] == "kolors (server default)"
    assert fields["Steps"] == "30 (your default)"
    assert fields["CFG"] == "5 (your default)"
    assert fields["Seed"] == "3 (typed)"
    assert fields["Size"] == "1024×1024 (1:1) (model default)"


async def test_info_lists_the_defaults_that_were_skipped(service):
    await service.user_settings.change(ANN, {"model": "kolors", "cfg": "5"})
    job = await service.imagine(ANN, "a fox --model flux-schnell", None,
                                ReplyTarget("discord", "c1", "g1"))

    assert dict(info_fields(job))["Skipped"] == (
        "Your default cfg 5 was skipped: flux-schnell takes no cfg.")
