"""The catalog: every model's limits and defaults as Segmind documents them, presets, narrowing."""

from __future__ import annotations

import pytest

from bot.core.catalog import (
    ALL_MODELS,
    CHROMA,
    DEFAULT_MODEL,
    FLUX_SCHNELL,
    IMAGE_FORMATS,
    KOLORS,
    Catalog,
    Range,
)

PRESET_LABELS = (
    "1:1 square 1024x1024",
    "3:4 portrait 896x1152",
    "5:8 portrait 832x1216",
    "9:16 portrait 768x1344",
    "9:21 portrait 640x1536",
    "4:3 landscape 1152x896",
    "3:2 landscape 1216x832",
    "16:9 landscape 1344x768",
    "21:9 landscape 1536x640",
)


# --- the catalog as shipped ---------------------------------------------------------------


def test_the_catalog_offers_chroma_flux_schnell_and_kolors():
    assert set(Catalog().names) == {"chroma", "flux-schnell", "kolors"}


def test_the_shipped_default_model_is_flux_schnell():
    assert DEFAULT_MODEL == "flux-schnell"
    assert Catalog().default_model == "flux-schnell"


def test_the_image_formats_are_png_jpeg_and_webp():
    assert set(IMAGE_FORMATS) == {"png", "jpeg", "webp"}


def test_a_model_is_found_by_its_name_in_any_case_and_with_spaces_around():
    assert Catalog().get("  Chroma ") is CHROMA


def test_flux_and_schnell_are_aliases_of_flux_schnell():
    assert Catalog().get("flux") is FLUX_SCHNELL
    assert Catalog().get("schnell") is FLUX_SCHNELL


def test_an_unknown_model_name_finds_nothing():
    assert Catalog().get("dall-e") is None


# --- chroma ----------------------------------------------------------------------------------


def test_chroma_width_and_height_are_768_to_2048():
    assert (CHROMA.width.low, CHROMA.width.high) == (768, 2048)
    assert (CHROMA.height.low, CHROMA.height.high) == (768, 2048)


def test_chroma_cfg_is_1_to_20_with_default_7():
    assert (CHROMA.cfg.low, CHROMA.cfg.high) == (1, 20)
    assert CHROMA.default_cfg == 7


def test_chroma_steps_are_10_to_75_with_default_40():
    assert (CHROMA.steps.low, CHROMA.steps.high) == (10, 75)
    assert CHROMA.default_steps == 40


def test_chroma_has_the_twelve_segmind_samplers_including_the_ten_it_shows():
    shown = {
        "euler",
        "euler_a",
        "heun",
        "dpm_2",
        "dpm_2_a",
        "lms",
        "dpm_fast",
        "dpm_adaptive",
        "dpmpp_2s_a",
        "dpmpp_sde",
    }
    assert len(CHROMA.samplers) == 12
    assert len(set(CHROMA.samplers)) == 12
    assert shown <= set(CHROMA.samplers)


def test_chroma_schedulers_are_segmind_s_six_with_beta_the_default():
    assert set(CHROMA.schedulers) == {"normal", "karras", "exponential", "beta", "sgm_uniform", "simple"}
    assert CHROMA.default_scheduler == "beta"


def test_chroma_takes_a_negative_prompt_and_cfg():
    assert CHROMA.negative_prompt is True
    assert CHROMA.takes_cfg is True


# --- flux-schnell ----------------------------------------------------------------------------


def test_flux_schnell_width_and_height_are_512_to_2048_in_multiples_of_8():
    assert (FLUX_SCHNELL.width.low, FLUX_SCHNELL.width.high) == (512, 2048)
    assert (FLUX_SCHNELL.height.low, FLUX_SCHNELL.height.high) == (512, 2048)
    assert FLUX_SCHNELL.size_multiple == 8


def test_flux_schnell_steps_are_1_to_8_with_default_4():
    assert (FLUX_SCHNELL.steps.low, FLUX_SCHNELL.steps.high) == (1, 8)
    assert FLUX_SCHNELL.default_steps == 4


def test_flux_schnell_has_only_the_euler_sampler_and_normal_scheduler():
    assert FLUX_SCHNELL.samplers == ("euler",)
    assert FLUX_SCHNELL.default_sampler == "euler"
    assert FLUX_SCHNELL.schedulers == ("normal",)
    assert FLUX_SCHNELL.default_scheduler == "normal"


