"""Properties of build_request over any input at all (hypothesis).

- Any text and any options give an ImagineRequest or an ImagineError, never another exception.
- Every request produced respects its model's limits in the catalog it was built against.
- Every RequestError's sentence names the field, the value given and what is allowed.
- Values inside a model's limits are accepted exactly as given.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.core.catalog import ALL_MODELS, IMAGE_FORMATS, MAX_PROMPT_CHARS, SEED_MAX, Catalog, ModelSpec
from bot.core.errors import ImagineError, RequestError
from bot.core.flags import FLAGS
from bot.core.request import FIELDS, ImagineRequest, build_request

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEED = 77

# --- strategies -------------------------------------------------------------------------------

# controls, zero-width and bidi characters, surrogates, combining marks, dashes, RTL letters, digits
NASTY_CHARS = tuple(
    "\x00\x07\x1b\x7f\n\r\t\u200b\u200c\u200d\u200e\u200f\u202a\u202e\u2066\u2069\ufeff\u2028"
    "\u0301\u061c\ud800\udfff—–-:x/ ﷺ𒐫\U0010ffffقח\u0661"
)
CHARS = st.one_of(
    st.characters(),
    st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp", "Mn"]),
    st.sampled_from(NASTY_CHARS),
)
ANY_TEXT = st.text(CHARS, max_size=60)

# ints over 4300 digits: str() of them raises ValueError (built by map: hypothesis cannot repr them)
TOO_LONG_TO_PRINT = st.integers(0, 3).map(lambda k: 10 ** (5000 + k))
HUGE_INTS = st.one_of(
    st.integers(min_value=2**63, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(2**63)),
    TOO_LONG_TO_PRINT,
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-5, max_value=2100),
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 7.5, 1e308, 5e-324, math.nan, math.inf, -math.inf]),
)
WORDS = st.sampled_from(
    [
        "chroma",
        "flux-schnell",
        "kolors",
        "flux",
        "FLUX",
        "dall-e",
        "euler",
        "euler_a",
        "dpmpp_2m",
        "beta",
        "karras",
        "normal",
        "png",
        "jpg",
        "jpeg",
        "webp",
        "gif",
        "16:9",
        "9:21",
        "21:9",
        "1:1 square 1024x1024",
        "7:3",
        "0:0",
        "999:1",
        "custom",
        "nan",
        "inf",
        "-inf",
        "1e400",
        "9" * 400,
        "9" * 5000,
        "4.0",
        "1_000",
        "٣",
        "",
        " ",
        "--seed",
        "True",
    ]
)
NUMBER_TEXT = NUMBERS.map(lambda n: str(n) if not (isinstance(n, int) and abs(n) > 10**4000) else "9" * 4400)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ANY_TEXT, WORDS, NUMBER_TEXT)
ANY_VALUE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=6,
)
OPTION_KEYS = st.one_of(
    st.sampled_from(FIELDS),
    st.sampled_from(FIELDS),
    st.text(max_size=12),
    st.integers(),
    TOO_LONG_TO_PRINT,
    st.none(),
)
ANY_OPTIONS = st.one_of(
    st.none(),
    st.dictionaries(OPTION_KEYS, ANY_VALUE, max_size=6),
    st.dictionaries(st.sampled_from(FIELDS), st.one_of(WORDS, NUMBERS, NUMBER_TEXT), max_size=6),
)


@st.composite
def prompts_with_flags(draw: st.DrawFn) -> str:
    """Prompt text with flags sprinkled through it: known, unknown, repeated, em-dashed."""
    pieces = [draw(ANY_TEXT)]
    for _ in range(draw(st.integers(0, 5))):
        dash = draw(st.sampled_from(["--", "—", "–", "-", "---"]))
        name = draw(
            st.one_of(
                st.sampled_from(sorted(FLAGS)), st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}", fullmatch=True)
            )
        )
        value = draw(st.one_of(WORDS, NUMBER_TEXT, ANY_TEXT, st.just("")))
        pieces.append(f" {dash}{name} {value}")
    return "".join(pieces)


ANY_PROMPT = st.one_of(ANY_TEXT, prompts_with_flags(), st.text(max_size=2100).map(lambda t: "x" * 1990 + t))

CATALOGS = st.one_of(
    st.just(Catalog()),
    st.builds(
        lambda models, steps, samples, pixels, default: Catalog().narrowed(
            allowed_models=models,
            max_steps=steps,
            max_samples=samples,
            max_pixels=pixels,
            default_model=default,
        ),
        st.none()
        | st.lists(st.sampled_from([m.name for m in ALL_MODELS]), min_size=1, unique=True).map(tuple),
        st.none() | st.integers(1, 80),
        st.none() | st.integers(1, 12),
        st.none() | st.integers(512 * 512, 5_000_000),
        st.none() | st.sampled_from([m.name for m in ALL_MODELS]),
    ),
)


# --- checks -------------------------------------------------------------------------------------


def outcome(text: Any, options: Any, catalog: Catalog) -> ImagineRequest | ImagineError:
    """The request or the ImagineError; any other exception fails the test by propagating."""
    try:
        return build_request(text, options, catalog, random_seed=lambda: SEED)
    except ImagineError as error:
        return error


def assert_within_limits(request: ImagineRequest, catalog: Catalog) -> None:
    spec = catalog.get(request.model)
    assert spec is not None and spec.name == request.model
    assert request.width in spec.width and request.height in spec.height
    assert request.width % spec.size_multiple == 0 and request.height % spec.size_multiple == 0
    if spec.max_pixels:
        assert request.width * request.height <= spec.max_pixels
    assert request.steps in spec.steps
    assert request.sampler in spec.samplers
    assert request.scheduler in spec.schedulers
    assert request.samples in spec.samples
    assert request.image_format in IMAGE_FORMATS
    assert request.image_quality in spec.quality
    assert 0 <= request.seed <= SEED_MAX
    if spec.takes_cfg:
        assert request.cfg is not None and math.isfinite(request.cfg) and request.cfg in spec.cfg
    else:
        assert request.cfg is None
    if not spec.negative_prompt:
        assert request.negative_prompt is None
    assert 0 < len(request.prompt) <= MAX_PROMPT_CHARS
    assert request.prompt == request.prompt.strip()
    for text in (request.prompt, request.negative_prompt or ""):
        assert is_clean(text), repr(text)


# bidi embeddings, overrides, isolates and marks; zero-width spaces; the BOM
HIDDEN = set("\u061c\u200b\u200c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff")


def is_clean(text: str) -> bool:
    """No control, surrogate, private-use, bidi or zero-width character; single spaces only."""
    return (
        text == text.strip()
        and "  " not in text
        and not any(ch in HIDDEN or unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text)
        and not any(ch.isspace() and ch != " " for ch in text)
    )


def assert_good_sentence(error: ImagineError) -> None:
    sentence = error.sentence()
    assert isinstance(sentence, str) and sentence
    assert "\n" not in sentence and "Traceback" not in sentence
    assert sentence.endswith((".", "?"))
    assert len(sentence) < 600
    if isinstance(error, RequestError):
        assert sentence.startswith(f"{error.field} "), sentence
        assert error.shown in sentence, sentence
        assert error.allowed and error.allowed in sentence, sentence
        assert sentence == f"{error.field} {error.shown} is not allowed: {error.allowed}."


# --- properties -----------------------------------------------------------------------------------


@FAST
@given(text=ANY_PROMPT, options=ANY_OPTIONS, catalog=CATALOGS)
def test_any_input_gives_a_request_within_limits_or_an_imagine_error(text, options, catalog):
    result = outcome(text, options, catalog)
    event("request" if isinstance(result, ImagineRequest) else type(result).__name__)
    if isinstance(result, ImagineRequest):
        assert_within_limits(result, catalog)


@FAST
@given(text=st.one_of(ANY_VALUE, st.binary(max_size=10)).filter(lambda v: not isinstance(v, str)))
def test_a_prompt_that_is_not_text_is_refused_naming_the_prompt(text):
    result = outcome(text, None, Catalog())
    assert isinstance(result, RequestError)
    assert result.field == "prompt"
    assert_good_sentence(result)


@FAST
@given(text=ANY_PROMPT, options=ANY_OPTIONS, catalog=CATALOGS)
def test_every_refusal_is_one_sentence_and_a_request_error_names_field_value_and_what_is_allowed(
    text, options, catalog
):
    result = outcome(text, options, catalog)
    if isinstance(result, ImagineError):
        assert_good_sentence(result)


@FAST
@given(text=ANY_TEXT, catalog=CATALOGS)
def test_a_request_without_a_seed_records_the_random_one_drawn(text, catalog):
    result = outcome(f"a fox {text}", None, catalog)
    if isinstance(result, ImagineRequest) and "seed" not in text.lower():
        assert result.seed == SEED


@st.composite
def valid_choices(draw: st.DrawFn) -> tuple[ModelSpec, dict[str, Any]]:
    """A model and options inside its documented limits."""
    spec = draw(st.sampled_from(ALL_MODELS))
    m = spec.size_multiple
    options: dict[str, Any] = {
        "model": spec.name,
        "width": draw(st.integers(int(spec.width.low) // m, int(spec.width.high) // m)) * m,
        "height": draw(st.integers(int(spec.height.low) // m, int(spec.height.high) // m)) * m,
        "steps": draw(st.integers(int(spec.steps.low), int(spec.steps.high))),
        "sampler": draw(st.sampled_from(spec.samplers)),
        "scheduler": draw(st.sampled_from(spec.schedulers)),
        "samples": draw(st.integers(int(spec.samples.low), int(spec.samples.high))),
        "image_format": draw(st.sampled_from(IMAGE_FORMATS)),
        "image_quality": draw(st.integers(int(spec.quality.low), int(spec.quality.high))),
        "seed": draw(st.integers(0, SEED_MAX)),
    }
    if spec.takes_cfg:
        options["cfg"] = draw(st.floats(spec.cfg.low, spec.cfg.high))
    if spec.negative_prompt:
        options["negative_prompt"] = draw(st.from_regex(r"[a-z]{1,8}( [a-z]{1,8}){0,3}", fullmatch=True))
    return spec, options


@FAST
@given(choice=valid_choices(), as_text=st.booleans())
def test_values_inside_a_model_s_limits_are_accepted_exactly_as_given(choice, as_text):
    _, options = choice
    if as_text:  # the same values, as the strings a chat platform might send
        options = {k: (repr(v) if isinstance(v, float) else str(v)) for k, v in options.items()}
    request = build_request("a red fox", options, Catalog(), random_seed=lambda: SEED)
    for name, value in options.items():
        got = getattr(request, name)
        if name == "cfg":
            assert got == float(value)
        elif isinstance(got, int):
            assert got == int(value)
        else:
            assert got == value
    assert request.aspect_ratio == "custom"
    assert_within_limits(request, Catalog())


@FAST
@given(
    spec=st.sampled_from(ALL_MODELS),
    field=st.sampled_from(["steps", "samples", "image_quality", "width", "height"]),
    beyond=st.one_of(st.integers(1, 10**6), HUGE_INTS.filter(lambda n: n > 0)),
    above=st.booleans(),
)
def test_a_whole_number_outside_a_model_s_range_is_refused_naming_that_range(spec, field, beyond, above):
    bounds = {
        "steps": spec.steps,
        "samples": spec.samples,
        "image_quality": spec.quality,
        "width": spec.width,
        "height": spec.height,
    }[field]
    value = int(bounds.high) + beyond if above else int(bounds.low) - beyond
    result = outcome("a red fox", {"model": spec.name, field: value}, Catalog())
    assert isinstance(result, RequestError)
    assert result.field == field
    assert result.allowed == f"a whole number from {bounds.text()}"
    assert_good_sentence(result)


@FAST
@given(
    spec=st.sampled_from(ALL_MODELS),
    ratio=st.sampled_from([p.ratio for p in ALL_MODELS[0].presets()]),
    long_form=st.booleans(),
)
def test_every_preset_in_either_form_gives_a_size_within_the_model_s_limits(spec, ratio, long_form):
    preset = spec.preset(ratio)
    text = preset.label if long_form else ratio
    request = build_request(
        "a fox", {"model": spec.name, "aspect_ratio": text}, Catalog(), random_seed=lambda: 1
    )
    assert (request.width, request.height, request.aspect_ratio) == (preset.width, preset.height, ratio)
    assert_within_limits(request, Catalog())


@FAST
@given(w=st.integers(1, 40), h=st.integers(1, 40), spec=st.sampled_from(ALL_MODELS), catalog=CATALOGS)
def test_any_custom_ratio_gives_a_size_within_limits_or_a_refusal_naming_aspect_ratio(w, h, spec, catalog):
    result = outcome(f"a fox --ar {w}:{h}", {"model": spec.name}, catalog)
    if isinstance(result, ImagineRequest):
        assert_within_limits(result, catalog)
        if (result.width, result.height) not in {
            (p.width, p.height) for p in catalog.get(spec.name).presets()
        }:
            assert result.width / result.height == _approx_ratio(w, h)
    else:
        assert_good_sentence(result)
        if isinstance(result, RequestError):
            assert result.field in {"aspect_ratio", "size", "model"}


def _approx_ratio(w: int, h: int) -> Any:
    # sides on a 64 px (or, under a pixel cap, 8 px) grid: within about 12% of the ratio asked for
    return pytest.approx(w / h, rel=0.12)
