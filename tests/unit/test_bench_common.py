"""The environment the benchmarks give their `switchboard` children."""

from __future__ import annotations

import pytest

from bench.common import child_env


def test_children_listen_on_loopback_and_serve_no_metrics_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HTTP_HOST", "0.0.0.0")  # as in a container
    monkeypatch.setenv("SWITCHBOARD_METRICS_PORT", "9100")
    monkeypatch.setenv("SWITCHBOARD_KAFKA_COMPRESSION", "lz4")
    env = child_env({"SWITCHBOARD_LOG_LEVEL": "WARNING"})
    assert env["SWITCHBOARD_HTTP_HOST"] == "127.0.0.1"
    assert "SWITCHBOARD_METRICS_PORT" not in env
    assert env["SWITCHBOARD_KAFKA_COMPRESSION"] == "lz4"  # other settings still apply
    assert env["SWITCHBOARD_LOG_LEVEL"] == "WARNING"
