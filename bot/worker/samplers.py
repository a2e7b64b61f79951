"""Sampler and scheduler names (ComfyUI's, as Segmind takes them) -> diffusers, honestly.

Flow-matching models (flux-schnell, chroma) run FlowMatchEulerDiscreteScheduler:

    sampler_name  euler        plain Euler steps
                  euler_a      the same scheduler with stochastic_sampling=True (fresh noise
                               each step, as ancestral Euler does)
    scheduler     normal, simple, sgm_uniform   the model's own (shifted) sigma schedule
                  karras       use_karras_sigmas=True
                  exponential  use_exponential_sigmas=True
                  beta         use_beta_sigmas=True (alpha = beta = 0.6; needs scipy)

Kolors (an SDXL-style UNet) takes a sampler, either by its short name in sampler_name or by
its diffusers class name in scheduler (Segmind's Kolors field); its sigma schedule is the
model's own ("normal"):

    euler EulerDiscreteScheduler         euler_a EulerAncestralDiscreteScheduler
    heun HeunDiscreteScheduler           lms LMSDiscreteScheduler (needs scipy)
    dpm_2 KDPM2DiscreteScheduler         dpm_2_a KDPM2AncestralDiscreteScheduler
    dpmpp_2m DPMSolverMultistepScheduler dpmpp_sde DPMSolverSDEScheduler (needs torchsde)

Anything else is refused with a sentence that lists what the model accepts on this worker:
never a silent substitution. This module imports neither torch nor diffusers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.catalog import KOLORS_SCHEDULER_CLASSES

FLOW_MODELS = ("flux-schnell", "chroma")
KOLORS_MODELS = ("kolors",)

FLOW_SAMPLERS: dict[str, dict[str, Any]] = {
    "euler": {"stochastic_sampling": False},
    "euler_a": {"stochastic_sampling": True},
}
_NO_SIGMA_CONVERSION = {
    "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
}
FLOW_SCHEDULES: dict[str, dict[str, Any] | None] = {
    "normal": None,  # None: keep the model's own schedule config untouched
    "simple": None,
    "sgm_uniform": None,
    "karras": {**_NO_SIGMA_CONVERSION, "use_karras_sigmas": True},
    "exponential": {**_NO_SIGMA_CONVERSION, "use_exponential_sigmas": True},
    "beta": {**_NO_SIGMA_CONVERSION, "use_beta_sigmas": True},
}
KOLORS_SAMPLERS = KOLORS_SCHEDULER_CLASSES
KOLORS_SCHEDULES: tuple[str, ...] = ("normal",)

# Samplers that draw fresh noise at every step (ancestral, SDE): their images depend on the
# generator's whole stream, so the fleet never batches them with other requests.
STOCHASTIC_SAMPLERS = frozenset({"euler_a", "dpm_2_a", "dpmpp_sde", "dpmpp_2s_a", "dpmpp_2m_sde"})

# Names that work only when an optional package is installed on the worker.
NEEDS_PACKAGE: dict[str, str] = {"beta": "scipy", "lms": "scipy", "dpmpp_sde": "torchsde"}


def package_installed(name: str) -> bool:
    """Whether the Python package `name` can be imported here."""
    return importlib.util.find_spec(name) is not None


class SamplerError(ValueError):
    """A sampler or scheduler this worker cannot run for the model; str() is the sentence."""


@dataclass(frozen=True)
class SamplerChoice:
    """A resolved sampler: the diffusers class and the config overrides to build it with."""

    sampler: str
    schedule: str
    scheduler_class: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SamplerTable:
    """What one model accepts on this worker, after checking the optional packages."""

    model: str
    samplers: tuple[str, ...]
    schedules: tuple[str, ...]
    missing: Mapping[str, str]  # name -> the package it needs and this worker lacks

    def accepts(self) -> str:
        """The sentence fragment listing what is accepted, for error bodies."""
        text = (
            f"{self.model} accepts sampler_name {', '.join(self.samplers)} and scheduler "
            f"{', '.join(self.schedules)} on this worker"
        )
        if self.model in KOLORS_MODELS:
            names = ", ".join(KOLORS_SAMPLERS[s] for s in self.samplers)
            text += f" (scheduler may also name the sampler's diffusers class: {names})"
        return text


def table_for(model: str, installed: Callable[[str], bool] = package_installed) -> SamplerTable:
    """The sampler table of `model`, leaving out names whose package is not installed."""
    if model in FLOW_MODELS:
        samplers, schedules = tuple(FLOW_SAMPLERS), tuple(FLOW_SCHEDULES)
    elif model in KOLORS_MODELS:
        samplers, schedules = tuple(KOLORS_SAMPLERS), KOLORS_SCHEDULES
    else:
        raise KeyError(model)
    missing = {
        name: NEEDS_PACKAGE[name]
        for name in (*samplers, *schedules)
        if name in NEEDS_PACKAGE and not installed(NEEDS_PACKAGE[name])
    }
    return SamplerTable(
        model=model,
        samplers=tuple(s for s in samplers if s not in missing),
        schedules=tuple(s for s in schedules if s not in missing),
        missing=missing,
    )


def resolve(
    table: SamplerTable, sampler_name: str | None, scheduler: str | None,
    default_sampler: str, default_schedule: str,
) -> SamplerChoice:
    """Map a request's sampler_name and scheduler to a diffusers scheduler, or raise SamplerError."""
    sampler, schedule = _split(table, sampler_name, scheduler)
    sampler = sampler or default_sampler
    schedule = schedule or default_schedule
    for kind, name, allowed in (
        ("sampler_name", sampler, table.samplers), ("scheduler", schedule, table.schedules)
    ):
        if name in table.missing:
            raise SamplerError(
                f"{kind} {name!r} needs the {table.missing[name]} package, which this worker "
                f"does not have (pip install {table.missing[name]}); {table.accepts()}."
            )
        if name not in allowed:
            raise SamplerError(f"{kind} {name!r} is not available: {table.accepts()}.")
    if table.model in KOLORS_MODELS:
        return SamplerChoice(sampler, schedule, KOLORS_SAMPLERS[sampler])
    overrides = dict(FLOW_SAMPLERS[sampler])
    conversion = FLOW_SCHEDULES[schedule]
    if conversion is not None:
        overrides.update(conversion)
    return SamplerChoice(sampler, schedule, "FlowMatchEulerDiscreteScheduler", overrides)


def _split(
    table: SamplerTable, sampler_name: str | None, scheduler: str | None
) -> tuple[str | None, str | None]:
    """Kolors' scheduler field may name a sampler (class or short name); sort that out."""
    sampler = _clean(sampler_name, "sampler_name")
    schedule = _clean(scheduler, "scheduler")
    if table.model not in KOLORS_MODELS or schedule is None or schedule in KOLORS_SCHEDULES:
        return sampler, schedule
    by_class = {cls.lower(): short for short, cls in KOLORS_SAMPLERS.items()}
    named = by_class.get(schedule, schedule if schedule in KOLORS_SAMPLERS else None)
    if named is None:
        raise SamplerError(f"scheduler {scheduler!r} is not available: {table.accepts()}.")
    if sampler is not None and sampler != named:
        raise SamplerError(
            f"sampler_name {sampler_name!r} and scheduler {scheduler!r} name different "
            f"samplers; give one of them. {table.accepts()[0].upper()}{table.accepts()[1:]}."
        )
    return named, None


def _clean(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SamplerError(f"{name} must be a non-empty string.")
    return value.strip().lower()
