"""Settings: config.toml plus the environment (IMAGINE_SECTION__KEY); secrets only from the environment."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.core.budget import DEFAULT_PRICES
from bot.core.catalog import ALL_MODELS, DEFAULT_MODEL, Catalog
from bot.core.quota import Period

CONFIG_FILE = "config.toml"  # in the working folder, unless IMAGINE_CONFIG names another
CONFIG_VARIABLE = "IMAGINE_CONFIG"
SECRET_ENV = {
    "segmind_api_key": "SEGMIND_API_KEY",
    "worker_api_key": "IMAGINE_WORKER_API_KEY",
    "discord_token": "DISCORD_TOKEN",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
}
MODEL_NAMES = tuple(m.name for m in ALL_MODELS)
Route = Literal["segmind", "worker", "auto"]


class ConfigError(Exception):
    """A bad setting: the message names the key and what is wrong."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SegmindSettings(Section):
    base_url: str = "https://api.segmind.com/v1"
    concurrency: int = Field(4, ge=1, le=256)
    timeout_s: float = Field(120.0, gt=0, le=3600)


class WorkerSettings(Section):
    url: str = ""  # empty: no worker
    concurrency: int = Field(1, ge=1, le=64)
    timeout_s: float = Field(300.0, gt=0, le=3600)
    host: str = "127.0.0.1"  # for `imagine-bot worker`
    port: int = Field(8188, ge=1, le=65535)
    models: dict[str, str] = Field(default_factory=dict)  # model -> local folder or hub id

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}")
        return value


class FleetSettings(Section):
    """[fleet]: `imagine-bot fleet`, the worker's models on a Ray Serve cluster."""

    models: dict[str, str] = Field(default_factory=dict)  # model -> folder or hub id
    replicas: int | None = Field(None, ge=1)  # a fixed count; wins over min/max
    min_replicas: int = Field(1, ge=1)
    max_replicas: int | None = Field(None, ge=1)  # None: min_replicas (no autoscaling)
    gpus_per_replica: float = Field(1.0, ge=0)
    cpus_per_replica: float = Field(1.0, ge=0)
    max_batch_size: int = Field(4, ge=1, le=64)
    batch_wait_s: float = Field(0.02, ge=0, le=5)
    address: str = ""  # empty: start a local Ray; "auto" or "ray://head:10001": join that one
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: dict[str, str]) -> dict[str, str]:
        return WorkerSettings._known_models(value)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> FleetSettings:
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas "
                             f"({self.min_replicas})")
        return self

    def replica_bounds(self) -> tuple[int, int]:
        """(min, max) replicas per model."""
        if self.replicas is not None:
            return self.replicas, self.replicas
        return self.min_replicas, self.max_replicas or self.min_replicas


class RoutingSettings(Section):
    chroma: Route = "auto"
    flux_schnell: Route = Field("auto", alias="flux-schnell")
    kolors: Route = "auto"
    # auto only: a job whose estimated wait on the worker (fleet) is longer goes to Segmind.
    overflow_after_s: float | None = Field(None, gt=0, allow_inf_nan=False)  # None: off

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def route(self, model: str) -> Route:
        return getattr(self, model.replace("-", "_"))


class StorageSettings(Section):
    path: Path = Path("./data")
    retention_days: float = Field(30.0, gt=0)


class QuotaSettings(Section):
    default_allowance: int = Field(50, ge=0)
    period: Period = Period.DAY
    admins_unlimited: bool = True
    max_queued_per_user: int = Field(5, ge=1, le=100_000)
    base_costs: dict[str, float] = Field(
        default_factory=lambda: {"flux-schnell": 1.0, "kolors": 2.0, "chroma": 4.0}
    )

    @field_validator("base_costs")
    @classmethod
    def _known_costs(cls, value: dict[str, float]) -> dict[str, float]:
        for name, cost in value.items():
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}")
            if not cost > 0 or cost == float("inf"):
                raise ValueError(f"the cost of {name} must be a number above 0, not {cost}")
        return value


class BudgetSettings(Section):
    """[budget]: the team's Segmind spending per period, and [budget.prices]."""

    period: Period = Period.MONTH
    limit: float = Field(0.0, ge=0, allow_inf_nan=False)  # Segmind credits; 0 = no limit
    warn_at: float = Field(0.8, gt=0, le=1)  # alert admins at this share of the limit
    low_credits: float = Field(0.0, ge=0, allow_inf_nan=False)  # alert below; 0 = off
    prices: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES))

    @field_validator("prices")
    @classmethod
    def _known_prices(cls, value: dict[str, float]) -> dict[str, float]:
        for name, price in value.items():
            if name not in MODEL_NAMES:
                raise ValueError(f"unknown model {name!r}; use one of {', '.join(MODEL_NAMES)}")
            if not 0 <= price < float("inf"):
                raise ValueError(f"the price of {name} must be a number of 0 or more, not {price}")
        return {**DEFAULT_PRICES, **value}  # a model left out keeps its default price


