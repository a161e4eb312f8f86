"""Settings from the environment and an optional TOML file (environment wins).

Environment variables are `SWITCHBOARD_<FIELD>` (e.g. `SWITCHBOARD_HTTP_PORT`), except
`KAFKA_BOOTSTRAP_SERVERS`, which keeps the name every Kafka tool uses. The TOML file is named
by `SWITCHBOARD_CONFIG`; its keys are the field names below.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SWITCHBOARD_"
CONFIG_FILE_ENV = "SWITCHBOARD_CONFIG"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "switchboard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Kafka. Unset bootstrap servers mean "start a local broker" (run command, tests, bench).
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(BOOTSTRAP_ENV, "kafka_bootstrap_servers"),
    )
    kafka_port: int = Field(default=9092, description="port of the local broker we start")
    kafka_controller_port: int = 9093
    kafka_heap: str = Field(default="512m", pattern=r"^[1-9][0-9]*[kKmMgG]$",
                            description="JVM heap of the local broker we start (-Xmx)")
    kafka_client_id: str = "switchboard"
    produce_timeout_s: float = Field(
        default=5.0, gt=0, description="how long a webhook waits for Kafka acks before 503"
    )

    # Topics
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    create_topics: bool = True

    # Where the local broker keeps its jars (cache) and data.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Path(".switchboard")

    # HTTP ingest
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    http_workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    accounts_file: Path | None = None
    public_url: str | None = Field(
        default=None, description="how providers reach ingest, for notify/webhook URLs we send"
    )

    # Bots
    rules_file: Path | None = Field(default=None, description="keyword/auto-reply rules (TOML)")
    bot_timeout_s: float = Field(
        default=60.0, gt=0, description="longest a bot may take over one message (then retried)")
    simulator_port: int = Field(default=8090, description="port of `switchboard simulate`")
    metrics_port: int | None = Field(
        default=None, description="workers serve Prometheus /metrics here (unset: no endpoint)")

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    # `debug` and `DEBUG`, `JSON` and `json`: people type either.
    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def ingest_url(self) -> str:
        """Where providers reach ingest: the public URL, else our own host and port."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def uses_local_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers


def env_var_names() -> set[str]:
    """Every environment variable the settings read (checked against docker-compose.yml)."""
    names = {CONFIG_FILE_ENV}
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(a) for a in alias.choices if str(a).isupper())
        else:
            names.add(ENV_PREFIX + name.upper())
    return names


def env_var_of(field: str) -> str:
    """The environment variable that sets a field."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return next(str(a) for a in alias.choices if str(a).isupper())
    return ENV_PREFIX + field.upper()


class SettingsError(ValueError):
    """The settings cannot be read; the message says which and why, in one line."""


def _describe(exc: ValidationError) -> str:
    """Every bad setting on one line, by its name in the config file and in the environment
    (instead of pydantic's traceback)."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"{field} ({env_var_of(field)})" if field in Settings.model_fields else field
        given = repr(error.get("input"))[:60]
        problems.append(f"{name}: {error['msg']} (got {given})")
    return "invalid settings: " + "; ".join(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (SettingsError if they cannot be read)."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except FileNotFoundError as exc:
        raise SettingsError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_FILE_ENV}={os.environ.get(CONFIG_FILE_ENV)}: not valid "
                            f"TOML: {exc}") from None
