"""/settings in the core: precedence, defaults skipped with a note, refusals, provenance."""

from __future__ import annotations

import pytest

from bot.core.catalog import Catalog
from bot.core.defaults import (
    Built,
    Defaults,
    Layers,
    Provenance,
    Source,
    build_with_defaults,
    check_new,
)
from bot.core.errors import NotAllowed, RequestError, SettingError
from bot.core.jobs import Actor, ReplyTarget

CATALOG = Catalog()
ANN = Actor("discord", "1001", "g1")
ADMIN = Actor("discord", "1003", "g1", is_admin=True)
HERE = ReplyTarget("discord", "c1", "g1")
NONE = Defaults()


def build(text: str, user: Defaults = NONE, workspace: Defaults = NONE,
          catalog: Catalog = CATALOG) -> Built:
    return build_with_defaults(text, None, catalog, Layers(user, workspace), word="server",
                               random_seed=lambda: 5)


# --- precedence -------------------------------------------------------------------------------

def test_a_typed_flag_wins_over_your_default_and_the_server_default():
    built = build("a fox --steps 2", Defaults(steps=6), Defaults(steps=3))

    assert built.request.steps == 2
    assert built.provenance.source("steps") is Source.TYPED


def test_your_default_wins_over_the_server_default():
    built = build("a fox", Defaults(model="kolors"), Defaults(model="chroma"))

    assert built.request.model == "kolors"
    assert built.provenance.source("model") is Source.USER


def test_the_server_default_applies_where_you_have_none():
    built = build("a fox", Defaults(steps=6), Defaults(aspect_ratio="16:9"))

    assert (built.request.width, built.request.height) == (1344, 768)
    assert built.provenance.source("aspect_ratio") is Source.WORKSPACE
    assert built.provenance.source("steps") is Source.USER


def test_the_model_default_applies_where_nobody_set_one():
    built = build("a fox")

    assert built.request.steps == 4
    assert built.provenance.source("steps") is Source.MODEL
    assert built.provenance.source("seed") is Source.RANDOM
    assert built.provenance.notes == ()


# --- defaults the model does not take: skipped with a note ----------------------------------

def test_a_cfg_default_is_skipped_with_a_note_for_a_model_that_takes_no_cfg():
    built = build("a fox", Defaults(cfg=7.0))

    assert built.request.cfg is None
    assert built.provenance.notes == (
        "Your default cfg 7 was skipped: flux-schnell takes no cfg.",)


def test_a_steps_default_past_the_typed_models_range_is_skipped_with_a_note():
    built = build("a fox --model flux-schnell", Defaults(steps=30))

    assert built.request.steps == 4
    assert built.provenance.notes == ("Your default steps 30 was skipped: flux-schnell takes "
                                      "a whole number from 1 to 8.",)


def test_the_server_default_applies_when_your_default_is_skipped():
    built = build("a fox", Defaults(steps=30), Defaults(steps=6))

    assert built.request.steps == 6
    assert built.provenance.source("steps") is Source.WORKSPACE
    assert len(built.provenance.notes) == 1


def test_a_default_model_this_server_no_longer_offers_is_skipped_with_a_note():
    narrowed = CATALOG.narrowed(allowed_models=("flux-schnell", "chroma"))

    built = build("a fox", workspace=Defaults(model="kolors"), catalog=narrowed)

    assert built.request.model == "flux-schnell"
    assert built.provenance.notes == ("The server default model 'kolors' was skipped: it is "
                                      "not offered here any more.",)


def test_a_default_aspect_gives_way_to_a_typed_width_and_height():
    built = build("a fox --w 768 --h 1024", Defaults(aspect_ratio="16:9"))

    assert (built.request.width, built.request.height) == (768, 1024)
    assert built.provenance.source("aspect_ratio") is Source.TYPED
    assert built.provenance.notes == ()


def test_a_negative_prompt_default_is_skipped_for_flux_and_used_for_kolors():
    flux = build("a fox", Defaults(negative_prompt="blur"))
    kolors = build("a fox --model kolors", Defaults(negative_prompt="blur"))

    assert flux.request.negative_prompt is None and len(flux.provenance.notes) == 1
    assert kolors.request.negative_prompt == "blur" and kolors.provenance.notes == ()


