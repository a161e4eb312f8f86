"""Settings from the environment and an optional TOML file (environment wins).

Environment variables are `SWITCHBOARD_<FIELD>` (e.g. `SWITCHBOARD_HTTP_PORT`), except
`KAFKA_BOOTSTRAP_SERVERS`, which keeps the name every Kafka tool uses. The TOML file is named
by `SWITCHBOARD_CONFIG`; its keys are the field names below. How those two sources are read
(an empty variable, a byte order mark) is in switchboard.settings_sources.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

from switchboard import kafka_settings
from switchboard.bootstrap_servers import check_bootstrap_servers, masked_logins
from switchboard.clients import Compression, KafkaConnection, SaslMechanism, SecurityProtocol
from switchboard.kafka_settings import BOOTSTRAP_ENV
from switchboard.logs import register_secrets, scrub, secret_key
from switchboard.settings_sources import ConfigFileSource, EnvSource
from switchboard.urls import http_url, origin
from switchboard.validation import unreadable

ENV_PREFIX = "SWITCHBOARD_"
CONFIG_FILE_ENV = "SWITCHBOARD_CONFIG"
# Webex Connect gives up on a webhook after this and sends it again: ingest's 503 (at
# produce_timeout_s) must reach it first.
PROVIDER_GIVES_UP_S = 10.0
# A TCP port to listen on or connect to (0 would be whatever the system picks).
Port = Annotated[int, Field(ge=1, le=65535)]


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "switchboard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # Kafka. Unset bootstrap servers mean "start a local broker" (run command, tests, bench).
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(BOOTSTRAP_ENV, "kafka_bootstrap_servers"),
    )
    kafka_port: Port = Field(default=9092, description="port of the local broker we start")
    kafka_controller_port: Port = 9093
    kafka_heap: str = Field(default="512m", pattern=r"^[1-9][0-9]*[kKmMgG]$",
                            description="JVM heap of the local broker we start (-Xmx)")
    kafka_client_id: str = "switchboard"
    # Above PROVIDER_GIVES_UP_S ingest warns at start (not refuses: a slow cluster may want it).
    produce_timeout_s: float = Field(
        default=5.0, gt=0, description="how long a webhook waits for Kafka acks before 503"
    )
    # How to reach a cluster that needs TLS and/or a login (every client uses them).
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # OAUTHBEARER: tokens from the cluster's OAuth server (client credentials grant).
    kafka_oauth_token_url: str | None = Field(
        default=None, description="the OAuth server's token endpoint (https)")
    kafka_oauth_client_id: str | None = None
    kafka_oauth_client_secret: SecretStr | None = None
    kafka_oauth_scope: str | None = None
    kafka_oauth_extensions: dict[str, str] = Field(
        default_factory=dict,
        description="SASL extensions sent with the token (Confluent Cloud: logicalCluster, "
                    "identityPoolId); JSON in the environment")
    kafka_oauth_cafile: Path | None = Field(
        default=None, description="CA certificates (PEM) the token endpoint's certificate is "
                                  "checked against; unset: the system's")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA certificates (PEM) to trust; unset: the system's")
    kafka_ssl_certfile: Path | None = Field(
        default=None, description="client certificate (PEM), for clusters that want one (mTLS)")
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_compression: Compression = Field(
        default="none", description="of the records our producers write (consumers need none)")
    # Kafka allows letters, digits, '.', '_' and '-' in a topic name, at most 249 of them.
    kafka_name_prefix: str = Field(
        default="", pattern=r"^[A-Za-z0-9._-]{0,200}$",
        description="before every topic and consumer group name (e.g. `staging.`), so "
                    "installs can share a cluster")

    # Topics
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication_factor: int = Field(default=1, ge=1)
    create_topics: bool = True

    # Where the local broker keeps its jars (cache) and data.
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    data_dir: Path = Path(".switchboard")

    # HTTP ingest
    # Also where the simulator and a worker's metrics and probes listen; the Docker image sets
    # 0.0.0.0, as nothing outside a container reaches its 127.0.0.1.
    http_host: str = "127.0.0.1"
    http_port: Port = 8080
    http_workers: int = Field(default=1, ge=1)
    # Beyond it a provider gets a 503 and retries later, rather than every webhook slowing
    # down together until they all time out; the connections of a kept-alive client count.
    http_max_connections: int | None = Field(
        default=None, ge=1,
        description="connections each ingest process (`serve`, each of its workers, `run`) "
                    "serves at once; a request on one more gets a JSON 503 (unset: no limit)")
    # At most what the raw topic (2 MiB records) holds in base64, with room for the envelope:
    # a larger body would be refused by Kafka on every retry (503 for ever).
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1_500_000)
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="longest a request's URL and headers may take to arrive (then 408): a "
                    "client sending a byte at a time would otherwise hold its connection")
    body_timeout_s: float = Field(
        default=30.0, gt=0, le=3600,
        description="longest a webhook's body may take to arrive (then 408): a sender that "
                    "stalls mid-body would otherwise hold its request until it hangs up")
    accounts_file: Path | None = None
    public_url: str | None = Field(
        default=None, description="how providers reach ingest, for notify/webhook URLs we send"
    )

    # Bots
    rules_file: Path | None = Field(default=None, description="keyword/auto-reply rules (TOML)")
    bot_timeout_s: float = Field(
        default=60.0, gt=0, description="longest a bot may take over one message (then retried); "
                                         "waiting for Kafka acks does not count")
    simulator_port: Port = Field(default=8090, description="port of `switchboard simulate`")
    simulator_webhook_queue: int = Field(
        default=10_000, ge=1, le=10_000_000,
        description="messages whose webhooks the simulator holds for ingest (`simulate` and "
                    "`run`); past it a send's webhooks are dropped and counted")
    metrics_port: Port | None = Field(
        default=None, description="workers serve Prometheus /metrics and their /healthz and "
                                  "/readyz probes here (unset: none of them); `serve` its "
                                  "/metrics, instead of on its webhook port (its probes stay "
                                  "there)")

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    # `debug` and `DEBUG`, `JSON` and `json`: people type either.
    @field_validator("log_level", "kafka_security_protocol", "kafka_sasl_mechanism",
                     mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    # WARN is the level's name in Java's and Go's loggers, and logging's own alias for it: a
    # deployment's shared LOG_LEVEL=warn stopped every command at start.
    @field_validator("log_level", mode="before")
    @classmethod
    def _warn_is_warning(cls, value: object) -> object:
        return "WARNING" if isinstance(value, str) and value.upper() == "WARN" else value

    @field_validator("public_url")
    @classmethod
    def _public_http_url(cls, value: str | None) -> str | None:
        """Given to providers with every message as where to report: checked now, not
        found out from reports that never come."""
        if value is not None:
            http_url(value, "https://hooks.example.com")
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str | None) -> str | None:
        """Refused now, not when a client starts (switchboard.bootstrap_servers)."""
        if value:
            check_bootstrap_servers(value)
        return value

    @field_validator("kafka_name_prefix")
    @classmethod
    def _not_internal(cls, value: str) -> str:
        if value.startswith("__"):  # Kafka's own topics start so; tools hide them
            raise ValueError("must not start with '__'")
        return value

    @field_validator("log_format", "kafka_compression", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Self:
        """A combination that would not work is refused now (kafka_settings.check_security)."""
        kafka_settings.check_security(self)
        return self

    def kafka_connection(self) -> KafkaConnection:
        """How every client reaches the cluster (ValueError without KAFKA_BOOTSTRAP_SERVERS)."""
        return kafka_settings.connection(self)

    def secret_values(self) -> list[str]:
        """What must never appear in a log line."""
        return [secret.get_secret_value() for secret in
                (self.kafka_sasl_password, self.kafka_ssl_key_password,
                 self.kafka_oauth_client_secret) if secret is not None]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, EnvSource(settings_cls)]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            path = Path(config_file)
            if not path.is_file():
                raise FileNotFoundError(f"{CONFIG_FILE_ENV}={config_file}: no such file")
            try:
                sources.append(ConfigFileSource(settings_cls, toml_file=path))
            except (OSError, UnicodeDecodeError) as exc:  # no permission; saved as Latin-1
                raise SettingsError(f"{CONFIG_FILE_ENV}={config_file}: cannot read it: "
                                    f"{unreadable(exc)}") from None
        return tuple(sources)

    @property
    def ingest_url(self) -> str:
        """Where providers reach ingest: the public URL, else our own host and port."""
        return self.public_url or origin(self.http_host, self.http_port)

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


def unknown_env_vars(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Variables named like settings (SWITCHBOARD_..., in any case) that no setting reads, each
    with the variable of the setting it most resembles, if any. pydantic-settings ignores
    them: a misspelt one (SWITCHBOARD_KAFKA_BOOTSTRAP) would leave the default in force
    without a word. Names only: a value may be a secret."""
    known = env_var_names()
    unknown = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX).lower(),
                                          Settings.model_fields, n=1)
        unknown.append((name, env_var_of(close[0]) if close else None))
    return unknown


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
        if not error["loc"]:  # a rule over several settings: its input is all of them
            problems.append(_with_variables(error["msg"].removeprefix("Value error, ")))
            continue
        field = str(error["loc"][0])
        if error["type"] == "extra_forbidden":  # only the config file can name one
            # Its value is not shown: a misspelt secret's name need not look like a secret's.
            close = difflib.get_close_matches(field, Settings.model_fields, n=1)
            problems.append(f"{field}: no such setting in {CONFIG_FILE_ENV}"
                            + (f" (did you mean {close[0]}?)" if close else ""))
            continue
        name = f"{field} ({env_var_of(field)})" if field in Settings.model_fields else field
        # Masked as a log line would be: a URL may carry a password (user:password@host).
        given = "***" if secret_key(field) else scrub(repr(error.get("input")))
        if field in (BOOTSTRAP_ENV, "kafka_bootstrap_servers"):  # a login scrub misses: no scheme
            given = masked_logins(given)
        given = given[:60]  # after masking: cut, a password would no longer end at its '@'
        problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')} (got {given})")
    return "invalid settings: " + "; ".join(problems)