class CatalogSettings(Section):
    default_model: str = DEFAULT_MODEL
    allowed_models: list[str] = Field(default_factory=lambda: list(MODEL_NAMES))
    max_steps: int | None = Field(None, ge=1)
    max_samples: int | None = Field(None, ge=1)
    max_pixels: int | None = Field(None, ge=512 * 512)

    @field_validator("allowed_models")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in MODEL_NAMES]
        if unknown or not value:
            raise ValueError(f"use one or more of {', '.join(MODEL_NAMES)}")
        return value

    @field_validator("default_model")
    @classmethod
    def _known_default(cls, value: str) -> str:
        if value not in MODEL_NAMES:
            raise ValueError(f"unknown model {value!r}; use one of {', '.join(MODEL_NAMES)}")
        return value


class PolicySettings(Section):
    blocked_terms: list[str] = Field(default_factory=list)
    nsfw_terms: list[str] = Field(default_factory=list)


class DispatchSettings(Section):
    max_retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_cap_s: float = Field(30.0, ge=0)
    progress_interval_s: float = Field(2.0, gt=0)
    initial_eta_s: float = Field(10.0, gt=0)
    heartbeat_s: float = Field(10.0, gt=0, le=30)
    variation_strength: float = Field(0.3, gt=0, le=1)
    drain_s: float = Field(20.0, ge=0, le=600)  # on SIGTERM: how long running jobs may finish


class MetricsSettings(Section):
    host: str = "127.0.0.1"  # 0.0.0.0 in a container, so the health check can reach it
    port: int = Field(9464, ge=0, le=65535)  # 0 turns /healthz and /metrics off


class DiscordSettings(Section):
    guild_ids: list[int] = Field(default_factory=list)
    admin_user_ids: list[int] = Field(default_factory=list)
    admin_role_ids: list[int] = Field(default_factory=list)
    api_base_url: str = "https://discord.com/api/v10"
    admin_channel_id: int | None = None  # where budget and health alerts are posted
    gateway_url: str = "wss://gateway.discord.gg/"


class SlackSettings(Section):
    admin_user_ids: list[str] = Field(default_factory=list)
    http_port: int = Field(3000, ge=1, le=65535)
    api_base_url: str = "https://slack.com/api/"
    admin_channel: str = ""  # channel id for budget and health alerts (and /imagine-stats charts)


def _unset_if_empty(value: object) -> object:
    """An empty secret variable counts as unset."""
    return None if value == "" else value


OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_unset_if_empty)]

# What Settings.load() was asked to read. pydantic-settings builds its sources in a classmethod
# that gets no call arguments (pydantic/pydantic-settings#259), so load() hands the file and the
# environment over here, scoped to its own call; Settings() alone reads os.environ.
_LOADING: ContextVar[tuple[Path | None, Mapping[str, str]] | None] = ContextVar(
    "_LOADING", default=None
)


