"""Per-user and per-workspace defaults (/settings): what can be set, the precedence, provenance.

A value in a request comes from, first to last:

    typed (an option or an inline flag)  >  the user's default  >  the workspace's (server's)
    default, set by an admin  >  the model's own default

A default is checked against the model the request ends up using: one the model does not take
(cfg for flux-schnell, steps past its range after switching model, a model an admin no longer
offers) is skipped with a note for the user, never an error. Setting a value is strict: an
unknown setting or a value the model in effect would refuse is one sentence, and nothing is
stored. Where each value came from is kept with the job (Provenance) and shown by Info.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from bot.core.catalog import IMAGE_FORMATS, MAX_PROMPT_CHARS, SEED_MAX, Catalog, ModelSpec
from bot.core.errors import ImagineError, RequestError, SettingError, _short_repr
from bot.core.request import (
    ImagineRequest,
    _choice,
    _from_ratio,
    _number,
    _validate,
    clean_text,
    typed_options,
)


class Visibility(StrEnum):
    """Where results go (Discord): the channel, or only the person who asked."""

    CHANNEL = "channel"
    ME = "me"


class Source(StrEnum):
    """Where one value of a request came from."""

    TYPED = "typed"
    USER = "user"
    WORKSPACE = "workspace"
    MODEL = "model"
    RANDOM = "random"


# The settings, by request field, in the order they are shown; LABELS are the words users type.
SETTINGS: tuple[str, ...] = (
    "model", "aspect_ratio", "steps", "cfg", "negative_prompt", "image_format", "visibility",
)
LABELS: dict[str, str] = {
    "model": "model", "aspect_ratio": "aspect", "steps": "steps", "cfg": "cfg",
    "negative_prompt": "negative", "image_format": "format", "visibility": "visibility",
}
# Every spelling a user may type for a setting (the prompt flags' names work too).
NAMES: dict[str, str] = {
    **{label: name for name, label in LABELS.items()}, **{name: name for name in SETTINGS},
    "ar": "aspect_ratio", "aspect-ratio": "aspect_ratio", "no": "negative_prompt",
    "negative-prompt": "negative_prompt", "image-format": "image_format",
}
# The request fields Info shows a source for, besides the settings.
_OTHER_FIELDS = ("sampler", "scheduler", "samples", "image_quality", "seed")


def setting_name(word: str) -> str:
    """The field a typed setting name stands for; an unknown one is a SettingError."""
    key = word.strip().lower().lstrip("-")
    if key in NAMES:
        return NAMES[key]
    known = ", ".join(LABELS[name] for name in SETTINGS)
    raise SettingError(f"Unknown setting {_short_repr(word, 30)}; the settings are {known}.")


@dataclass(frozen=True)
class Defaults:
    """One set of stored defaults, a user's or a workspace's; None means not set."""

    model: str | None = None
    aspect_ratio: str | None = None
    steps: int | None = None
    cfg: float | None = None
    negative_prompt: str | None = None
    image_format: str | None = None
    visibility: str | None = None

    def values(self) -> dict[str, Any]:
        """The settings that are set, by field."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> Defaults:
        """Defaults from stored values (unknown keys ignored: a newer bot's columns)."""
        return cls(**{name: values[name] for name in SETTINGS if values.get(name) is not None})


@dataclass(frozen=True)
class Layers:
    """The defaults that apply to one user in one workspace."""

    user: Defaults = Defaults()
    workspace: Defaults = Defaults()


@dataclass(frozen=True)
class Provenance:
    """Where each value of a job's request came from, and the defaults that were skipped."""

    sources: tuple[tuple[str, str], ...] = ()  # (request field, Source value)
    notes: tuple[str, ...] = ()
    workspace_word: str = "workspace"  # "server" on Discord, for Info's wording

    def source(self, field: str) -> Source | None:
        """The source of one request field, if recorded (jobs older than /settings have none)."""
        for name, value in self.sources:
            if name == field:
                return Source(value)
        return None

    def to_json(self) -> str:
        """The text stored with the job."""
        return json.dumps({"sources": dict(self.sources), "notes": list(self.notes),
                           "workspace_word": self.workspace_word})

    @classmethod
    def from_json(cls, text: str | None) -> Provenance:
        """A stored Provenance; None or empty (a row older than /settings) is an empty one."""
        if not text:
            return cls()
        data = json.loads(text)
        return cls(sources=tuple((str(k), str(v)) for k, v in (data.get("sources") or {}).items()
                                 if v in Source.__members__.values()),
                   notes=tuple(str(n) for n in data.get("notes") or ()),
                   workspace_word=str(data.get("workspace_word") or "workspace"))


NO_PROVENANCE = Provenance()  # jobs stored before /settings recorded none


