"""An environment variable set to nothing, as env files and compose `environment:` entries
leave one (`SWITCHBOARD_METRICS_PORT=`): unset, except for the text settings whose empty value
means something (switchboard.settings_sources.EMPTY_IS_A_VALUE)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from switchboard.settings import Settings, env_var_of
from switchboard.settings_sources import EMPTY_IS_A_VALUE
from tests.unit.fakes import run_cli

TEXT_SETTINGS = sorted(EMPTY_IS_A_VALUE)
OTHER_SETTINGS = sorted(set(Settings.model_fields) - EMPTY_IS_A_VALUE)


@pytest.fixture(autouse=True)
def _no_settings_of_this_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("SWITCHBOARD_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


@pytest.mark.parametrize("field", OTHER_SETTINGS)
def test_an_empty_variable_leaves_the_default(field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    default = getattr(Settings(), field)
    monkeypatch.setenv(env_var_of(field), "")
    assert getattr(Settings(), field) == default


def test_an_empty_variable_lets_the_config_files_value_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text('metrics_port = 9100\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    monkeypatch.setenv("SWITCHBOARD_METRICS_PORT", "")
    monkeypatch.setenv("SWITCHBOARD_LOG_LEVEL", "")
    settings = Settings()
    assert (settings.metrics_port, settings.log_level) == (9100, "DEBUG")


@pytest.mark.parametrize("field", TEXT_SETTINGS)
def test_a_text_setting_given_empty_stays_empty(
        field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env_var_of(field), "")
    value = getattr(Settings(), field)
    assert (value.get_secret_value() if isinstance(value, SecretStr) else value) == ""


def test_an_empty_prefix_or_cluster_still_overrides_the_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text('kafka_name_prefix = "staging."\n'
                      'kafka_bootstrap_servers = "kafka.example.com:9092"\n')
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    monkeypatch.setenv("SWITCHBOARD_KAFKA_NAME_PREFIX", "")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    settings = Settings()
    assert settings.kafka_name_prefix == ""
    assert settings.uses_local_kafka


def test_every_command_runs_with_empty_variables() -> None:
    empty = {env_var_of(field): "" for field in OTHER_SETTINGS}
    result = run_cli(empty, "schema")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("value", [" ", "abc", "0"])
def test_a_port_that_is_not_empty_but_wrong_is_still_refused(value: str) -> None:
    result = run_cli({"SWITCHBOARD_METRICS_PORT": value}, "schema")
    assert result.returncode == 2
    assert "error: invalid settings: metrics_port (SWITCHBOARD_METRICS_PORT): " in result.stderr
    assert f"(got {value!r})" in result.stderr
