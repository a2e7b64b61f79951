"""A Segmind-style JSON body -> one validated GenerationParams, with the catalog's limits.

Limits and defaults come from bot.core.catalog (one source for the bot and the worker).
Field names are Segmind's for each model; Kolors' output_format / output_quality /
number_of_images and the other models' image_format / image_quality / samples are accepted
on every model. A field the model does not take is refused, as is a value out of range: the
error sentence names the field, the value and what is allowed. No torch import here.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from bot.core.catalog import IMAGE_FORMATS, MAX_PROMPT_CHARS, SEED_MAX, ModelSpec, Range
from bot.core.errors import RequestError
from bot.worker.samplers import STOCHASTIC_SAMPLERS, SamplerError, SamplerTable, resolve

# Segmind's documented default seeds (its API pages); the bot always sends its own.
DEFAULT_SEEDS: dict[str, int] = {"flux-schnell": 123456789, "chroma": 123456789, "kolors": 441234134}
DEFAULT_SIZE = 1024

ALIASES: dict[str, str] = {
    "number_of_images": "samples",
    "output_format": "image_format",
    "output_quality": "image_quality",
}
COMMON_FIELDS = frozenset({
    "prompt", "seed", "steps", "width", "height", "aspect_ratio", "sampler_name", "scheduler",
    "samples", "image_format", "image_quality", "base64", "variation_seed",
    "variation_strength", *ALIASES,
})


class ParamError(ValueError):
    """A request body the worker refuses (HTTP 400); str() is the sentence for the client."""


@dataclass(frozen=True)
class GenerationParams:
    """Everything one generation needs, validated; sizes are the exact output size."""

    model: str
    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    steps: int
    cfg: float | None
    sampler: str
    schedule: str
    scheduler_class: str
    scheduler_overrides: tuple[tuple[str, Any], ...]
    seed: int
    samples: int
    image_format: str
    image_quality: int
    base64: bool
    variation_seed: int | None = None
    variation_strength: float = 0.0

    def seeds(self) -> list[int]:
        """The seed of each sample: seed, seed+1, ... (wrapping past 2**32-1)."""
        return [(self.seed + i) % (SEED_MAX + 1) for i in range(self.samples)]

    def scheduler_text(self) -> str:
        """The diffusers scheduler this request runs, as 'Class(option=value, ...)'."""
        options = ", ".join(f"{k}={v}" for k, v in self.scheduler_overrides)
        return f"{self.scheduler_class}({options})"

    def variation_seeds(self) -> list[int | None]:
        """The variation seed of each sample: variation_seed, variation_seed+1, ... or None."""
        if self.variation_seed is None:
            return [None] * self.samples
        return [(self.variation_seed + i) % (SEED_MAX + 1) for i in range(self.samples)]


def allowed_fields(spec: ModelSpec) -> frozenset[str]:
    """The JSON fields `spec`'s endpoint accepts."""
    extra = set()
    if spec.negative_prompt:
        extra.add("negative_prompt")
    if spec.takes_cfg:
        extra.add("cfg")
    if spec.name == "flux-schnell":
        extra.add("denoise")
    return COMMON_FIELDS | extra


def parse_body(spec: ModelSpec, body: Any, table: SamplerTable) -> GenerationParams:
    """Validate a decoded JSON body for `spec`; raises ParamError with the client's sentence."""
    if not isinstance(body, dict):
        raise ParamError("The body must be a JSON object of the model's fields.")
    unknown = sorted(str(k) for k in body if k not in allowed_fields(spec))
    if unknown:
        raise ParamError(
            f"{spec.name} does not take {', '.join(repr(k[:40]) for k in unknown[:5])}; "
            f"it takes {', '.join(sorted(allowed_fields(spec)))}."
        )
    given = _merge_aliases(body)
    try:
        return _params(spec, given, table)
    except RequestError as exc:
        raise ParamError(exc.user_message) from None
    except SamplerError as exc:
        raise ParamError(str(exc)) from None