@dataclass(frozen=True)
class Built:
    """A request built with defaults, and how."""

    request: ImagineRequest
    provenance: Provenance


def workspace_word(platform: str) -> str:
    """What a workspace is called on this platform."""
    return "server" if platform == "discord" else "workspace"


def source_label(source: Source, word: str = "workspace") -> str:
    """How a source reads in Info and in /settings: 'your default', 'server default'."""
    return {Source.TYPED: "typed", Source.USER: "your default",
            Source.WORKSPACE: f"{word} default", Source.MODEL: "model default",
            Source.RANDOM: "random"}[source]


# --- checking one value ---------------------------------------------------------------------

def accept(field: str, value: Any, spec: ModelSpec, catalog: Catalog) -> Any:
    """The value normalised, if `spec` takes it; else a RequestError whose `allowed` reads
    well both after "is not allowed:" and after "was skipped:"."""
    label = LABELS.get(field, field)
    if field == "model":
        model = catalog.get(str(value)) if isinstance(value, str) else None
        if model is None:
            raise RequestError(label, value, f"this deployment offers {', '.join(catalog.names)}")
        return model.name
    if field == "visibility":
        try:
            return Visibility(str(value).strip().lower()).value
        except ValueError:
            raise RequestError(label, value, "channel or me") from None
    try:
        if field == "aspect_ratio":
            if not isinstance(value, str):
                raise RequestError(label, value, "text such as 16:9")
            return _from_ratio(value, spec)[2]
        if field == "steps":
            return int(_number(label, value, spec.steps, int))
        if field == "cfg":
            if spec.cfg is None:
                raise RequestError(label, value, f"{spec.name} takes no cfg")
            return float(_number(label, value, spec.cfg, float))
        if field == "negative_prompt":
            if not spec.negative_prompt:
                raise RequestError(label, value, f"{spec.name} takes no negative prompt")
            text = clean_text(str(value))[:MAX_PROMPT_CHARS]
            if not text:
                raise RequestError(label, value, "some words to keep out of the image")
            return text
        if field == "image_format":
            return _choice("image_format", value, IMAGE_FORMATS, spec)
    except RequestError as error:
        if error.allowed.startswith(spec.name) or field == "negative_prompt":
            raise
        raise RequestError(label, value, f"{spec.name} takes {error.allowed}",
                           shown=error.shown) from None
    raise setting_error_for(field)


def setting_error_for(field: str) -> SettingError:
    """The sentence for a field that is not a setting."""
    try:
        setting_name(field)
    except SettingError as error:
        return error
    return SettingError(f"{LABELS.get(field, field)} cannot be a default.")


def check_new(values: Mapping[str, Any], stored: Defaults, below: Defaults,
              catalog: Catalog) -> dict[str, Any]:
    """Validate values being set on top of `stored` (the same layer) and `below` (the layers
    under it): each against the model they would be used with. Raises one sentence."""
    given = {setting_name(name): value for name, value in values.items()}
    if not given:
        raise SettingError("Name at least one setting to change, as in --steps 30.")
    if not catalog.models:  # nothing to check against, so nothing is stored
        raise SettingError("No model is offered here, so no default can be set.")
    checked: dict[str, Any] = {}
    if "model" in given:
        checked["model"] = accept("model", given["model"], catalog.models[0], catalog)
    model = checked.get("model") or stored.model or below.model or catalog.default_model
    spec = catalog.get(str(model)) or catalog.get(catalog.default_model) or catalog.models[0]
    for field, value in given.items():
        if field != "model":
            checked[field] = accept(field, value, spec, catalog)
    return checked


# --- applying defaults to a request -----------------------------------------------------------

def apply_defaults(typed: Mapping[str, Any], layers: Layers, catalog: Catalog,
                   word: str = "workspace") -> tuple[dict[str, Any], dict[str, Source],
                                                     list[str]]:
    """Fill what was not typed from the user's then the workspace's defaults.

    Returns the request's inputs, the source of each value that was typed or defaulted, and
    a note for each default the chosen model does not take (skipped, never an error).
    """
    given = dict(typed)
    sources = {name: Source.TYPED for name in typed}
    notes: list[str] = []
    tiers = ((Source.USER, layers.user), (Source.WORKSPACE, layers.workspace))

    def note(source: Source, field: str, value: Any, why: str) -> None:
        who = "Your default" if source is Source.USER else f"The {word} default"
        notes.append(f"{who} {LABELS[field]} {_shown(value)} was skipped: {why}.")

    if "model" not in typed:
        for source, layer in tiers:
            if layer.model is None:
                continue
            spec = catalog.get(layer.model)
            if spec is None:
                note(source, "model", layer.model, "it is not offered here any more")
                continue
            given["model"], sources["model"] = spec.name, source
            break
    chosen = given.get("model")
    spec = (catalog.get(chosen) if isinstance(chosen, str) else None) if chosen is not None \
        else catalog.get(catalog.default_model)
    if spec is None:  # a typed model that does not exist: validation says so
        return given, sources, notes
    sized = bool({"width", "height"} & set(typed))
    for field in ("aspect_ratio", "steps", "cfg", "negative_prompt", "image_format"):
        if field in typed or (field == "aspect_ratio" and sized):
            continue
        for source, layer in tiers:
            value = getattr(layer, field)
            if value is None:
                continue
            try:
                given[field] = accept(field, value, spec, catalog)
            except ImagineError as error:
                why = error.allowed if isinstance(error, RequestError) else error.user_message
                note(source, field, value, why)
                continue
            sources[field] = source
            break
    return given, sources, notes


