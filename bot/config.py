"""Settings: config.toml plus the environment (IMAGINE_SECTION__KEY); secrets only from the environment."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.core.catalog import ALL_MODELS, DEFAULT_MODEL, Catalog
from bot.core.quota import Period

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


class RoutingSettings(Section):
    chroma: Route = "auto"
    flux_schnell: Route = Field("auto", alias="flux-schnell")
    kolors: Route = "auto"

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
    gateway_url: str = "wss://gateway.discord.gg/"


class SlackSettings(Section):
    admin_user_ids: list[str] = Field(default_factory=list)
    http_port: int = Field(3000, ge=1, le=65535)
    api_base_url: str = "https://slack.com/api/"


class Settings(BaseSettings):
    """Every setting. Build with Settings.load(); secrets are SecretStr and never printed."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGINE_", env_nested_delimiter="__", extra="forbid",
        populate_by_name=True,
    )

    segmind: SegmindSettings = Field(default_factory=SegmindSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    catalog: CatalogSettings = Field(default_factory=CatalogSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)

    # Secrets: only from the environment (or passed in by tests), never from config.toml.
    segmind_api_key: SecretStr | None = Field(None, exclude=True)
    worker_api_key: SecretStr | None = Field(None, exclude=True)
    discord_token: SecretStr | None = Field(None, exclude=True)
    slack_bot_token: SecretStr | None = Field(None, exclude=True)
    slack_app_token: SecretStr | None = Field(None, exclude=True)
    slack_signing_secret: SecretStr | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load() alone reads the environment (the `environ` it is given), so a test's or a
        # caller's environment is the whole story and every value is parsed one way.
        return (init_settings,)

    @classmethod
    def load(cls, path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
        """config.toml (if present) overlaid by IMAGINE_* variables; raises ConfigError."""
        environ = dict(os.environ if environ is None else environ)
        path = path or Path(environ.get("IMAGINE_CONFIG", "config.toml"))
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                raise ConfigError(f"{path} is not valid TOML: {error}") from None
        leaked = sorted(k for k in data if k.lower() in SECRET_ENV or k.upper() in SECRET_ENV.values())
        if leaked:
            raise ConfigError(
                f"{path}: {', '.join(leaked)} must come from the environment, not the config file."
            )
        data = _merge(data, _env_overrides(environ))
        for field, name in SECRET_ENV.items():
            if environ.get(name):
                data[field] = environ[name]
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(_explain(error)) from None

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


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """IMAGINE_SEGMIND__BASE_URL=... -> {"segmind": {"base_url": "..."}}."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith("IMAGINE_") or name in SECRET_ENV.values() or name == "IMAGINE_CONFIG":
            continue
        path = [p.lower() for p in name[len("IMAGINE_"):].split("__")]
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {key} is set both as a value and as a section.")
        if isinstance(node.get(path[-1]), dict):
            raise ConfigError(f"{name}: {path[-1]} is set both as a value and as a section.")
        node[path[-1]] = _parse_env_value(value)
    return out


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


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"])
        parts.append(f"{key}: {item['msg']}")
    return "Bad configuration: " + "; ".join(parts)
