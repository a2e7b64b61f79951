"""Models, their limits and defaults, kept as data (from Segmind's API pages in shared/seeds)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

ImageFormat = str  # "png" | "jpeg" | "webp"
IMAGE_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp")
SEED_MAX = 2**32 - 1
MAX_PROMPT_CHARS = 2000


@dataclass(frozen=True)
class Range:
    """An inclusive numeric range."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def text(self) -> str:
        low = int(self.low) if float(self.low).is_integer() else self.low
        high = int(self.high) if float(self.high).is_integer() else self.high
        return f"{low} to {high}"


@dataclass(frozen=True)
class AspectPreset:
    """A named aspect ratio with the exact size it maps to for one model."""

    ratio: str  # short form, "3:4"
    label: str  # Segmind's long form, "3:4 portrait 896x1152"
    width: int
    height: int


# Segmind's chroma presets. 9:21 and 21:9 are 640 px on their short side, below chroma's
# documented 768 minimum: we keep the ratio and scale the short side up to 768 (see README).
_SEGMIND_PRESETS: tuple[AspectPreset, ...] = (
    AspectPreset("1:1", "1:1 square 1024x1024", 1024, 1024),
    AspectPreset("3:4", "3:4 portrait 896x1152", 896, 1152),
    AspectPreset("5:8", "5:8 portrait 832x1216", 832, 1216),
    AspectPreset("9:16", "9:16 portrait 768x1344", 768, 1344),
    AspectPreset("9:21", "9:21 portrait 640x1536", 640, 1536),
    AspectPreset("4:3", "4:3 landscape 1152x896", 1152, 896),
    AspectPreset("3:2", "3:2 landscape 1216x832", 1216, 832),
    AspectPreset("16:9", "16:9 landscape 1344x768", 1344, 768),
    AspectPreset("21:9", "21:9 landscape 1536x640", 1536, 640),
)


@dataclass(frozen=True)
class ModelSpec:
    """One model's accepted parameters, limits and defaults."""

    name: str
    width: Range
    height: Range
    size_multiple: int
    steps: Range
    default_steps: int
    samplers: tuple[str, ...]
    default_sampler: str
    schedulers: tuple[str, ...]
    default_scheduler: str
    samples: Range
    default_format: str
    quality: Range
    default_quality: int
    cfg: Range | None = None  # None: the model takes no cfg
    default_cfg: float | None = None
    negative_prompt: bool = False
    default_negative_prompt: str | None = None
    max_pixels: int | None = None  # an admin's cap on width x height
    base_cost: float = 1.0
    pricing_steps: int | None = None  # the published default steps, kept when an admin narrows

    @property
    def cost_steps(self) -> int:
        """The steps a request is priced against: the model's published default."""
        return self.pricing_steps or self.default_steps

    @property
    def takes_cfg(self) -> bool:
        return self.cfg is not None

    def presets(self) -> tuple[AspectPreset, ...]:
        """The aspect presets, each fitted to this model's size limits."""
        return tuple(self._fit(p) for p in _SEGMIND_PRESETS)

    def preset(self, ratio: str) -> AspectPreset | None:
        """The preset for a short ('16:9') or long ('16:9 landscape 1344x768') form, if any."""
        key = ratio.strip().lower()
        for preset in self.presets():
            if key in (preset.ratio, preset.label.lower()):
                return preset
        return None

    def _fit(self, preset: AspectPreset) -> AspectPreset:
        width, height = self.capped(*self.raised(preset.width, preset.height))
        if (width, height) == (preset.width, preset.height):
            return preset
        return replace(preset, width=width, height=height)

    def raised(self, width: int, height: int) -> tuple[int, int]:
        """The size scaled up, ratio kept, so its short side meets the model's minimum."""
        short = min(width, height)
        minimum = int(min(self.width.low, self.height.low))
        if short >= minimum:
            return width, height
        scale = minimum / short
        return _round_to(width * scale, self.size_multiple), _round_to(height * scale, self.size_multiple)

    def capped(self, width: int, height: int) -> tuple[int, int]:
        """The size scaled down, ratio kept, under an admin's max_pixels (if the sides allow it)."""
        if not self.max_pixels or width * height <= self.max_pixels:
            return width, height
        scale = math.sqrt(self.max_pixels / (width * height))
        w = int(width * scale) // self.size_multiple * self.size_multiple
        h = int(height * scale) // self.size_multiple * self.size_multiple
        if w in self.width and h in self.height:
            return w, h
        return width, height  # cannot fit: the request is refused with the pixel cap named


def _round_to(value: float, multiple: int) -> int:
    return int(round(value / multiple) * multiple)