def test_flux_schnell_takes_no_negative_prompt_and_no_cfg():
    assert FLUX_SCHNELL.negative_prompt is False
    assert FLUX_SCHNELL.takes_cfg is False
    assert FLUX_SCHNELL.cfg is None
    assert FLUX_SCHNELL.default_cfg is None


# --- kolors ----------------------------------------------------------------------------------


def test_kolors_width_and_height_are_512_to_2048():
    assert (KOLORS.width.low, KOLORS.width.high) == (512, 2048)
    assert (KOLORS.height.low, KOLORS.height.high) == (512, 2048)


def test_kolors_cfg_is_0_to_20_with_default_6():
    assert (KOLORS.cfg.low, KOLORS.cfg.high) == (0, 20)
    assert KOLORS.default_cfg == 6


def test_kolors_steps_are_1_to_50_with_default_25():
    assert (KOLORS.steps.low, KOLORS.steps.high) == (1, 50)
    assert KOLORS.default_steps == 25


def test_kolors_makes_1_to_10_images_per_request():
    assert (KOLORS.samples.low, KOLORS.samples.high) == (1, 10)


def test_kolors_answers_in_webp_by_default():
    assert KOLORS.default_format == "webp"


def test_kolors_takes_a_negative_prompt():
    assert KOLORS.negative_prompt is True


# --- every model -----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_MODELS, ids=lambda s: s.name)
def test_every_default_lies_within_its_model_s_own_limits(spec):
    assert spec.default_steps in spec.steps
    assert spec.default_sampler in spec.samplers
    assert spec.default_scheduler in spec.schedulers
    assert spec.default_format in IMAGE_FORMATS
    assert spec.default_quality in spec.quality
    assert spec.samples.low == 1
    assert 1024 in spec.width and 1024 in spec.height
    if spec.takes_cfg:
        assert spec.default_cfg in spec.cfg


@pytest.mark.parametrize(("spec", "base"), [(FLUX_SCHNELL, 1), (KOLORS, 2), (CHROMA, 4)], ids=str)
def test_the_shipped_base_costs_are_flux_1_kolors_2_chroma_4(spec, base):
    assert spec.base_cost == base


def test_a_range_holds_both_of_its_ends_and_nothing_outside():
    r = Range(1, 8)
    assert all(value in r for value in (1, 8, 4.5))
    assert 0 not in r and 8.01 not in r


def test_a_range_reads_as_whole_numbers_where_it_can():
    assert Range(1, 20).text() == "1 to 20"
    assert Range(0.5, 7.5).text() == "0.5 to 7.5"


# --- aspect presets --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ALL_MODELS, ids=lambda s: s.name)
def test_every_model_offers_the_nine_segmind_presets(spec):
    assert [p.label for p in spec.presets()] == list(PRESET_LABELS)
    assert [p.ratio for p in spec.presets()] == [label.split()[0] for label in PRESET_LABELS]


@pytest.mark.parametrize("label", PRESET_LABELS)
def test_a_preset_is_found_by_its_short_form(label):
    ratio = label.split()[0]
    assert KOLORS.preset(ratio).label == label


@pytest.mark.parametrize("label", PRESET_LABELS)
def test_a_preset_is_found_by_its_long_form_in_any_case(label):
    assert KOLORS.preset(label.upper()).ratio == label.split()[0]


@pytest.mark.parametrize("label", PRESET_LABELS)
def test_flux_and_kolors_use_each_preset_s_documented_size(label):
    ratio, _, size = label.split()
    width, height = (int(n) for n in size.split("x"))
    for spec in (FLUX_SCHNELL, KOLORS):
        preset = spec.preset(ratio)
        assert (preset.width, preset.height) == (width, height)


@pytest.mark.parametrize("label", [lab for lab in PRESET_LABELS if not lab.startswith(("9:21", "21:9"))])
def test_chroma_uses_the_documented_size_of_every_preset_whose_sides_fit(label):
    ratio, _, size = label.split()
    width, height = (int(n) for n in size.split("x"))
    preset = CHROMA.preset(ratio)
    assert (preset.width, preset.height) == (width, height)


def test_chroma_9_21_keeps_the_ratio_and_raises_the_short_side_to_768():
    preset = CHROMA.preset("9:21")
    assert (preset.width, preset.height) == (768, 1840)
    assert preset.width / preset.height == pytest.approx(640 / 1536, rel=0.01)


