"""Sampler and scheduler names map to diffusers honestly; anything else is refused with a list."""

from __future__ import annotations

from typing import Any

import pytest

from bot.worker.samplers import SamplerError, resolve, table_for
from tests.worker.support import Served, distance

FLOW_CASES = [
    ("euler", "normal", {"stochastic_sampling": False}),
    ("euler", "simple", {"stochastic_sampling": False}),
    ("euler", "sgm_uniform", {"stochastic_sampling": False}),
    ("euler", "karras", {"use_karras_sigmas": True}),
    ("euler", "exponential", {"use_exponential_sigmas": True}),
    ("euler", "beta", {"use_beta_sigmas": True}),  # scipy: in the worker extra
    ("euler_a", "normal", {"stochastic_sampling": True}),
    ("euler_a", "karras", {"stochastic_sampling": True, "use_karras_sigmas": True}),
]
KOLORS_CASES = [
    ("euler", "EulerDiscreteScheduler"),
    ("euler_a", "EulerAncestralDiscreteScheduler"),
    ("heun", "HeunDiscreteScheduler"),
    ("lms", "LMSDiscreteScheduler"),  # scipy
    ("dpm_2", "KDPM2DiscreteScheduler"),
    ("dpm_2_a", "KDPM2AncestralDiscreteScheduler"),
    ("dpmpp_2m", "DPMSolverMultistepScheduler"),
    ("dpmpp_sde", "DPMSolverSDEScheduler"),  # torchsde: in the worker extra
]


def _scheduler_of(engine: Any, model: str) -> Any:
    return engine.models[model].pipeline.scheduler


@pytest.mark.parametrize(("sampler", "schedule", "config"), FLOW_CASES)
def test_flux_runs_flow_match_euler_with_the_named_sampler_and_schedule(
    worker: Served, engine: Any, sampler: str, schedule: str, config: dict[str, bool]
) -> None:
    response = worker.small("flux-schnell", steps=3, sampler_name=sampler, scheduler=schedule)

    assert response.status_code == 200, response.text
    used = _scheduler_of(engine, "flux-schnell")
    assert type(used).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert {key: used.config[key] for key in config} == config
    assert response.headers["x-scheduler"].startswith("FlowMatchEulerDiscreteScheduler(")


def test_the_models_own_schedule_keeps_its_sigmas_unconverted(
    worker: Served, engine: Any
) -> None:
    worker.small("flux-schnell", scheduler="normal")

    used = _scheduler_of(engine, "flux-schnell")
    assert not (used.config.use_karras_sigmas or used.config.use_exponential_sigmas
                or used.config.use_beta_sigmas)


def test_a_sigma_schedule_changes_the_image(worker: Served) -> None:
    normal = worker.small("flux-schnell", steps=3, seed=4, scheduler="normal", image_format="png")
    karras = worker.small("flux-schnell", steps=3, seed=4, scheduler="karras", image_format="png")

    assert distance(normal.content, karras.content) > 0


@pytest.mark.parametrize(("sampler", "schedule"), [("euler_a", "karras"), ("euler", "exponential")])
def test_chroma_takes_the_flow_samplers_too(
    worker: Served, engine: Any, sampler: str, schedule: str
) -> None:
    response = worker.small("chroma", sampler_name=sampler, scheduler=schedule)

    assert response.status_code == 200, response.text
    used = _scheduler_of(engine, "chroma")
    assert used.config.stochastic_sampling is (sampler == "euler_a")
    assert used.config[f"use_{schedule}_sigmas"] is True


def test_chromas_default_schedule_is_beta(worker: Served, engine: Any) -> None:
    worker.post("chroma", {"prompt": "a fox", "width": 768, "height": 768, "steps": 10})

    assert _scheduler_of(engine, "chroma").config.use_beta_sigmas is True


