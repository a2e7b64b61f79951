"""Admin quota commands, parsed from words and run against a real database."""

from __future__ import annotations

import pytest

from bot.core.admin import parse_admin, run_admin
from bot.core.errors import ImagineError
from bot.core.quota import UNLIMITED, Period
from tests.helpers import Recorder, actor, target


def test_set_takes_a_user_credits_and_an_optional_period():
    command = parse_admin(["set", "U1", "100", "week"])
    assert (command.user_id, command.credits, command.period) == ("U1", 100, Period.WEEK)


def test_unlimited_and_default_are_words_for_set():
    assert parse_admin(["set", "U1", "unlimited"]).credits == UNLIMITED
    assert parse_admin(["set", "U1", "default"]).credits is None


USAGE = (
    "Usage: show USER | set USER CREDITS|unlimited|default [day|week|month] | "
    "set-workspace CREDITS|unlimited|default [day|week|month] | grant USER CREDITS | reset USER | "
    "block USER | unblock USER | top [N]"
)


@pytest.mark.parametrize(("words", "problem"), [
    ([], "Unknown quota command."),
    (["frobnicate"], "Unknown quota command."),
    (["grant", "U1"], "grant needs a number of credits."),
    (["set", "U1"], "set needs a number of credits."),
    (["set-workspace"], "set-workspace needs a number of credits."),
    (["block"], "block needs a user."),
])
def test_a_command_missing_a_part_is_refused_with_the_usage(words, problem):
    with pytest.raises(ImagineError) as refused:
        parse_admin(words)
    assert refused.value.sentence() == f"{problem} {USAGE}"


@pytest.mark.parametrize(("words", "sentence"), [
    (["grant", "U1", "-5"], "credits -5 is not allowed: a whole number from 1 to 1000000."),
    (["set", "U1", "many"], "credits 'many' is not allowed: a whole number from 0 to 1000000."),
    (["set", "U1", "5", "fortnight"], "period 'fortnight' is not allowed: day, week or month."),
    (["top", "0"], "N 0 is not allowed: a whole number from 1 to 100."),
])
def test_a_value_out_of_bounds_is_refused_naming_it_and_what_is_allowed(words, sentence):
    with pytest.raises(ImagineError) as refused:
        parse_admin(words)
    assert refused.value.sentence() == sentence


async def test_grant_then_show_reports_the_new_balance(service):
    scope = actor().scope
    await run_admin(service.quota, scope, parse_admin(["grant", "bob", "5"]))
    shown = await run_admin(service.quota, scope, parse_admin(["show", "bob"]), "<@{user}>")
    assert shown.startswith("<@bob>: has 55 credits left")


async def test_top_lists_who_spent_most(service):


    recorder = Recorder(service)
    job = await service.imagine(actor("carol"), "a fox --n 3", None, target())
    await recorder.wait_final(job.id)
    text = await run_admin(service.quota, actor().scope, parse_admin(["top"]))
    assert "1. carol: 3 credits" in text
