"""ImagineRequest and its validation: options and inline flags -> one validated request."""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.core.catalog import IMAGE_FORMATS, MAX_PROMPT_CHARS, SEED_MAX, Catalog, ModelSpec, Range
from bot.core.errors import ImagineError, RequestError, _short_repr
from bot.core.flags import parse_flags

FIELDS = (
    "prompt", "negative_prompt", "model", "width", "height", "aspect_ratio", "cfg", "steps",
    "sampler", "scheduler", "seed", "samples", "image_format", "image_quality",
)


class ImagineRequest(BaseModel):
    """One fully validated generation request; every value is explicit (no defaults left)."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    prompt: str
    negative_prompt: str | None = None
    model: str
    width: int
    height: int
    aspect_ratio: str  # "16:9" or "custom"
    cfg: float | None = None
    steps: int
    sampler: str
    scheduler: str
    seed: int
    samples: int = 1
    image_format: str
    image_quality: int
    variation_seed: int | None = None
    variation_strength: float | None = None

    def summary(self) -> str:
        """A one-line description for logs and chat: model, size, steps, seed."""
        cfg = f" cfg {self.cfg:g}" if self.cfg is not None else ""
        return (
            f"{self.model} {self.width}x{self.height} {self.steps} steps{cfg} "
            f"{self.sampler}/{self.scheduler} seed {self.seed}"
        )


# Characters that can reorder, hide or spoof text: bidi controls, zero-width spaces, BOM.
_INVISIBLE = re.compile("[\u061c\u200b\u200c\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def clean_text(text: str) -> str:
    """Drop control, bidi and zero-width characters and collapse whitespace."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text))
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cs", "Co") else ch for ch in text)
    return " ".join(text.split())


def build_request(
    text: str,
    options: Mapping[str, Any] | None,
    catalog: Catalog,
    *,
    random_seed: Callable[[], int] = lambda: secrets.randbelow(SEED_MAX + 1),
) -> ImagineRequest:
    """Turn a prompt (with inline flags) and explicit options into a validated request.

    Raises ImagineError (usually RequestError) with the user's sentence; never anything else.
    """
    prompt, given = typed_options(text, options)
    return _validate(prompt, given, catalog, random_seed)


