"""The sentences ConfigError tells a user: one test per message, asserting it word for word."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings


def refusal(config: Path, environ: dict[str, str] | None = None) -> str:
    """The message Settings.load() refuses config (and environ) with."""
    with pytest.raises(ConfigError) as caught:
        Settings.load(config, environ or {})
    return str(caught.value)


def test_a_file_that_is_not_toml_is_refused_naming_the_file_and_the_parser_s_reason(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    text = "[segmind\nbase_url = \n"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError) as parsed:
        tomllib.loads(text)
    # The reason is the parser's own words; the sentence around it is ours.
    assert refusal(config) == f"{config} is not valid TOML: {parsed.value}"


def test_a_file_that_is_not_utf_8_is_refused_as_not_valid_toml(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_bytes(b"\xff[segmind]\n")
    assert refusal(config) == (
        f"{config} is not valid TOML: 'utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte"
    )


def test_a_secret_in_the_file_is_refused_saying_it_must_come_from_the_environment(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('discord_token = "abc"\n', encoding="utf-8")
    assert refusal(config) == (
        f"{config}: discord_token must come from the environment, not the config file."
    )


def test_several_secrets_in_the_file_are_named_in_one_sentence_in_sorted_order(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('slack_bot_token = "a"\nSEGMIND_API_KEY = "b"\n', encoding="utf-8")
    assert refusal(config) == (
        f"{config}: SEGMIND_API_KEY, slack_bot_token must come from the environment, "
        "not the config file."
    )


def test_a_variable_that_is_both_a_value_and_a_section_is_refused_naming_the_variable_and_key(
    tmp_path: Path,
) -> None:
    message = refusal(
        tmp_path / "none.toml",
        {"IMAGINE_SEGMIND__BASE_URL": "http://y", "IMAGINE_SEGMIND": "x"},
    )
    assert message == "IMAGINE_SEGMIND__BASE_URL: segmind is set both as a value and as a section."


def test_a_key_that_is_both_a_value_and_a_section_inside_a_section_is_refused_naming_it(
    tmp_path: Path,
) -> None:
    message = refusal(
        tmp_path / "none.toml",
        {"IMAGINE_SEGMIND__BASE_URL__HOST": "h", "IMAGINE_SEGMIND__BASE_URL": "http://y"},
    )
    assert message == (
        "IMAGINE_SEGMIND__BASE_URL__HOST: base_url is set both as a value and as a section."
    )


def test_a_table_value_with_keys_set_inside_it_is_merged_not_refused(tmp_path: Path) -> None:
    # A JSON or TOML table is a section, so the variables below it add to it, whatever their order.
    settings = Settings.load(
        tmp_path / "none.toml",
        {"IMAGINE_QUOTA__BASE_COSTS__KOLORS": "7", "IMAGINE_QUOTA__BASE_COSTS": '{"chroma": 1}'},
    )
    assert settings.quota.base_costs == {"chroma": 1, "kolors": 7}


def test_a_bad_value_is_refused_as_bad_configuration_naming_the_key_and_the_rule(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[segmind]\nconcurrency = 0\n", encoding="utf-8")
    assert refusal(config) == (
        "Bad configuration: segmind.concurrency: Input should be greater than or equal to 1"
    )


def test_several_bad_values_are_refused_in_one_sentence_separated_by_semicolons(
    tmp_path: Path,
) -> None:
    message = refusal(
        tmp_path / "none.toml",
        {"IMAGINE_SEGMIND__CONCURRENCY": "0", "IMAGINE_WORKER__PORT": "0"},
    )
    assert message == (
        "Bad configuration: segmind.concurrency: Input should be greater than or equal to 1; "
        "worker.port: Input should be greater than or equal to 1"
    )


def test_a_variable_that_names_no_section_is_refused_as_an_extra_input(tmp_path: Path) -> None:
    message = refusal(tmp_path / "none.toml", {"IMAGINE_SEGMND__BASE_URL": "http://x"})
    assert message == "Bad configuration: segmnd: Extra inputs are not permitted"


def test_a_key_that_no_section_has_is_refused_as_an_extra_input(tmp_path: Path) -> None:
    message = refusal(tmp_path / "none.toml", {"IMAGINE_SEGMIND__BASE_ULR": "http://x"})
    assert message == "Bad configuration: segmind.base_ulr: Extra inputs are not permitted"


def test_a_model_check_s_reason_is_told_after_value_error(tmp_path: Path) -> None:
    message = refusal(tmp_path / "none.toml", {"IMAGINE_QUOTA__BASE_COSTS": "{ chroma = 0 }"})
    assert message == (
        "Bad configuration: quota.base_costs: Value error, "
        "the cost of chroma must be a number above 0, not 0.0"
    )