def test_without_scipy_chromas_default_beta_is_refused_naming_scipy() -> None:
    table = table_for("chroma", installed=lambda package: package != "scipy")

    with pytest.raises(SamplerError, match="'beta' needs the scipy package"):
        resolve(table, None, None, default_sampler="euler", default_schedule="beta")


@pytest.mark.parametrize(("sampler", "class_name"), KOLORS_CASES)
def test_kolors_runs_the_diffusers_class_of_each_sampler_name(
    worker: Served, engine: Any, sampler: str, class_name: str
) -> None:
    response = worker.small("kolors", sampler_name=sampler)

    assert response.status_code == 200, response.text
    assert type(_scheduler_of(engine, "kolors")).__name__ == class_name


@pytest.mark.parametrize(("sampler", "class_name"), KOLORS_CASES)
def test_kolors_takes_segminds_scheduler_class_names(
    worker: Served, engine: Any, sampler: str, class_name: str
) -> None:
    response = worker.small("kolors", scheduler=class_name)

    assert response.status_code == 200, response.text
    assert type(_scheduler_of(engine, "kolors")).__name__ == class_name
    assert response.headers["x-scheduler"].startswith(class_name)


@pytest.mark.parametrize(
    ("model", "fields", "named"),
    [
        ("chroma", {"sampler_name": "heun"}, "'heun'"),
        ("chroma", {"sampler_name": "dpmpp_2m"}, "'dpmpp_2m'"),
        ("flux-schnell", {"sampler_name": "lms"}, "'lms'"),
        ("flux-schnell", {"scheduler": "ddim_uniform"}, "'ddim_uniform'"),
    ],
)
def test_flow_models_refuse_other_samplers_listing_what_they_accept(
    worker: Served, model: str, fields: dict[str, str], named: str
) -> None:
    response = worker.small(model, **fields)

    assert response.status_code == 400
    sentence = response.json()["error"]
    assert named in sentence
    assert "sampler_name euler, euler_a" in sentence
    assert "karras, exponential" in sentence


def test_kolors_refuses_a_sigma_schedule_it_does_not_run(worker: Served) -> None:
    response = worker.small("kolors", scheduler="karras")

    assert response.status_code == 400
    sentence = response.json()["error"]
    assert "'karras'" in sentence
    assert "EulerDiscreteScheduler" in sentence and "dpm_2_a" in sentence


def test_kolors_refuses_an_unknown_scheduler_class(worker: Served) -> None:
    response = worker.small("kolors", scheduler="UniPCMultistepScheduler")

    assert response.status_code == 400
    assert "'UniPCMultistepScheduler'" in response.json()["error"]


def test_kolors_refuses_a_sampler_name_and_scheduler_that_disagree(worker: Served) -> None:
    response = worker.small("kolors", sampler_name="euler", scheduler="HeunDiscreteScheduler")

    assert response.status_code == 400
    assert "name different samplers" in response.json()["error"]


def test_a_name_whose_package_is_missing_is_refused_naming_the_package() -> None:
    table = table_for("chroma", installed=lambda package: package != "scipy")

    with pytest.raises(SamplerError, match=r"'beta' needs the scipy package") as caught:
        resolve(table, "euler", "beta", "euler", "beta")
    assert "karras" in str(caught.value) and ", beta" not in str(caught.value)


def test_dpmpp_sde_without_torchsde_is_left_out_of_kolors_list() -> None:
    table = table_for("kolors", installed=lambda package: package != "torchsde")

    assert "dpmpp_sde" not in table.samplers
    with pytest.raises(SamplerError, match="torchsde"):
        resolve(table, "dpmpp_sde", None, "euler", "normal")


def test_the_health_answer_lists_each_models_samplers(worker: Served) -> None:
    samplers = worker.health().json()["samplers"]

    assert samplers["flux-schnell"]["sampler_name"] == ["euler", "euler_a"]
    assert "dpmpp_2m" in samplers["kolors"]["sampler_name"]
