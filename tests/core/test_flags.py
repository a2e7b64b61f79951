"""Midjourney-style flags inside a prompt: "a knight --ar 3:4 --seed 5 --no blur"."""

from __future__ import annotations

import pytest

from bot.core.errors import ImagineError
from bot.core.flags import FLAGS, UnknownFlag, parse_flags
from tests.helpers import actor, ledger_rows, target


def test_a_prompt_without_flags_is_the_whole_text_and_no_options():
    parsed = parse_flags("  a red fox in the snow ")
    assert parsed.prompt == "a red fox in the snow"
    assert parsed.options == {}


def test_flags_after_the_prompt_are_taken_out_of_it():
    parsed = parse_flags("a knight --ar 3:4 --seed 5")
    assert parsed.prompt == "a knight"
    assert parsed.options == {"aspect_ratio": "3:4", "seed": "5"}


def test_no_takes_every_word_up_to_the_next_flag_as_the_negative_prompt():
    parsed = parse_flags("a knight --no blur, extra fingers --steps 30")
    assert parsed.options == {"negative_prompt": "blur, extra fingers", "steps": "30"}


@pytest.mark.parametrize(
    ("flag", "field"),
    [
        ("ar", "aspect_ratio"),
        ("seed", "seed"),
        ("no", "negative_prompt"),
        ("steps", "steps"),
        ("cfg", "cfg"),
        ("model", "model"),
        ("n", "samples"),
        ("sampler", "sampler"),
        ("scheduler", "scheduler"),
        ("format", "image_format"),
    ],
)
def test_each_documented_flag_sets_its_request_field(flag, field):
    assert parse_flags(f"a cat --{flag} x").options == {field: "x"}


def test_flag_names_are_read_in_any_case():
    assert parse_flags("a cat --SEED 7").options == {"seed": "7"}


@pytest.mark.parametrize("dash", ["—", "–"], ids=["em-dash", "en-dash"])
def test_a_phone_s_em_or_en_dash_works_as_a_double_hyphen(dash):
    parsed = parse_flags(f"a cat {dash}ar 16:9 {dash}seed 3")
    assert parsed.prompt == "a cat"
    assert parsed.options == {"aspect_ratio": "16:9", "seed": "3"}


def test_a_flag_may_start_the_text():
    parsed = parse_flags("--seed 3")
    assert parsed.prompt == ""
    assert parsed.options == {"seed": "3"}


def test_double_hyphens_inside_a_word_are_not_a_flag():
    assert parse_flags("a well--lit room").options == {}
    assert parse_flags("a well--lit room").prompt == "a well--lit room"


def test_an_unknown_flag_is_an_error_naming_it():
    with pytest.raises(UnknownFlag) as caught:
        parse_flags("a cat --zoom 2")
    assert "--zoom" in caught.value.sentence()


def test_a_misspelt_flag_suggests_the_closest_one():
    with pytest.raises(UnknownFlag) as caught:
        parse_flags("a cat --stesp 5")
    assert "--stesp" in caught.value.sentence()
    assert "Did you mean --steps?" in caught.value.sentence()


def test_a_misspelt_flag_in_capitals_still_gets_a_suggestion():
    with pytest.raises(UnknownFlag) as caught:
        parse_flags("a cat --SEDE 5")
    assert "Did you mean --seed?" in caught.value.sentence()


def test_a_flag_like_nothing_known_gets_no_suggestion_but_the_list_of_flags():
    with pytest.raises(UnknownFlag) as caught:
        parse_flags("a cat --xylophone 5")
    sentence = caught.value.sentence()
    assert "Did you mean" not in sentence
    assert all(f"--{name}" in sentence for name in FLAGS)


async def test_a_request_with_an_unknown_flag_is_refused_with_its_sentence_and_costs_nothing(
        service):
    # The adapters show the sentence of an ImagineError; anything else is "something went wrong".
    with pytest.raises(ImagineError) as refused:
        await service.imagine(actor(), "a cat --sede 5", None, target())

    assert refused.value.sentence() == (
        "Unknown flag --sede. Did you mean --seed? Known flags: --ar, --aspect, --seed, --no, "
        "--steps, --cfg, --model, --n, --samples, --sampler, --scheduler, --format, --quality, "
        "--w, --h.")
    assert await ledger_rows(service) == []


def test_a_very_long_unknown_flag_is_cut_short_in_the_sentence():
    with pytest.raises(UnknownFlag) as caught:
        parse_flags("a cat --" + "q" * 500)
    assert len(caught.value.sentence()) < 400


def test_a_repeated_flag_is_an_error_saying_to_give_it_once():
    with pytest.raises(ImagineError) as caught:
        parse_flags("a cat --seed 1 --seed 2")
    assert "--seed" in caught.value.sentence()
    assert "twice" in caught.value.sentence()


def test_two_names_for_one_field_are_refused_naming_both():
    with pytest.raises(ImagineError, match="--n and --samples both set samples"):
        parse_flags("a cat --n 2 --samples 3")


def test_a_flag_without_a_value_is_an_error_showing_how_to_give_one():
    with pytest.raises(ImagineError) as caught:
        parse_flags("a cat --steps")
    assert "--steps needs a value" in caught.value.sentence()


def test_a_flag_followed_directly_by_another_has_no_value():
    with pytest.raises(ImagineError, match="--seed needs a value"):
        parse_flags("a cat --seed --steps 4")
