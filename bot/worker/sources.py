"""Where each model's weights come from (a local diffusers folder or a Hugging Face hub id),
and how the loaded pipelines are placed (EngineOptions). No torch import here.

`--model flux-schnell=SOURCE`: SOURCE is a folder holding a diffusers pipeline (with its
model_index.json) or a hub id such as black-forest-labs/FLUX.1-schnell; `--model chroma`
alone takes the default id. A hub id downloads into the Hugging Face cache (HF_HOME, with a
progress bar) unless HF_HUB_OFFLINE is set, in which case it must already be cached. Every
problem found here is a SourceError whose text is one line for the operator.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bot.core.catalog import Catalog

DEFAULT_SOURCES: dict[str, str] = {
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "chroma": "lodestones/Chroma1-HD",
    "kolors": "Kwai-Kolors/Kolors-diffusers",
}
PIPELINE_CLASSES: dict[str, str] = {
    "flux-schnell": "FluxPipeline",
    "chroma": "ChromaPipeline",
    "kolors": "KolorsPipeline",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class SourceError(Exception):
    """A model source that cannot be used; str() is one line for the operator."""


@dataclass(frozen=True)
class ModelSource:
    """One model and where its pipeline is loaded from."""

    model: str
    location: str  # an absolute folder path, or a hub id
    is_local: bool

    @property
    def pipeline_class(self) -> str:
        return PIPELINE_CLASSES[self.model]


def parse_model_option(text: str) -> tuple[str, str]:
    """'flux-schnell=SOURCE' -> (model, SOURCE); a bare model name takes its default source."""
    name, sep, source = text.partition("=")
    spec = Catalog().get(name)  # accepts the catalog's aliases: flux, schnell
    model = spec.name if spec is not None else name.strip().lower()
    if model not in DEFAULT_SOURCES:
        raise SourceError(
            f"--model {text!r}: unknown model {model!r}; the worker runs "
            f"{', '.join(DEFAULT_SOURCES)} (as --model NAME or --model NAME=SOURCE)"
        )
    source = source.strip() if sep else DEFAULT_SOURCES[model]
    if not source:
        raise SourceError(f"--model {text!r}: give a folder or hub id after '='")
    return model, source


def parse_model_options(options: list[str]) -> dict[str, str]:
    """Several --model options -> {model: source}; a model given twice is an error."""
    chosen: dict[str, str] = {}
    for text in options:
        model, source = parse_model_option(text)
        if model in chosen:
            raise SourceError(f"--model {model} is given twice; give each model once")
        chosen[model] = source
    if not chosen:
        raise SourceError(
            "no models to serve: give --model flux-schnell[=SOURCE] (and/or chroma, kolors)"
        )
    return chosen


def resolve_source(model: str, source: str) -> ModelSource:
    """Check `source` for `model` without loading it; raises SourceError with one line."""
    path = Path(os.path.expanduser(source))
    if path.exists():
        return _local(model, path.resolve())
    if not _HUB_ID.match(source) or source.startswith((".", "~")):
        raise SourceError(f"{model}: folder {source} does not exist")
    offline = _hub_offline()
    if offline and not _hub_cached(source):
        raise SourceError(
            f"{model}: {source} is not in the Hugging Face cache ({_hub_cache()}) and "
            f"HF_HUB_OFFLINE is set, so it cannot be downloaded; download it first "
            f"(hf download {source}) or pass a local folder"
        )
    return ModelSource(model=model, location=source, is_local=False)


def _local(model: str, path: Path) -> ModelSource:
    index = path / "model_index.json"
    if not path.is_dir():
        raise SourceError(
            f"{model}: {path} is a file; the worker loads a diffusers pipeline folder "
            f"(with model_index.json), not a single checkpoint file"
        )
    if not index.is_file():
        raise SourceError(
            f"{model}: {path} has no model_index.json, so it is not a diffusers pipeline folder"
        )
    try:
        found = json.loads(index.read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        raise SourceError(f"{model}: {index} is not readable JSON") from None
    expected = PIPELINE_CLASSES[model]
    if found != expected:
        raise SourceError(f"{model}: {path} holds a {found}, not a {expected}")
    return ModelSource(model=model, location=str(path), is_local=True)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return env or bool(constants.HF_HUB_OFFLINE)


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _hub_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str)


@dataclass(frozen=True)
class EngineOptions:
    """How the pipelines are placed and sped up."""

    cpu_offload: bool = False
    attention_slicing: bool = False
    vae_tiling: bool = False
    compile: bool = False
    device: str | None = None  # None: cuda when available, else cpu