def test_chroma_21_9_keeps_the_ratio_and_raises_the_short_side_to_768():
    preset = CHROMA.preset("21:9")
    assert (preset.width, preset.height) == (1840, 768)
    assert preset.width / preset.height == pytest.approx(1536 / 640, rel=0.01)


def test_chroma_9_21_is_still_found_by_segmind_s_long_form():
    assert CHROMA.preset("9:21 portrait 640x1536").width == 768


@pytest.mark.parametrize("spec", ALL_MODELS, ids=lambda s: s.name)
def test_every_fitted_preset_lies_within_its_model_s_size_limits(spec):
    for preset in spec.presets():
        assert preset.width in spec.width and preset.height in spec.height
        assert preset.width % spec.size_multiple == 0 and preset.height % spec.size_multiple == 0


def test_an_unknown_ratio_is_not_a_preset():
    assert CHROMA.preset("7:3") is None


# --- an admin's narrowing --------------------------------------------------------------------


def test_narrowing_to_allowed_models_drops_the_others():
    assert Catalog().narrowed(allowed_models=("kolors", "chroma")).names == ("chroma", "kolors")


def test_narrowing_away_the_default_model_makes_the_first_allowed_one_the_default():
    catalog = Catalog().narrowed(allowed_models=("kolors",))
    assert catalog.default_model == "kolors"


def test_narrowing_keeps_a_chosen_default_model_that_is_allowed():
    catalog = Catalog().narrowed(allowed_models=("kolors", "chroma"), default_model="chroma")
    assert catalog.default_model == "chroma"


def test_an_alias_of_a_model_narrowed_away_finds_nothing():
    assert Catalog().narrowed(allowed_models=("chroma",)).get("flux") is None


def test_max_steps_lowers_each_model_s_top_and_its_default_with_it():
    catalog = Catalog().narrowed(max_steps=20)
    chroma, kolors, flux = catalog.get("chroma"), catalog.get("kolors"), catalog.get("flux-schnell")
    assert (chroma.steps.high, chroma.default_steps) == (20, 20)
    assert (kolors.steps.high, kolors.default_steps) == (20, 20)
    assert (flux.steps.high, flux.default_steps) == (8, 4)  # already below: unchanged


def test_max_steps_below_a_model_s_minimum_leaves_only_that_minimum():
    chroma = Catalog().narrowed(max_steps=5).get("chroma")
    assert (chroma.steps.low, chroma.steps.high, chroma.default_steps) == (10, 10, 10)


def test_max_samples_lowers_each_model_s_top():
    catalog = Catalog().narrowed(max_samples=2)
    assert all(m.samples.high == 2 for m in catalog.models)


def test_max_samples_never_raises_a_model_s_own_top():
    assert Catalog().narrowed(max_samples=50).get("kolors").samples.high == 10
    assert Catalog().narrowed(max_samples=50).get("chroma").samples.high == 4


def test_max_pixels_is_recorded_on_every_model():
    catalog = Catalog().narrowed(max_pixels=1_000_000)
    assert all(m.max_pixels == 1_000_000 for m in catalog.models)


def test_max_pixels_scales_presets_down_keeping_their_ratio():
    kolors = Catalog().narrowed(max_pixels=700_000).get("kolors")
    for preset, original in zip(kolors.presets(), KOLORS.presets(), strict=True):
        assert preset.width * preset.height <= 700_000
        assert preset.width in kolors.width and preset.height in kolors.height
        assert preset.width / preset.height == pytest.approx(original.width / original.height, rel=0.02)


def test_a_preset_that_cannot_shrink_under_max_pixels_without_breaking_a_side_limit_is_left_as_is():
    # 9:21 at 600,000 px would be 496 px wide, under kolors' 512: the request is refused instead.
    kolors = Catalog().narrowed(max_pixels=600_000).get("kolors")
    preset = kolors.preset("9:21")
    assert (preset.width, preset.height) == (640, 1536)


def test_base_costs_from_config_replace_the_shipped_ones():
    catalog = Catalog().narrowed(base_costs={"chroma": 10})
    assert catalog.get("chroma").base_cost == 10
    assert catalog.get("kolors").base_cost == 2


def test_narrowing_leaves_the_shipped_catalog_as_it_was():
    Catalog().narrowed(allowed_models=("chroma",), max_steps=12, max_samples=1, max_pixels=800_000)
    assert Catalog().names == ("flux-schnell", "chroma", "kolors")
    assert CHROMA.steps.high == 75 and CHROMA.max_pixels is None
