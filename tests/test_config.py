"""Settings: config.toml plus the environment (IMAGINE_SECTION__KEY); secrets only from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import SECRET_ENV, ConfigError, Settings
from bot.core.quota import Period

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET_VALUE = "s3cr3t-value-that-must-never-print"


def load(tmp_path: Path, toml: str | None = None, **environ: str) -> Settings:
    config = tmp_path / "config.toml"
    if toml is not None:
        config.write_text(toml, encoding="utf-8")
    return Settings.load(config, environ)


def refusal(tmp_path: Path, toml: str | None = None, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, toml, **environ)
    return str(caught.value)


# --- defaults ------------------------------------------------------------------------------------


def test_without_a_config_file_every_setting_has_its_default(tmp_path):
    settings = load(tmp_path)
    assert settings.segmind.base_url == "https://api.segmind.com/v1"
    assert settings.worker.url == ""
    assert settings.storage.path == Path("./data")
    assert settings.quota.period is Period.DAY
    assert settings.catalog.default_model == "flux-schnell"


def test_segmind_has_a_positive_concurrency_and_timeout_by_default(tmp_path):
    settings = load(tmp_path)
    assert settings.segmind.concurrency >= 1
    assert settings.segmind.timeout_s > 0


def test_every_model_is_routed_automatically_by_default(tmp_path):
    routing = load(tmp_path).routing
    assert [routing.route(m) for m in ("chroma", "flux-schnell", "kolors")] == ["auto"] * 3


def test_the_default_base_costs_are_flux_1_kolors_2_chroma_4(tmp_path):
    assert load(tmp_path).quota.base_costs == {"flux-schnell": 1, "kolors": 2, "chroma": 4}


def test_the_default_catalog_offers_all_three_models(tmp_path):
    assert set(load(tmp_path).build_catalog().names) == {"chroma", "flux-schnell", "kolors"}


def test_without_secrets_in_the_environment_every_secret_is_none(tmp_path):
    settings = load(tmp_path)
    assert all(getattr(settings, field) is None for field in SECRET_ENV)


# --- the TOML file -------------------------------------------------------------------------------


def test_values_in_config_toml_are_used(tmp_path):
    settings = load(
        tmp_path,
        """
        [segmind]
        base_url = "http://127.0.0.1:9000/v1"
        concurrency = 8
        [worker]
        url = "http://gpu:8188"
        [storage]
        path = "/srv/imagine"
        [quota]
        default_allowance = 20
        period = "week"
        """,
    )
    assert settings.segmind.base_url == "http://127.0.0.1:9000/v1"
    assert settings.segmind.concurrency == 8
    assert settings.worker.url == "http://gpu:8188"
    assert settings.storage.path == Path("/srv/imagine")
    assert (settings.quota.default_allowance, settings.quota.period) == (20, Period.WEEK)


def test_a_setting_left_out_of_a_section_keeps_its_default(tmp_path):
    settings = load(tmp_path, '[segmind]\nconcurrency = 2\n')
    assert settings.segmind.base_url == "https://api.segmind.com/v1"


def test_routing_takes_the_model_name_with_its_hyphen(tmp_path):
    settings = load(tmp_path, '[routing]\n"flux-schnell" = "worker"\nchroma = "segmind"\n')
    assert settings.routing.route("flux-schnell") == "worker"
    assert settings.routing.route("chroma") == "segmind"


def test_imagine_config_names_the_file_when_no_path_is_given(tmp_path, monkeypatch):
    config = tmp_path / "elsewhere.toml"
    config.write_text('[worker]\nurl = "http://gpu"\n')
    monkeypatch.chdir(tmp_path)
    assert Settings.load(None, {"IMAGINE_CONFIG": str(config)}).worker.url == "http://gpu"


def test_config_toml_in_the_working_folder_is_read_by_default(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text('[worker]\nconcurrency = 3\n')
    monkeypatch.chdir(tmp_path)
    assert Settings.load(None, {}).worker.concurrency == 3


def test_the_catalog_section_narrows_the_catalog(tmp_path):
    catalog = load(
        tmp_path,
        '[catalog]\nallowed_models = ["kolors", "chroma"]\nmax_steps = 30\nmax_samples = 2\n'
        "max_pixels = 1_500_000\n",
    ).build_catalog()
    assert catalog.names == ("chroma", "kolors")
    assert catalog.default_model == "chroma"
    assert catalog.get("kolors").steps.high == 30
    assert catalog.get("kolors").samples.high == 2
    assert catalog.get("chroma").max_pixels == 1_500_000


# --- environment overrides -------------------------------------------------------------------------


def test_imagine_segmind_base_url_overrides_the_file(tmp_path):
    settings = load(
        tmp_path,
        '[segmind]\nbase_url = "http://from-file"\nconcurrency = 7\n',
        IMAGINE_SEGMIND__BASE_URL="http://from-env",
    )
    assert settings.segmind.base_url == "http://from-env"
    assert settings.segmind.concurrency == 7  # the rest of the section still comes from the file


def test_imagine_storage_path_overrides_the_file(tmp_path):
    settings = load(tmp_path, '[storage]\npath = "/from/file"\n', IMAGINE_STORAGE__PATH="/from/env")
    assert settings.storage.path == Path("/from/env")


def test_an_environment_override_works_without_a_config_file(tmp_path):
    assert load(tmp_path, IMAGINE_WORKER__URL="http://gpu:1").worker.url == "http://gpu:1"


def test_numbers_from_the_environment_are_read_as_numbers(tmp_path):
    settings = load(tmp_path, IMAGINE_SEGMIND__CONCURRENCY="12", IMAGINE_SEGMIND__TIMEOUT_S="2.5")
    assert (settings.segmind.concurrency, settings.segmind.timeout_s) == (12, 2.5)


def test_a_period_from_the_environment_is_read(tmp_path):
    assert load(tmp_path, IMAGINE_QUOTA__PERIOD="month").quota.period is Period.MONTH


def test_a_list_of_numbers_from_the_environment_is_read_as_a_list(tmp_path):
    assert load(tmp_path, IMAGINE_DISCORD__GUILD_IDS="[1, 22]").discord.guild_ids == [1, 22]


def test_a_list_of_names_from_the_environment_overrides_the_file_s_list(tmp_path):
    settings = load(
        tmp_path,
        '[catalog]\nallowed_models = ["kolors"]\n',
        IMAGINE_CATALOG__ALLOWED_MODELS='["chroma", "flux-schnell"]',
    )
    assert settings.catalog.allowed_models == ["chroma", "flux-schnell"]


def test_a_json_table_from_the_environment_is_read_as_a_table(tmp_path):
    # Regression: only TOML inline tables were read; a JSON object stopped start-up.
    settings = load(tmp_path, IMAGINE_WORKER__MODELS='{"chroma": "/models/chroma"}')
    assert settings.worker.models == {"chroma": "/models/chroma"}


def test_a_toml_inline_table_from_the_environment_is_read_as_a_table(tmp_path):
    settings = load(tmp_path, IMAGINE_QUOTA__BASE_COSTS="{ flux-schnell = 2, kolors = 3, chroma = 5 }")
    assert settings.quota.base_costs == {"flux-schnell": 2, "kolors": 3, "chroma": 5}


def test_routing_for_flux_schnell_is_set_with_an_underscore_in_the_environment(tmp_path):
    assert load(tmp_path, IMAGINE_ROUTING__FLUX_SCHNELL="worker").routing.route("flux-schnell") == "worker"


def test_variables_without_the_imagine_prefix_are_ignored(tmp_path):
    assert load(tmp_path, HOME="/root", SEGMIND__BASE_URL="http://x").segmind.base_url == (
        "https://api.segmind.com/v1"
    )


def test_only_the_environment_given_to_load_is_read(tmp_path, monkeypatch):
    # Regression: pydantic-settings also read os.environ behind load()'s back.
    monkeypatch.setenv("IMAGINE_SEGMIND__BASE_URL", "http://from-process-env")
    assert load(tmp_path).segmind.base_url == "https://api.segmind.com/v1"


def test_the_process_environment_is_read_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGINE_SEGMIND__BASE_URL", "http://from-process-env")
    monkeypatch.setenv("SEGMIND_API_KEY", SECRET_VALUE)
    settings = Settings.load(tmp_path / "none.toml")
    assert settings.segmind.base_url == "http://from-process-env"
    assert settings.secret("segmind_api_key") == SECRET_VALUE


# --- secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "name"), sorted(SECRET_ENV.items()))
def test_each_secret_comes_from_its_environment_variable(tmp_path, field, name):
    settings = load(tmp_path, **{name: SECRET_VALUE})
    assert settings.secret(field) == SECRET_VALUE


def test_the_secrets_are_the_six_the_issue_names():
    assert set(SECRET_ENV.values()) == {
        "SEGMIND_API_KEY", "IMAGINE_WORKER_API_KEY", "DISCORD_TOKEN", "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET",
    }


def test_an_empty_secret_variable_counts_as_unset(tmp_path):
    assert load(tmp_path, DISCORD_TOKEN="").discord_token is None


@pytest.mark.parametrize("key", sorted([*SECRET_ENV, *SECRET_ENV.values()]))
def test_a_secret_in_config_toml_is_refused_naming_it(tmp_path, key):
    message = refusal(tmp_path, f'{key} = "{SECRET_VALUE}"\n')
    assert key in message
    assert "environment" in message
    assert SECRET_VALUE not in message


def test_a_secret_in_config_toml_is_refused_even_when_the_environment_has_it_too(tmp_path):
    refusal(tmp_path, f'segmind_api_key = "{SECRET_VALUE}"\n', SEGMIND_API_KEY="other")


def test_a_secret_tucked_into_a_section_of_config_toml_is_refused_naming_the_key(tmp_path):
    message = refusal(tmp_path, f'[segmind]\napi_key = "{SECRET_VALUE}"\n')
    assert "segmind.api_key" in message


@pytest.mark.parametrize("show", [repr, str])
def test_a_secret_never_shows_in_the_settings_repr_or_str(tmp_path, show):
    settings = load(tmp_path, **{name: SECRET_VALUE for name in SECRET_ENV.values()})
    assert SECRET_VALUE not in show(settings)


def test_a_secret_never_shows_in_a_dump_of_the_settings(tmp_path):
    settings = load(tmp_path, SEGMIND_API_KEY=SECRET_VALUE, DISCORD_TOKEN=SECRET_VALUE)
    assert SECRET_VALUE not in str(settings.model_dump())
    assert SECRET_VALUE not in settings.model_dump_json()


def test_a_secret_is_shown_only_by_asking_for_it_by_name(tmp_path):
    settings = load(tmp_path, SLACK_BOT_TOKEN=SECRET_VALUE)
    assert str(settings.slack_bot_token) != SECRET_VALUE
    assert settings.secret("slack_bot_token") == SECRET_VALUE


# --- bad configuration stops start-up naming the key ---------------------------------------------------


def test_a_bad_value_in_the_file_stops_start_up_naming_the_key(tmp_path):
    message = refusal(tmp_path, "[segmind]\nconcurrency = 0\n")
    assert "segmind.concurrency" in message


def test_a_bad_value_from_the_environment_stops_start_up_naming_the_key(tmp_path):
    message = refusal(tmp_path, IMAGINE_SEGMIND__TIMEOUT_S="soon")
    assert "segmind.timeout_s" in message


def test_an_unknown_key_stops_start_up_naming_it(tmp_path):
    assert "segmind.base_ulr" in refusal(tmp_path, '[segmind]\nbase_ulr = "http://x"\n')


def test_an_unknown_section_from_the_environment_stops_start_up_naming_it(tmp_path):
    assert "segmnd" in refusal(tmp_path, IMAGINE_SEGMND__BASE_URL="http://x")


def test_an_unknown_period_stops_start_up_naming_quota_period(tmp_path):
    message = refusal(tmp_path, '[quota]\nperiod = "year"\n')
    assert "quota.period" in message
    assert "day" in message and "week" in message and "month" in message


def test_an_unknown_route_stops_start_up_naming_it(tmp_path):
    assert "routing.kolors" in refusal(tmp_path, '[routing]\nkolors = "cloud"\n')


def test_an_unknown_model_in_allowed_models_stops_start_up(tmp_path):
    message = refusal(tmp_path, '[catalog]\nallowed_models = ["dall-e"]\n')
    assert "catalog.allowed_models" in message


def test_an_empty_list_of_allowed_models_stops_start_up(tmp_path):
    assert "catalog.allowed_models" in refusal(tmp_path, "[catalog]\nallowed_models = []\n")


def test_an_unknown_default_model_stops_start_up_naming_it(tmp_path):
    # Regression: an unknown default_model was silently replaced by the first allowed model.
    message = refusal(tmp_path, '[catalog]\ndefault_model = "dall-e"\n')
    assert "catalog.default_model" in message and "dall-e" in message


def test_an_unknown_model_in_base_costs_stops_start_up(tmp_path):
    message = refusal(tmp_path, "[quota]\nbase_costs = { dall-e = 3 }\n")
    assert "quota.base_costs" in message and "dall-e" in message


@pytest.mark.parametrize("bad", ["0", "-1", "inf", "nan"])
def test_a_base_cost_that_is_not_above_zero_stops_start_up(tmp_path, bad):
    message = refusal(tmp_path, f"[quota]\nbase_costs = {{ chroma = {bad} }}\n")
    assert "quota.base_costs" in message


def test_an_unknown_model_in_worker_models_stops_start_up(tmp_path):
    assert "worker.models" in refusal(tmp_path, '[worker]\nmodels = { sdxl = "/m" }\n')


def test_a_file_that_is_not_toml_stops_start_up_naming_the_file(tmp_path):
    message = refusal(tmp_path, "[segmind\nbase_url = \n")
    assert "config.toml" in message and "TOML" in message


def test_several_bad_values_are_all_named(tmp_path):
    message = refusal(tmp_path, "[segmind]\nconcurrency = 0\n[worker]\nport = 0\n")
    assert "segmind.concurrency" in message and "worker.port" in message


def test_a_variable_that_is_both_a_value_and_a_section_stops_start_up(tmp_path):
    # Regression: IMAGINE_SEGMIND with IMAGINE_SEGMIND__BASE_URL raised a TypeError.
    message = refusal(tmp_path, IMAGINE_SEGMIND="x", IMAGINE_SEGMIND__BASE_URL="http://y")
    assert "IMAGINE_SEGMIND" in message


def test_a_bad_value_is_a_config_error_and_never_shows_a_secret(tmp_path):
    message = refusal(tmp_path, "[segmind]\nconcurrency = -4\n", SEGMIND_API_KEY=SECRET_VALUE)
    assert SECRET_VALUE not in message


# --- the example file --------------------------------------------------------------------------------


def test_config_example_toml_at_the_repo_root_loads_without_error():
    example = REPO_ROOT / "config.example.toml"
    assert example.is_file(), "config.example.toml is missing at the repository root"
    settings = Settings.load(example, {})
    assert settings.build_catalog().names


def test_config_example_toml_puts_no_secret_in_the_file():
    text = (REPO_ROOT / "config.example.toml").read_text(encoding="utf-8")
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip().lower()
        if "=" in line and not line.lstrip().startswith("#"):
            assert key not in SECRET_ENV and key.upper() not in SECRET_ENV.values(), line
