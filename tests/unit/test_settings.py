from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.settings import Settings, env_var_names


def test_environment_overrides_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text('http_port = 9000\nlog_level = "DEBUG"\n')
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    monkeypatch.setenv("SWITCHBOARD_HTTP_PORT", "9100")
    settings = Settings()
    assert settings.http_port == 9100
    assert settings.log_level == "DEBUG"


def test_bootstrap_servers_use_the_standard_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "10.0.0.1:9092")
    settings = Settings()
    assert settings.kafka_bootstrap_servers == "10.0.0.1:9092"
    assert not settings.uses_local_kafka
    assert "KAFKA_BOOTSTRAP_SERVERS" in env_var_names()


def test_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CONFIG", "/nonexistent/switchboard.toml")
    with pytest.raises(FileNotFoundError, match="SWITCHBOARD_CONFIG"):
        Settings()