def _merge_aliases(body: dict[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in body.items() if v is not None}
    for alias, name in ALIASES.items():
        if alias in given:
            value = given.pop(alias)
            if name in given and given[name] != value:
                raise ParamError(f"{alias} and {name} are the same setting; give one of them.")
            given[name] = value
    return given


def _params(spec: ModelSpec, given: dict[str, Any], table: SamplerTable) -> GenerationParams:
    prompt = given.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ParamError("prompt is required: a non-empty string describing the image.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ParamError(f"prompt is {len(prompt)} characters long; at most {MAX_PROMPT_CHARS}.")
    negative = given.get("negative_prompt", spec.default_negative_prompt)
    if negative is not None and not isinstance(negative, str):
        raise RequestError("negative_prompt", negative, "a string")
    if negative is not None and len(negative) > MAX_PROMPT_CHARS:
        raise ParamError(
            f"negative_prompt is {len(negative)} characters long; at most {MAX_PROMPT_CHARS}."
        )
    cfg = None
    if spec.cfg is not None:
        cfg = _number("cfg", given.get("cfg", spec.default_cfg), spec.cfg, float)
    if "denoise" in given and _number("denoise", given["denoise"], Range(0, 1), float) != 1:
        raise ParamError(
            "denoise below 1 needs an input image, and this worker does text to image only: "
            "send denoise 1 or leave it out."
        )
    width, height = _size(spec, given)
    choice = resolve(
        table, given.get("sampler_name"), given.get("scheduler"),
        spec.default_sampler, spec.default_scheduler,
    )
    image_format = _format(given.get("image_format", spec.default_format))
    variation_seed, strength = _variation(given)
    samples = int(_number("samples", given.get("samples", 1), spec.samples, int))
    as_base64 = _flag("base64", given.get("base64", False))
    if samples > 1 and not as_base64:
        raise ParamError(
            'samples above 1 need "base64": true, since an image answer holds one image; '
            "or make one request per seed."
        )
    return GenerationParams(
        model=spec.name,
        prompt=prompt,
        negative_prompt=negative or None,
        width=width,
        height=height,
        steps=int(_number("steps", given.get("steps", spec.default_steps), spec.steps, int)),
        cfg=cfg,
        sampler=choice.sampler,
        schedule=choice.schedule,
        scheduler_class=choice.scheduler_class,
        scheduler_overrides=tuple(sorted(choice.overrides.items())),
        seed=int(_number("seed", given.get("seed", DEFAULT_SEEDS.get(spec.name, 0)),
                         Range(0, SEED_MAX), int)),
        samples=samples,
        image_format=image_format,
        image_quality=int(_number("image_quality",
                                  given.get("image_quality", spec.default_quality),
                                  spec.quality, int)),
        base64=as_base64,
        variation_seed=variation_seed,
        variation_strength=strength,
    )


def _size(spec: ModelSpec, given: dict[str, Any]) -> tuple[int, int]:
    """Segmind's rule: a named aspect_ratio fixes the size; "custom" (or none) uses width/height."""
    ratio = given.get("aspect_ratio")
    if ratio is not None and not isinstance(ratio, str):
        raise RequestError("aspect_ratio", ratio, "a preset name or custom")
    if ratio is not None and ratio.strip().lower() != "custom":
        preset = spec.preset(ratio)
        if preset is None:
            names = ", ".join(["custom", *(p.label for p in spec.presets())])
            raise RequestError("aspect_ratio", ratio, f"one of {names}")
        width, height = preset.width, preset.height
    else:
        width = int(_number("width", given.get("width", DEFAULT_SIZE), spec.width, int))
        height = int(_number("height", given.get("height", DEFAULT_SIZE), spec.height, int))
    for name, value in (("width", width), ("height", height)):
        if value % spec.size_multiple:
            raise RequestError(name, value, f"a multiple of {spec.size_multiple}")
    if spec.max_pixels and width * height > spec.max_pixels:
        raise RequestError("size", f"{width}x{height}", f"at most {spec.max_pixels:,} pixels")
    return width, height


def _variation(given: dict[str, Any]) -> tuple[int | None, float]:
    has_seed, has_strength = "variation_seed" in given, "variation_strength" in given
    if has_seed != has_strength:
        raise ParamError("variation_seed and variation_strength (0 to 1) go together; give both.")
    if not has_seed:
        return None, 0.0
    seed = int(_number("variation_seed", given["variation_seed"], Range(0, SEED_MAX), int))
    strength = _number("variation_strength", given["variation_strength"], Range(0, 1), float)
    return seed, float(strength)


def _format(value: Any) -> str:
    key = value.strip().lower() if isinstance(value, str) else value
    key = "jpeg" if key == "jpg" else key
    if key not in IMAGE_FORMATS:
        raise RequestError("image_format", value, f"one of {', '.join(IMAGE_FORMATS)}")
    return str(key)


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise RequestError(name, value, "true or false")


def _number(name: str, value: Any, bounds: Range, kind: type) -> float:
    whole = "a whole number" if kind is int else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(name, value, f"{whole} from {bounds.text()}")
    if not math.isfinite(value) or (kind is int and value != int(value)):
        raise RequestError(name, value, f"{whole} from {bounds.text()}")
    if value not in bounds:
        raise RequestError(name, value, f"{whole} from {bounds.text()}")
    return float(value) if kind is float else int(value)


def batch_key(params: GenerationParams) -> Hashable | None:
    """What requests must share to run as one pipeline call; None: never batched.

    A stochastic sampler draws fresh noise each step from one generator for the whole call, so
    a batched image would not be the one its seed gives alone: those run on their own."""
    if params.sampler in STOCHASTIC_SAMPLERS:
        return None
    return (params.model, params.width, params.height, params.steps, params.cfg,
            params.scheduler_class, params.scheduler_overrides,
            params.negative_prompt is None)
