"""ImagineRequest: options and inline flags -> one validated request, or one sentence saying why not."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.core.catalog import CHROMA, FLUX_SCHNELL, MAX_PROMPT_CHARS, SEED_MAX, Catalog
from bot.core.errors import ImagineError, RequestError
from bot.core.flags import UnknownFlag
from bot.core.request import ImagineRequest, build_request, clean_text

CATALOG = Catalog()
SEED = 1234


def build(text: str = "a red fox", catalog: Catalog = CATALOG, **options: Any) -> ImagineRequest:
    return build_request(text, options, catalog, random_seed=lambda: SEED)


def refusal(text: str = "a red fox", catalog: Catalog = CATALOG, **options: Any) -> ImagineError:
    with pytest.raises(ImagineError) as caught:
        build(text, catalog, **options)
    return caught.value


def field_refusal(field: str, text: str = "a red fox", catalog: Catalog = CATALOG, **options: Any):
    error = refusal(text, catalog, **options)
    assert isinstance(error, RequestError), error.sentence()
    assert error.field == field
    return error


# --- defaults ----------------------------------------------------------------------------


def test_a_bare_prompt_gets_flux_schnell_at_its_defaults():
    request = build("a red fox")
    assert request.model == "flux-schnell"
    assert (request.width, request.height, request.aspect_ratio) == (1024, 1024, "1:1")
    assert (request.steps, request.cfg) == (4, None)
    assert (request.sampler, request.scheduler) == ("euler", "normal")
    assert (request.samples, request.image_format) == (1, "jpeg")
    assert request.image_quality == FLUX_SCHNELL.default_quality
    assert request.negative_prompt is None


def test_chroma_defaults_are_cfg_7_steps_40_euler_and_beta():
    request = build(model="chroma")
    assert (request.cfg, request.steps, request.sampler, request.scheduler) == (7, 40, "euler", "beta")
    assert (request.width, request.height, request.image_format) == (1024, 1024, "png")


def test_kolors_defaults_are_cfg_6_steps_25_and_webp():
    request = build(model="kolors")
    assert (request.cfg, request.steps, request.image_format) == (6, 25, "webp")


def test_the_catalog_s_default_model_is_used_when_none_is_given():
    catalog = CATALOG.narrowed(default_model="kolors")
    assert build(catalog=catalog).model == "kolors"


def test_a_request_is_frozen():
    request = build()
    with pytest.raises(ValidationError):
        request.steps = 8  # type: ignore[misc]


def test_a_request_s_summary_names_model_size_steps_and_seed():
    summary = build("a fox --model chroma --seed 9").summary()
    assert summary == "chroma 1024x1024 40 steps cfg 7 euler/beta seed 9"


# --- the seed ------------------------------------------------------------------------------


def test_the_seed_is_drawn_at_random_when_absent_and_recorded_in_the_request():
    assert build().seed == SEED


def test_the_default_random_seed_lies_between_0_and_2_to_the_32_minus_1():
    seeds = {build_request("a fox", None, CATALOG).seed for _ in range(20)}
    assert all(0 <= s <= SEED_MAX for s in seeds)
    assert len(seeds) > 1


def test_a_given_seed_is_kept_and_no_random_one_is_drawn():
    def never() -> int:
        raise AssertionError("drew a random seed")

    assert build_request("a fox --seed 42", None, CATALOG, random_seed=never).seed == 42


@pytest.mark.parametrize("seed", [0, SEED_MAX])
def test_a_seed_at_either_end_of_its_range_is_accepted(seed):
    assert build(seed=seed).seed == seed


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1])
def test_a_seed_outside_0_to_2_to_the_32_minus_1_is_refused(seed):
    assert "0 to 4294967295" in field_refusal("seed", seed=seed).sentence()


# --- chroma ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [768, 2048])
def test_chroma_accepts_sides_of_768_and_2048(size):
    request = build(model="chroma", width=size, height=size)
    assert (request.width, request.height, request.aspect_ratio) == (size, size, "custom")


@pytest.mark.parametrize("side", ["width", "height"])
@pytest.mark.parametrize("size", [760, 2056])
def test_chroma_refuses_a_side_outside_768_to_2048_and_says_so(side, size):
    error = field_refusal(side, model="chroma", **{side: size})
    assert error.sentence() == f"{side} {size} is not allowed: a whole number from 768 to 2048."


@pytest.mark.parametrize("cfg", [1, 7.5, 20])
def test_chroma_accepts_cfg_from_1_to_20(cfg):
    assert build(model="chroma", cfg=cfg).cfg == cfg


@pytest.mark.parametrize("cfg", [0.5, 20.5])
def test_chroma_refuses_cfg_outside_1_to_20_and_says_so(cfg):
    assert field_refusal("cfg", model="chroma", cfg=cfg).allowed == "a number from 1 to 20"


@pytest.mark.parametrize("steps", [10, 75])
def test_chroma_accepts_steps_from_10_to_75(steps):
    assert build(model="chroma", steps=steps).steps == steps


@pytest.mark.parametrize("steps", [9, 76])
def test_chroma_refuses_steps_outside_10_to_75_and_says_so(steps):
    error = field_refusal("steps", model="chroma", steps=steps)
    assert error.sentence() == f"steps {steps} is not allowed: a whole number from 10 to 75."


@pytest.mark.parametrize("sampler", CHROMA.samplers)
def test_chroma_accepts_each_of_its_twelve_samplers(sampler):
    assert build(model="chroma", sampler=sampler).sampler == sampler


@pytest.mark.parametrize("scheduler", CHROMA.schedulers)
def test_chroma_accepts_each_of_its_schedulers(scheduler):
    assert build(model="chroma", scheduler=scheduler).scheduler == scheduler


def test_chroma_refuses_an_unknown_sampler_and_lists_its_samplers():
    error = field_refusal("sampler", model="chroma", sampler="ddim")
    assert "'ddim'" in error.sentence()
    assert all(name in error.sentence() for name in CHROMA.samplers)


def test_a_sampler_is_read_in_any_case():
    assert build("a fox --model chroma --sampler Euler_A").sampler == "euler_a"


def test_chroma_keeps_a_negative_prompt():
    assert build("a fox --model chroma --no blur").negative_prompt == "blur"


# --- flux-schnell ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [512, 2048])
def test_flux_schnell_accepts_sides_of_512_and_2048(size):
    assert build(width=size, height=size).width == size


@pytest.mark.parametrize("size", [504, 2056])
def test_flux_schnell_refuses_a_side_outside_512_to_2048(size):
    assert field_refusal("width", width=size).allowed == "a whole number from 512 to 2048"


def test_flux_schnell_refuses_a_side_that_is_not_a_multiple_of_8_and_says_so():
    error = field_refusal("height", width=1024, height=1020)
    assert error.sentence() == "height 1020 is not allowed: a multiple of 8 for flux-schnell."


@pytest.mark.parametrize("steps", [1, 8])
def test_flux_schnell_accepts_steps_from_1_to_8(steps):
    assert build(steps=steps).steps == steps


@pytest.mark.parametrize("steps", [0, 9])
def test_flux_schnell_refuses_steps_outside_1_to_8_and_says_so(steps):
    error = field_refusal("steps", steps=steps)
    assert error.sentence() == f"steps {steps} is not allowed: a whole number from 1 to 8."


def test_flux_schnell_refuses_a_negative_prompt_and_says_so():
    error = refusal("a fox --no blur")
    assert "flux-schnell takes no negative prompt" in error.sentence()
    assert "chroma" in error.sentence() and "kolors" in error.sentence()


def test_flux_schnell_refuses_a_negative_prompt_given_as_an_option_too():
    assert "takes no negative prompt" in refusal(negative_prompt="blur").sentence()


def test_flux_schnell_refuses_a_cfg_and_says_so():
    assert refusal("a fox --cfg 3").sentence() == "flux-schnell takes no cfg (guidance); remove --cfg."


def test_flux_schnell_refuses_a_sampler_other_than_euler():
    assert field_refusal("sampler", sampler="heun").allowed == "one of euler for flux-schnell"


def test_flux_schnell_refuses_a_scheduler_other_than_normal():
    assert field_refusal("scheduler", scheduler="karras").allowed == "one of normal for flux-schnell"


# --- kolors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [0, 20])
def test_kolors_accepts_cfg_from_0_to_20(cfg):
    assert build(model="kolors", cfg=cfg).cfg == cfg


def test_kolors_refuses_cfg_above_20():
    assert field_refusal("cfg", model="kolors", cfg=21).allowed == "a number from 0 to 20"


@pytest.mark.parametrize("steps", [1, 50])
def test_kolors_accepts_steps_from_1_to_50(steps):
    assert build(model="kolors", steps=steps).steps == steps


def test_kolors_refuses_51_steps():
    assert field_refusal("steps", model="kolors", steps=51).allowed == "a whole number from 1 to 50"


@pytest.mark.parametrize("samples", [1, 10])
def test_kolors_makes_1_to_10_images(samples):
    assert build(f"a fox --model kolors --n {samples}").samples == samples


@pytest.mark.parametrize("samples", [0, 11])
def test_kolors_refuses_a_count_of_images_outside_1_to_10(samples):
    assert field_refusal("samples", model="kolors", samples=samples).allowed == "a whole number from 1 to 10"


@pytest.mark.parametrize("size", [512, 2048])
def test_kolors_accepts_sides_of_512_and_2048(size):
    assert build(model="kolors", width=size, height=size).height == size


def test_kolors_keeps_a_negative_prompt():
    assert build("a fox --model kolors --no text, watermark").negative_prompt == "text, watermark"


# --- the model ------------------------------------------------------------------------------


def test_a_model_is_chosen_with_the_model_flag():
    assert build("a fox --model kolors").model == "kolors"


def test_a_model_alias_gives_the_model_s_own_name():
    assert build("a fox --model Flux").model == "flux-schnell"


def test_an_unknown_model_is_refused_naming_every_offered_one():
    error = field_refusal("model", model="dall-e")
    assert error.sentence() == "model 'dall-e' is not allowed: one of flux-schnell, chroma, kolors."


def test_a_model_that_is_not_text_is_refused():
    assert field_refusal("model", model=3).value == 3


# --- aspect ratios ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("1:1", (1024, 1024)),
        ("3:4", (896, 1152)),
        ("5:8", (832, 1216)),
        ("9:16", (768, 1344)),
        ("9:21", (640, 1536)),
        ("4:3", (1152, 896)),
        ("3:2", (1216, 832)),
        ("16:9", (1344, 768)),
        ("21:9", (1536, 640)),
    ],
)
def test_each_short_preset_gives_its_documented_size(ratio, size):
    request = build(f"a fox --ar {ratio}")
    assert (request.width, request.height, request.aspect_ratio) == (*size, ratio)


def test_a_preset_s_long_form_works_as_segmind_writes_it():
    request = build(aspect_ratio="16:9 landscape 1344x768")
    assert (request.width, request.height, request.aspect_ratio) == (1344, 768, "16:9")


def test_the_aspect_flag_is_another_name_for_ar():
    assert build("a fox --aspect 3:2").aspect_ratio == "3:2"


def test_chroma_9_21_is_768_by_1840_keeping_the_ratio():
    request = build("a fox --model chroma --ar 9:21")
    assert (request.width, request.height, request.aspect_ratio) == (768, 1840, "9:21")


def test_chroma_21_9_is_1840_by_768_keeping_the_ratio():
    request = build("a fox --model chroma --ar 21:9")
    assert (request.width, request.height) == (1840, 768)


def test_a_custom_ratio_gives_about_a_megapixel_at_that_ratio():
    request = build("a fox --ar 7:3")
    assert (request.width, request.height, request.aspect_ratio) == (1536, 640, "7:3")


@pytest.mark.parametrize("text", ["2x1", "2/1", "2 : 1"])
def test_a_custom_ratio_may_be_written_with_x_or_slash_or_spaces(text):
    assert build(aspect_ratio=text).aspect_ratio == "2:1"


def test_a_custom_ratio_whose_size_breaks_the_model_s_limits_is_refused_and_says_so():
    error = field_refusal("aspect_ratio", "a fox --model chroma --ar 4:1")
    assert "768 to 2048" in error.sentence()


def test_a_custom_ratio_on_chroma_raises_its_short_side_to_768_like_the_presets():
    request = build("a fox --model chroma --ar 7:3")
    assert (request.width, request.height, request.aspect_ratio) == (1840, 768, "7:3")


def test_two_spellings_of_one_flag_are_refused_naming_both():
    with pytest.raises(ImagineError, match="--ar and --aspect both set aspect_ratio"):
        build("a fox --ar 1:1 --aspect 2:1")


def test_an_extreme_custom_ratio_is_refused():
    field_refusal("aspect_ratio", aspect_ratio="20:1")


@pytest.mark.parametrize("text", ["wide", "16:0", "0:9", "1:1:1", "1000:1"])
def test_a_ratio_that_is_not_w_colon_h_is_refused_showing_some_presets(text):
    error = field_refusal("aspect_ratio", aspect_ratio=text)
    assert "W:H such as 1:1" in error.sentence()


def test_width_and_height_give_a_custom_aspect_ratio():
    request = build(width=1216, height=832)
    assert (request.width, request.height, request.aspect_ratio) == (1216, 832, "custom")


def test_a_width_alone_keeps_the_default_height():
    request = build(width=512)
    assert (request.width, request.height) == (512, 1024)


def test_aspect_ratio_custom_with_a_width_and_height_is_accepted():
    request = build(aspect_ratio="custom", width=800, height=600)
    assert (request.width, request.height, request.aspect_ratio) == (800, 600, "custom")


def test_an_aspect_ratio_and_a_width_together_are_refused_and_say_so():
    error = refusal("a fox --ar 16:9", width=1024)
    assert error.sentence() == "Give either an aspect ratio or a width and height, not both."


def test_the_w_and_h_flags_set_width_and_height():
    request = build("a fox --w 640 --h 960")
    assert (request.width, request.height) == (640, 960)


# --- flags and options together ---------------------------------------------------------------


def test_an_option_and_a_flag_that_agree_are_fine():
    assert build("a fox --seed 5", seed=5).seed == 5


def test_an_option_and_a_flag_that_disagree_are_refused_naming_both_values():
    error = refusal("a fox --steps 4", steps=8)
    assert error.sentence() == "steps is given twice (8 and '4'); give it once."


def test_a_flag_may_set_a_field_the_options_leave_out():
    request = build("a fox --steps 2", seed=5)
    assert (request.steps, request.seed) == (2, 5)


@pytest.mark.parametrize("empty", [None, ""])
def test_an_option_left_empty_counts_as_not_given(empty):
    assert build(steps=empty, model=empty).steps == 4


def test_an_unknown_option_is_refused_naming_it():
    assert refusal(zoom=2).sentence() == "Unknown option 'zoom'."


def test_the_prompt_cannot_also_come_as_an_option():
    assert "Unknown option 'prompt'" in refusal(prompt="a cat").sentence()


def test_an_unknown_flag_is_refused_suggesting_the_closest_one():
    with pytest.raises(UnknownFlag, match=r"Did you mean --steps\?"):
        build("a fox --stesp 5")


def test_a_repeated_flag_is_refused():
    with pytest.raises(ImagineError, match="given twice"):
        build("a fox --seed 1 --seed 2")


def test_em_dash_flags_work_in_a_whole_request():
    request = build("a fox —ar 16:9 —seed 7")
    assert (request.prompt, request.aspect_ratio, request.seed) == ("a fox", "16:9", 7)


def test_words_after_a_number_flag_make_its_value_wrong_and_the_sentence_shows_them():
    error = field_refusal("steps", "a fox --steps 4 in the snow")
    assert "'4 in the snow'" in error.sentence()


# --- numbers --------------------------------------------------------------------------------


def test_numbers_from_flags_are_read_from_text():
    request = build("a fox --model chroma --cfg 4.5 --steps 20")
    assert (request.cfg, request.steps) == (4.5, 20)


def test_a_fractional_step_count_is_refused_as_not_whole():
    assert field_refusal("steps", steps=2.5).allowed == "a whole number from 1 to 8"


def test_a_fractional_step_count_in_text_is_refused_as_not_whole():
    assert field_refusal("steps", "a fox --steps 2.5").allowed == "a whole number from 1 to 8"


def test_a_whole_float_counts_as_the_whole_number():
    assert build(steps=3.0).steps == 3


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_a_number(value):
    field_refusal("steps", steps=value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", float("nan"), float("inf")])
def test_nan_and_infinity_are_refused(value):
    field_refusal("cfg", model="chroma", cfg=value)


def test_a_number_of_a_thousand_digits_is_refused_not_a_crash():
    # Regression: math.isfinite(10**1000) raised OverflowError.
    error = field_refusal("steps", steps=10**1000)
    assert "from 1 to 8" in error.sentence()


def test_a_thousand_digit_number_in_a_flag_is_refused_not_a_crash():
    field_refusal("seed", "a fox --seed " + "9" * 1000)


def test_an_integer_too_long_to_print_is_refused_with_a_short_sentence():
    # Regression: str() of an int over 4300 digits raised ValueError inside the error itself.
    error = field_refusal("sampler", sampler=10**5000)
    assert len(error.sentence()) < 200


def test_an_integer_too_long_to_print_as_an_unknown_option_name_is_refused():
    with pytest.raises(ImagineError, match="Unknown option"):
        build_request("a fox", {10**5000: 1}, CATALOG)


def test_an_option_too_long_to_print_that_a_flag_also_gives_is_refused():
    with pytest.raises(ImagineError, match="given twice"):
        build_request("a fox --seed 5", {"seed": 10**5000}, CATALOG)


def test_a_list_where_a_number_belongs_is_refused_showing_the_list():
    # The sentence shows the value given, not its type's name ("steps 'list' ...").
    assert (
        field_refusal("steps", steps=[1, 2]).sentence()
        == "steps [1, 2] is not allowed: a number from 1 to 8."
    )


# --- format and quality -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kept"), [("png", "png"), ("JPEG", "jpeg"), ("jpg", "jpeg"), ("webp", "webp")]
)
def test_the_image_format_is_png_jpeg_or_webp_with_jpg_read_as_jpeg(given, kept):
    assert build(f"a fox --format {given}").image_format == kept


def test_another_image_format_is_refused_listing_the_three():
    error = field_refusal("image_format", image_format="gif")
    assert error.sentence() == "image_format 'gif' is not allowed: one of png, jpeg, webp."


def test_image_quality_outside_the_model_s_range_is_refused():
    assert field_refusal("image_quality", image_quality=101).allowed == "a whole number from 1 to 100"


def test_kolors_accepts_image_quality_0():
    assert build(model="kolors", image_quality=0).image_quality == 0


# --- the prompt --------------------------------------------------------------------------------


def test_an_empty_prompt_is_refused_with_an_example():
    assert "The prompt is empty" in refusal("").sentence()


def test_a_prompt_of_only_flags_is_empty():
    assert "The prompt is empty" in refusal("--seed 5").sentence()


def test_a_prompt_of_only_invisible_characters_is_empty():
    assert "The prompt is empty" in refusal("\u200b\u202e \t\x00").sentence()


def test_a_prompt_of_2000_characters_is_accepted():
    assert len(build("x" * MAX_PROMPT_CHARS).prompt) == MAX_PROMPT_CHARS


def test_a_prompt_over_2000_characters_is_refused_giving_its_length_and_the_limit():
    error = field_refusal("prompt", "x" * (MAX_PROMPT_CHARS + 1))
    assert "2001 characters" in error.sentence()
    assert error.sentence() == "prompt of 2001 characters is not allowed: at most 2000 characters."


def test_the_prompt_length_is_counted_after_cleaning():
    assert build("x" * MAX_PROMPT_CHARS + "\u200b" * 50).prompt == "x" * MAX_PROMPT_CHARS


def test_a_prompt_that_is_not_text_is_refused():
    with pytest.raises(RequestError) as caught:
        build_request(None, None, CATALOG)  # type: ignore[arg-type]
    assert caught.value.sentence() == "prompt None is not allowed: text."


def test_the_prompt_is_cleaned_of_control_and_bidi_characters():
    assert build("a\x00 red\u202e fox\u200b\n\n in snow").prompt == "a red fox in snow"


def test_the_negative_prompt_is_cleaned_too():
    assert build("a fox --model chroma --no blur\u200b\x07ry").negative_prompt == "blur ry"


def test_a_negative_prompt_of_only_invisible_characters_counts_as_none():
    assert build(model="chroma", negative_prompt="\u200b\u200c").negative_prompt is None


# --- clean_text ----------------------------------------------------------------------------------


def test_clean_text_collapses_runs_of_whitespace_to_one_space():
    assert clean_text("  a \t\n b   c ") == "a b c"


def test_clean_text_drops_zero_width_and_bidi_override_characters():
    assert clean_text("ev\u200bil\u202etxt.exe\u2066\ufeff") == "eviltxt.exe"


def test_clean_text_drops_the_arabic_letter_mark_like_the_other_bidi_marks():
    # Regression: U+061C (a bidi mark, like U+200E and U+200F) was kept.
    assert clean_text("a\u061cb\u200ec\u200fd") == "abcd"


def test_clean_text_turns_control_characters_into_spaces():
    assert clean_text("a\x00b\x1bc\x7fd") == "a b c d"


def test_clean_text_turns_a_lone_surrogate_into_a_space():
    assert clean_text("a\ud800b") == "a b"


def test_clean_text_normalises_to_nfc():
    assert clean_text("cafe\u0301") == "caf\u00e9"


def test_clean_text_keeps_right_to_left_scripts_and_emoji():
    assert clean_text("قطة 🐈 חתול") == "قطة 🐈 חתול"


# --- an admin's narrowing ----------------------------------------------------------------------


def test_a_model_the_admin_did_not_allow_is_refused_naming_the_allowed_ones():
    catalog = CATALOG.narrowed(allowed_models=("flux-schnell", "kolors"))
    error = field_refusal("model", catalog=catalog, model="chroma")
    assert error.allowed == "one of flux-schnell, kolors"


def test_steps_above_the_admin_s_max_are_refused():
    catalog = CATALOG.narrowed(max_steps=30)
    assert field_refusal("steps", catalog=catalog, model="chroma", steps=31).allowed == (
        "a whole number from 10 to 30"
    )


def test_the_default_steps_come_down_to_the_admin_s_max():
    assert build(catalog=CATALOG.narrowed(max_steps=30), model="chroma").steps == 30


def test_samples_above_the_admin_s_max_are_refused():
    catalog = CATALOG.narrowed(max_samples=2)
    assert field_refusal("samples", catalog=catalog, model="kolors", samples=3).allowed == (
        "a whole number from 1 to 2"
    )


def test_a_size_above_the_admin_s_max_pixels_is_refused_naming_the_cap():
    catalog = CATALOG.narrowed(max_pixels=1_000_000)
    error = field_refusal("size", catalog=catalog, width=1024, height=1024)
    assert error.sentence() == "size '1024x1024' is not allowed: at most 1,000,000 pixels on this server."


def test_the_default_size_shrinks_to_fit_the_admin_s_max_pixels():
    # Regression: with max_pixels under 1024x1024 every request without a size was refused.
    request = build(catalog=CATALOG.narrowed(max_pixels=1_000_000), model="chroma")
    assert request.width * request.height <= 1_000_000
    assert request.width == request.height
    assert request.width % 8 == 0 and request.width in CHROMA.width


def test_a_preset_shrinks_to_fit_the_admin_s_max_pixels_keeping_its_ratio():
    request = build("a fox --ar 16:9", catalog=CATALOG.narrowed(max_pixels=800_000))
    assert request.width * request.height <= 800_000
    assert request.width / request.height == pytest.approx(16 / 9, rel=0.03)


def test_a_custom_ratio_shrinks_to_fit_the_admin_s_max_pixels():
    request = build("a fox --ar 7:3", catalog=CATALOG.narrowed(max_pixels=800_000))
    assert request.width * request.height <= 800_000
    assert request.aspect_ratio == "7:3"


def test_a_preset_that_cannot_shrink_enough_is_refused_naming_the_cap():
    error = field_refusal(
        "size", "a fox --ar 9:21", catalog=CATALOG.narrowed(max_pixels=600_000), model="kolors"
    )
    assert "at most 600,000 pixels" in error.sentence()


def test_kolors_within_the_admin_s_max_pixels_is_accepted_as_given():
    catalog = CATALOG.narrowed(max_pixels=1_000_000)
    assert build(catalog=catalog, model="kolors", width=1000, height=1000).width == 1000


def test_a_negative_prompt_that_is_not_text_is_refused():
    with pytest.raises(RequestError, match="negative_prompt"):
        build_request("a fox --model chroma", {"negative_prompt": 10**5000}, CATALOG)


def test_an_aspect_ratio_that_is_not_text_is_refused():
    with pytest.raises(RequestError, match="aspect_ratio"):
        build_request("a fox", {"aspect_ratio": 10**5000}, CATALOG)