# --- setting values: strict, one sentence ------------------------------------------------------

def test_setting_an_unknown_setting_is_one_sentence_naming_the_settings():
    with pytest.raises(SettingError) as raised:
        check_new({"sampler": "euler"}, Defaults(), Defaults(), CATALOG)

    assert raised.value.sentence() == ("Unknown setting 'sampler'; the settings are model, "
                                       "aspect, steps, cfg, negative, format, visibility.")


def test_setting_steps_out_of_range_for_the_model_in_effect_is_refused():
    with pytest.raises(RequestError) as raised:
        check_new({"steps": "30"}, Defaults(), Defaults(), CATALOG)

    assert raised.value.sentence() == ("steps '30' is not allowed: flux-schnell takes a whole "
                                       "number from 1 to 8.")


def test_steps_are_checked_against_the_model_set_with_them():
    assert check_new({"model": "kolors", "steps": "30"}, Defaults(), Defaults(), CATALOG) == {
        "model": "kolors", "steps": 30}


def test_setting_an_unknown_model_is_refused_with_the_models_offered():
    with pytest.raises(RequestError) as raised:
        check_new({"model": "sdxl"}, Defaults(), Defaults(), CATALOG)

    assert raised.value.sentence() == ("model 'sdxl' is not allowed: this deployment offers "
                                       "flux-schnell, chroma, kolors.")


def test_setting_cfg_for_a_model_that_takes_none_is_refused():
    with pytest.raises(RequestError, match="flux-schnell takes no cfg"):
        check_new({"cfg": "5"}, Defaults(), Defaults(), CATALOG)


def test_provenance_reads_back_what_it_wrote_and_nothing_from_an_old_row():
    provenance = build("a fox", Defaults(steps=6)).provenance

    assert Provenance.from_json(provenance.to_json()) == provenance
    assert Provenance.from_json(None) == Provenance()


# --- through the service, on a real database ----------------------------------------------------

async def test_imagine_uses_stored_defaults_and_records_where_each_came_from(service):
    await service.user_settings.change(ADMIN, {"aspect": "16:9"}, workspace=True)
    await service.user_settings.change(ANN, {"steps": "6"})

    job = await service.imagine(ANN, "a fox", None, HERE)
    stored = await service.get_job(job.id)

    assert (stored.request.width, stored.request.steps) == (1344, 6)
    assert stored.provenance.source("aspect_ratio") is Source.WORKSPACE
    assert stored.provenance.source("steps") is Source.USER


async def test_a_refused_setting_stores_nothing_and_charges_nothing(service):
    before = await service.quota_status(ANN)

    with pytest.raises(RequestError):
        await service.user_settings.change(ANN, {"model": "kolors", "steps": "99"})

    assert (await service.user_settings.layers(ANN)).user == Defaults()
    assert (await service.quota_status(ANN)).balance == before.balance


async def test_only_admins_change_the_server_defaults(service):
    with pytest.raises(NotAllowed, match="Only admins can change the server defaults"):
        await service.user_settings.change(ANN, {"steps": "6"}, workspace=True)

    assert (await service.user_settings.layers(ANN)).workspace == Defaults()


async def test_server_defaults_cannot_be_set_from_a_direct_message(service):
    in_dm = Actor("discord", "1003", None, is_admin=True)

    with pytest.raises(SettingError, match="not in a direct message"):
        await service.user_settings.change(in_dm, {"steps": "6"}, workspace=True)


async def test_a_reroll_keeps_the_sources_and_its_new_seed_is_random(service):
    await service.user_settings.change(ANN, {"steps": "6"})
    first = await service.imagine(ANN, "a fox --seed 9", None, HERE)

    again = await service.reroll(ANN, first.id, HERE)

    assert again.provenance.source("steps") is Source.USER
    assert first.provenance.source("seed") is Source.TYPED
    assert again.provenance.source("seed") is Source.RANDOM


async def test_reset_forgets_only_the_named_default(service):
    await service.user_settings.change(ANN, {"model": "kolors", "steps": "30"})

    await service.user_settings.reset(ANN, ["steps"])

    assert (await service.user_settings.layers(ANN)).user == Defaults(model="kolors")