def _with_variables(message: str) -> str:
    """A rule's message, which names settings as the config file does, with their environment
    variables after it, as a single bad setting is named with its own."""
    named = [word for word in dict.fromkeys(re.findall(r"\b[a-z][a-z0-9_]*\b", message))
             if word in Settings.model_fields]
    if not named:
        return message
    return f"{message} (in the environment: {', '.join(env_var_of(f) for f in named)})"


def _not_json(exc: SourceError) -> str:
    """pydantic-settings says only 'error parsing value for field "x" from source
    "EnvSettingsSource"': name the variable, and what it wants (the value is not shown)."""
    found = re.search(r'field "(\w+)"', str(exc))
    if found is None or found[1] not in Settings.model_fields:
        return f"invalid settings: {exc}"
    field = found[1]
    return (f"invalid settings: {field} ({env_var_of(field)}): not valid JSON (the environment "
            'gives it as JSON, e.g. {"name": "value"})')


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (SettingsError if they cannot be read)."""
    try:
        settings = Settings()
        register_secrets(settings.secret_values())
        return settings
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except FileNotFoundError as exc:
        raise SettingsError(str(exc)) from None
    except SourceError as exc:  # a JSON setting that is not JSON
        raise SettingsError(_not_json(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_FILE_ENV}={os.environ.get(CONFIG_FILE_ENV)}: not valid "
                            f"TOML: {exc}") from None