class Settings(BaseSettings):
    """Every setting. Build with Settings.load(); secrets are SecretStr and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGINE_", env_nested_delimiter="__", toml_file=CONFIG_FILE,
        extra="forbid", populate_by_name=True,
    )

    segmind: SegmindSettings = Field(default_factory=SegmindSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)

    # Secrets: only from the environment (or passed in by tests), never from config.toml. The
    # alias is the variable's own name, as these carry no IMAGINE_ prefix (bar the worker key).
    segmind_api_key: OptionalSecret = Field(
        None, validation_alias=SECRET_ENV["segmind_api_key"], exclude=True
    )
    worker_api_key: OptionalSecret = Field(
        None, validation_alias=SECRET_ENV["worker_api_key"], exclude=True
    )
    discord_token: OptionalSecret = Field(
        None, validation_alias=SECRET_ENV["discord_token"], exclude=True
    )
    slack_bot_token: OptionalSecret = Field(
        None, validation_alias=SECRET_ENV["slack_bot_token"], exclude=True
    )
    slack_app_token: OptionalSecret = Field(
        None, validation_alias=SECRET_ENV["slack_app_token"], exclude=True
    )
    slack_signing_secret: OptionalSecret = Field(
        None, validation_alias=SECRET_ENV["slack_signing_secret"], exclude=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then config.toml; no .env file, no secrets folder."""
        path, environ = _LOADING.get() or (None, os.environ)
        if path is None:
            path = Path(environ.get(CONFIG_VARIABLE, CONFIG_FILE))
        # The file is read first, so a broken or secret-holding file is reported before the
        # environment is looked at; the first source listed wins.
        toml = _TomlSource(settings_cls, path)
        return (init_settings, _EnvSource(settings_cls, environ), toml)

    @classmethod
    def load(cls, path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
        """config.toml (if present) overlaid by IMAGINE_* variables; raises ConfigError."""
        token = _LOADING.set((path, dict(os.environ if environ is None else environ)))
        try:
            return cls()
        except ValidationError as error:
            raise ConfigError(_explain(error)) from None
        finally:
            _LOADING.reset(token)

    def build_catalog(self) -> Catalog:
        """The catalog narrowed by [catalog] and priced by [quota] base_costs."""
        return Catalog().narrowed(
            allowed_models=tuple(self.catalog.allowed_models),
            max_steps=self.catalog.max_steps,
            max_samples=self.catalog.max_samples,
            max_pixels=self.catalog.max_pixels,
            base_costs=self.quota.base_costs,
            default_model=self.catalog.default_model,
        )

    def secret(self, field: str) -> str | None:
        """The plain value of a secret, for the one place that sends it."""
        value = getattr(self, field)
        return value.get_secret_value() if value is not None else None


class _TomlSource(TomlConfigSettingsSource):
    """pydantic-settings' TOML source, with its failures told as ConfigError sentences."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        try:
            super().__init__(settings_cls, toml_file=path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        # Refused rather than ignored: a secret in a file that gets copied and committed has
        # leaked already, and the person who put it there should hear so.
        leaked = sorted(
            key for key in self.toml_data
            if key.lower() in SECRET_ENV or key.upper() in SECRET_ENV.values()
        )
        if leaked:
            raise ConfigError(
                f"{path}: {', '.join(leaked)} must come from the environment, not the config file."
            )


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given environment, strict about names."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        # EnvSettingsSource reads os.environ through _load_env_vars(), a private hook (the one
        # its .env and cloud sources override); assigning the public env_vars it then reads from
        # swaps in the given environment without relying on that name. Sorted, so a table comes
        # before the variables that set keys inside it and they are merged into it, not lost.
        self.environ = environ
        self.env_vars = dict(
            sorted((name if self.case_sensitive else name.lower(), value) for name, value in environ.items())
        )

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        """JSON or TOML for lists and tables; anything else is left for validation to name."""
        return _parse_env_value(value)

    def __call__(self) -> dict[str, Any]:
        """The settings the environment sets, unknown IMAGINE_ names included so they are refused."""
        self._refuse_value_and_section()
        data = super().__call__()
        # EnvSettingsSource only looks up the settings there are, so a misspelt IMAGINE_ variable
        # would be ignored; passing it on (as the .env source does) lets extra="forbid" name it.
        prefix, delimiter = self.env_prefix.lower(), str(self.env_nested_delimiter)
        for name, value in self.env_vars.items():
            if not name.startswith(prefix) or name == CONFIG_VARIABLE.lower():
                continue
            key = name[len(prefix):].split(delimiter)[0]
            if key not in self.settings_cls.model_fields:
                data.setdefault(key, value)
        return data

    def _refuse_value_and_section(self) -> None:
        """IMAGINE_A="x" with IMAGINE_A__B="y": pydantic-settings would quietly keep one."""
        prefix, delimiter = self.env_prefix.lower(), str(self.env_nested_delimiter)
        paths = {
            name: tuple(name[len(prefix):].lower().split(delimiter))
            for name in sorted(self.environ) if name.lower().startswith(prefix)
        }
        values = {path: self.environ[name] for name, path in paths.items()}
        for name, path in paths.items():
            for depth in range(1, len(path)):
                above = values.get(path[:depth])
                # A table above is a section too: the keys set below it are merged into it.
                if above is not None and not isinstance(_parse_env_value(above), dict):
                    raise ConfigError(f"{name}: {path[depth - 1]} is set both as a value and as a section.")


def _parse_env_value(value: str) -> Any:
    """JSON or TOML values for lists and dicts ("[1, 2]"); everything else stays a string."""
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            pass
        try:
            return tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError:
            return value
    return value


def _explain(error: ValidationError) -> str:
    """One sentence naming every bad key (section.key) and what is wrong with it."""
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        parts.append(f"{key}: {item['msg']}")
    return "Bad configuration: " + "; ".join(parts)
