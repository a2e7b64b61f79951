"""Model sources: a diffusers folder or a hub id; every problem is one line for the operator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.worker.sources import (
    SourceError,
    parse_model_option,
    parse_model_options,
    resolve_source,
)


def test_a_model_option_names_a_model_and_its_source() -> None:
    assert parse_model_option("flux-schnell=/models/flux") == ("flux-schnell", "/models/flux")


@pytest.mark.parametrize(
    ("option", "source"),
    [
        ("flux-schnell", "black-forest-labs/FLUX.1-schnell"),
        ("chroma", "lodestones/Chroma1-HD"),
        ("kolors", "Kwai-Kolors/Kolors-diffusers"),
    ],
)
def test_a_bare_model_name_takes_its_default_hub_id(option: str, source: str) -> None:
    assert parse_model_option(option) == (option, source)


def test_the_catalogs_aliases_name_models_too() -> None:
    assert parse_model_option("flux=/m")[0] == "flux-schnell"


def test_an_unknown_model_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(SourceError, match="unknown model 'sdxl'; the worker runs flux-schnell"):
        parse_model_option("sdxl=/m")


def test_a_model_given_twice_is_refused() -> None:
    with pytest.raises(SourceError, match="given twice"):
        parse_model_options(["chroma=/a", "chroma=/b"])


def test_no_model_at_all_is_refused() -> None:
    with pytest.raises(SourceError, match="no models to serve"):
        parse_model_options([])


def test_a_saved_pipeline_folder_is_a_local_source(model_dirs: dict[str, Path]) -> None:
    source = resolve_source("kolors", str(model_dirs["kolors"]))

    assert source.is_local
    assert source.pipeline_class == "KolorsPipeline"


def test_a_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        resolve_source("chroma", str(tmp_path / "nope"))

    assert str(caught.value) == f"chroma: folder {tmp_path / 'nope'} does not exist"


def test_a_folder_without_model_index_is_not_a_pipeline(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"has no model_index\.json"):
        resolve_source("chroma", str(tmp_path))


def test_a_single_checkpoint_file_is_refused(tmp_path: Path) -> None:
    checkpoint = tmp_path / "flux1-schnell.safetensors"
    checkpoint.write_bytes(b"\0")

    with pytest.raises(SourceError, match="not a single checkpoint file"):
        resolve_source("flux-schnell", str(checkpoint))


def test_a_folder_of_another_pipeline_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KolorsPipeline"}))

    with pytest.raises(SourceError, match="holds a KolorsPipeline, not a FluxPipeline"):
        resolve_source("flux-schnell", str(tmp_path))


def test_an_uncached_hub_id_offline_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(SourceError) as caught:
        resolve_source("flux-schnell", "example-owner/not-a-cached-model")

    line = str(caught.value)
    assert "\n" not in line
    assert "is not in the Hugging Face cache" in line
    assert "hf download example-owner/not-a-cached-model" in line