def typed_options(text: str, options: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The prompt without its flags, and what the user typed: options and flags, by field."""
    if not isinstance(text, str):
        raise RequestError("prompt", text, "text")
    parsed = parse_flags(text)
    given: dict[str, Any] = {}
    for name, value in (options or {}).items():
        if name not in FIELDS or name == "prompt":
            raise ImagineError(f"Unknown option {_short_repr(name, 30)}.")
        if value is not None and value != "":
            given[name] = value
    for name, value in parsed.options.items():
        if name in given and _text(given[name]).strip().lower() != value.strip().lower():
            raise ImagineError(
                f"{name} is given twice ({_short_repr(given[name])} and {_short_repr(value)}); "
                "give it once."
            )
        given[name] = value
    return parsed.prompt, given


def _validate(
    prompt: str, given: dict[str, Any], catalog: Catalog, random_seed: Callable[[], int]
) -> ImagineRequest:
    prompt = clean_text(prompt)
    if not prompt:
        raise ImagineError("The prompt is empty: describe the image you want, as in /imagine a red fox.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise RequestError("prompt", len(prompt), f"at most {MAX_PROMPT_CHARS} characters",
                           shown=f"of {len(prompt)} characters")

    spec = _model(given.get("model"), catalog)
    negative = given.get("negative_prompt")
    if negative is not None:
        if not spec.negative_prompt:
            raise ImagineError(
                f"{spec.name} takes no negative prompt (--no); remove it or pick "
                f"{_join(m.name for m in catalog.models if m.negative_prompt) or 'another model'}."
            )
        if not isinstance(negative, str):
            raise RequestError("negative_prompt", negative, "text")
        negative = clean_text(negative)[:MAX_PROMPT_CHARS] or None
    cfg = None
    if "cfg" in given:
        if spec.cfg is None:
            raise ImagineError(f"{spec.name} takes no cfg (guidance); remove --cfg.")
        cfg = _number("cfg", given["cfg"], spec.cfg, float)
    elif spec.cfg is not None:
        cfg = spec.default_cfg

    width, height, aspect = _size(given, spec)
    steps = int(_number("steps", given.get("steps", spec.default_steps), spec.steps, int))
    sampler = _choice("sampler", given.get("sampler", spec.default_sampler), spec.samplers, spec)
    scheduler = _choice(
        "scheduler", given.get("scheduler", spec.default_scheduler), spec.schedulers, spec
    )
    samples = int(_number("samples", given.get("samples", 1), spec.samples, int))
    image_format = _choice(
        "image_format", given.get("image_format", spec.default_format), IMAGE_FORMATS, spec
    )
    if image_format == "jpg":
        image_format = "jpeg"
    quality = int(_number("image_quality", given.get("image_quality", spec.default_quality),
                          spec.quality, int))
    seed = (
        int(_number("seed", given["seed"], Range(0, SEED_MAX), int))
        if "seed" in given else random_seed()
    )
    return ImagineRequest(
        prompt=prompt, negative_prompt=negative, model=spec.name, width=width, height=height,
        aspect_ratio=aspect, cfg=cfg, steps=steps, sampler=sampler, scheduler=scheduler,
        seed=seed, samples=samples, image_format=image_format, image_quality=quality,
    )


def _model(value: Any, catalog: Catalog) -> ModelSpec:
    if value is None:
        spec = catalog.get(catalog.default_model)
    elif not isinstance(value, str):
        raise RequestError("model", value, f"one of {_join(catalog.names)}")
    else:
        spec = catalog.get(value)
    if spec is None:
        raise RequestError("model", value, f"one of {_join(catalog.names)}")
    return spec


def _size(given: dict[str, Any], spec: ModelSpec) -> tuple[int, int, str]:
    ratio = given.get("aspect_ratio")
    if ratio is not None and not isinstance(ratio, str):
        raise RequestError("aspect_ratio", ratio, "text such as 16:9")
    has_size = "width" in given or "height" in given
    if ratio is not None and str(ratio).strip().lower() != "custom":
        if has_size:
            raise ImagineError("Give either an aspect ratio or a width and height, not both.")
        width, height, aspect = _from_ratio(str(ratio), spec)
    else:
        default_width, default_height = spec.capped(1024, 1024)  # fits an admin's max_pixels
        width = int(_number("width", given.get("width", default_width), spec.width, int))
        height = int(_number("height", given.get("height", default_height), spec.height, int))
        aspect = "custom" if has_size else "1:1"
    for name, value in (("width", width), ("height", height)):
        if value % spec.size_multiple:
            raise RequestError(
                name, value, f"a multiple of {spec.size_multiple} for {spec.name}"
            )
    if spec.max_pixels and width * height > spec.max_pixels:
        raise RequestError(
            "size", f"{width}x{height}", f"at most {spec.max_pixels:,} pixels on this server"
        )
    return width, height, aspect


_RATIO = re.compile(r"^\s*(\d{1,3})\s*[:x/]\s*(\d{1,3})\s*$")


def _from_ratio(text: str, spec: ModelSpec) -> tuple[int, int, str]:
    preset = spec.preset(text)
    if preset is not None:
        return preset.width, preset.height, preset.ratio
    match = _RATIO.match(text)
    allowed = f"W:H such as {_join(p.ratio for p in spec.presets())}"
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise RequestError("aspect_ratio", text, allowed)
    w, h = int(match.group(1)), int(match.group(2))
    # About one megapixel at that ratio, on a 64 px grid, like the presets.
    width = max(64, round(math.sqrt(1024 * 1024 * w / h) / 64) * 64)
    height = max(64, round(width * h / w / 64) * 64)
    width, height = spec.raised(width, height)  # chroma's 768 px minimum, as for its presets
    width, height = spec.capped(width, height)
    if width not in spec.width or height not in spec.height:
        raise RequestError(
            "aspect_ratio", text,
            f"a ratio whose size fits {spec.name}'s {spec.width.text()} px sides ({allowed})",
        )
    return width, height, f"{w}:{h}"


def _number(name: str, value: Any, bounds: Range, kind: type) -> float:
    number: float
    if isinstance(value, bool):
        raise RequestError(name, value, f"a number from {bounds.text()}")
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip()) if kind is float else int(value.strip())
        except ValueError:
            word = "a whole number" if kind is int else "a number"
            raise RequestError(name, value, f"{word} from {bounds.text()}") from None
    else:
        raise RequestError(name, value, f"a number from {bounds.text()}")
    finite = isinstance(number, int) or math.isfinite(number)  # isfinite(10**400) overflows
    if kind is int and (not finite or number != int(number)):
        raise RequestError(name, value, f"a whole number from {bounds.text()}")
    if not finite or number not in bounds:
        word = "a whole number" if kind is int else "a number"
        raise RequestError(name, value, f"{word} from {bounds.text()}")
    return number


def _choice(name: str, value: Any, choices: tuple[str, ...], spec: ModelSpec) -> str:
    key = value.strip().lower() if isinstance(value, str) else value
    if name == "image_format" and key == "jpg":
        key = "jpeg"
    if key not in choices:
        where = "" if name == "image_format" else f" for {spec.name}"
        raise RequestError(name, value, f"one of {_join(choices)}{where}")
    return str(key)


def _join(items: Any) -> str:
    return ", ".join(items)


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # an int too long to print, a list nested too deep
        return ""