CHROMA = ModelSpec(
    name="chroma",
    width=Range(768, 2048),
    height=Range(768, 2048),
    size_multiple=8,
    cfg=Range(1, 20),
    default_cfg=7.0,
    steps=Range(10, 75),
    default_steps=40,
    # Segmind lists 12 samplers and shows ten; the last two are its ComfyUI names that follow.
    samplers=(
        "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "lms", "dpm_fast", "dpm_adaptive",
        "dpmpp_2s_a", "dpmpp_sde", "dpmpp_2m", "dpmpp_2m_sde",
    ),
    default_sampler="euler",
    schedulers=("normal", "karras", "exponential", "beta", "sgm_uniform", "simple"),
    default_scheduler="beta",
    samples=Range(1, 4),
    default_format="png",
    quality=Range(1, 100),
    default_quality=95,
    negative_prompt=True,
    default_negative_prompt=None,
    base_cost=4.0,
)

FLUX_SCHNELL = ModelSpec(
    name="flux-schnell",
    width=Range(512, 2048),
    height=Range(512, 2048),
    size_multiple=8,
    steps=Range(1, 8),
    default_steps=4,
    samplers=("euler",),
    default_sampler="euler",
    schedulers=("normal",),
    default_scheduler="normal",
    samples=Range(1, 4),
    default_format="jpeg",
    quality=Range(1, 100),
    default_quality=90,
    base_cost=1.0,
)

KOLORS = ModelSpec(
    name="kolors",
    width=Range(512, 2048),
    height=Range(512, 2048),
    size_multiple=8,
    cfg=Range(0, 20),
    default_cfg=6.0,
    steps=Range(1, 50),
    default_steps=25,
    samplers=("euler", "euler_a", "heun", "lms", "dpm_2", "dpm_2_a", "dpmpp_2m", "dpmpp_sde"),
    default_sampler="euler",
    schedulers=("normal",),
    default_scheduler="normal",
    samples=Range(1, 10),
    default_format="webp",
    quality=Range(0, 100),
    default_quality=80,
    negative_prompt=True,
    base_cost=2.0,
)

# Kolors names its samplers by diffusers scheduler class (Segmind's kolors "scheduler" field and
# our worker both use these classes).
KOLORS_SCHEDULER_CLASSES: dict[str, str] = {
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "lms": "LMSDiscreteScheduler",
    "dpm_2": "KDPM2DiscreteScheduler",
    "dpm_2_a": "KDPM2AncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "dpmpp_sde": "DPMSolverSDEScheduler",
}

DEFAULT_MODEL = "flux-schnell"
ALL_MODELS: tuple[ModelSpec, ...] = (FLUX_SCHNELL, CHROMA, KOLORS)


@dataclass(frozen=True)
class Catalog:
    """The models this deployment offers, after an admin's narrowing."""

    models: tuple[ModelSpec, ...] = ALL_MODELS
    default_model: str = DEFAULT_MODEL
    aliases: dict[str, str] = field(
        default_factory=lambda: {"flux": "flux-schnell", "schnell": "flux-schnell"}
    )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def get(self, name: str) -> ModelSpec | None:
        """The model called `name` (or an alias of it), if this deployment offers it."""
        key = self.aliases.get(name.strip().lower(), name.strip().lower())
        return next((m for m in self.models if m.name == key), None)

    def narrowed(
        self,
        *,
        allowed_models: tuple[str, ...] | None = None,
        max_steps: int | None = None,
        max_samples: int | None = None,
        max_pixels: int | None = None,
        base_costs: dict[str, float] | None = None,
        default_model: str | None = None,
    ) -> Catalog:
        """A copy limited by an admin's settings (limits only ever shrink)."""
        models = []
        for spec in self.models:
            if allowed_models is not None and spec.name not in allowed_models:
                continue
            steps, samples, default_steps = spec.steps, spec.samples, spec.default_steps
            if max_steps is not None:
                steps = Range(steps.low, max(steps.low, min(steps.high, max_steps)))
                default_steps = int(min(default_steps, steps.high))
            if max_samples is not None:
                samples = Range(1, max(1, min(samples.high, max_samples)))
            cost = (base_costs or {}).get(spec.name, spec.base_cost)
            models.append(
                replace(
                    spec, steps=steps, default_steps=default_steps, samples=samples,
                    pricing_steps=spec.cost_steps,
                    max_pixels=max_pixels if max_pixels is not None else spec.max_pixels,
                    base_cost=cost,
                )
            )
        default = default_model or self.default_model
        if models and default not in {m.name for m in models}:
            default = models[0].name
        return Catalog(models=tuple(models), default_model=default, aliases=self.aliases)