def build_with_defaults(text: str, options: Mapping[str, Any] | None, catalog: Catalog,
                        layers: Layers, *, word: str = "workspace",
                        random_seed: Callable[[], int] | None = None) -> Built:
    """build_request with the user's and workspace's defaults under what was typed."""
    prompt, typed = typed_options(text, options)
    given, sources, notes = apply_defaults(typed, layers, catalog, word)
    request = _validate(prompt, given, catalog,
                        random_seed or (lambda: secrets.randbelow(SEED_MAX + 1)))
    return Built(request, provenance_of(request, sources, notes, word))


def provenance_of(request: ImagineRequest, sources: Mapping[str, Source], notes: list[str],
                  word: str = "workspace") -> Provenance:
    """Every shown field's source: typed and defaulted ones as given, the rest the model's."""
    out: dict[str, Source] = {}
    if {"width", "height"} & set(sources):
        out["aspect_ratio"] = Source.TYPED
    for field in (*SETTINGS[:-1], *_OTHER_FIELDS):
        if field in sources:
            out[field] = sources[field]
        elif field not in out:
            out[field] = Source.RANDOM if field == "seed" else Source.MODEL
    return Provenance(tuple((k, v.value) for k, v in out.items()), tuple(notes), word)


def rerolled(provenance: Provenance, *, new_seed: bool = True,
             typed: frozenset[str] = frozenset(),
             kept: frozenset[str] | None = None) -> Provenance:
    """A parent's provenance for a Reroll, Vary or Edit: a new seed is random, the fields in
    `typed` were typed, and fields not `kept` (an Edit that changed model) are the model's."""
    if not provenance.sources:
        return provenance
    if kept is not None and {"width", "height"} & kept:
        kept = kept | {"aspect_ratio"}

    def source(name: str, value: str) -> str:
        if name in typed or (name == "aspect_ratio" and {"width", "height"} & typed):
            return Source.TYPED.value
        if name == "seed":
            return Source.RANDOM.value if new_seed else value
        if kept is not None and name not in kept:
            return Source.MODEL.value
        return value

    return replace(provenance, notes=(),
                   sources=tuple((name, source(name, value)) for name, value in provenance.sources))


def effective(layers: Layers, catalog: Catalog, word: str = "workspace"
              ) -> tuple[dict[str, tuple[Any, Source]], list[str]]:
    """What a request with nothing typed would use now: field -> (value, source), and notes."""
    given, sources, notes = apply_defaults({}, layers, catalog, word)
    spec = catalog.get(str(given.get("model") or catalog.default_model))
    shown: dict[str, tuple[Any, Source]] = {}
    if spec is None:
        return shown, notes
    model_values: dict[str, Any] = {
        "model": spec.name, "aspect_ratio": "1:1", "steps": spec.default_steps,
        "cfg": spec.default_cfg, "negative_prompt": None, "image_format": spec.default_format,
    }
    for field, value in model_values.items():
        shown[field] = (given[field], sources[field]) if field in sources else (value, Source.MODEL)
    for source, layer in ((Source.USER, layers.user), (Source.WORKSPACE, layers.workspace)):
        if layer.visibility is not None:
            shown["visibility"] = (layer.visibility, source)
            break
    else:
        shown["visibility"] = (Visibility.CHANNEL.value, Source.MODEL)
    return shown, notes


def visibility_of(layers: Layers) -> Visibility:
    """Where results go: the user's choice, else the workspace's, else the channel."""
    value = layers.user.visibility or layers.workspace.visibility or Visibility.CHANNEL.value
    try:
        return Visibility(value)
    except ValueError:  # a value a newer bot stored
        return Visibility.CHANNEL


def shown_value(field: str, value: Any) -> str:
    """A setting's value as users read it."""
    if value is None:
        return "none" if field == "negative_prompt" else "not used"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _shown(value: Any) -> str:
    return shown_value("", value) if isinstance(value, float) else _short_repr(value, 40)
