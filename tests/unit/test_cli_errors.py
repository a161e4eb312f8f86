"""What a command says when it stops on an error nobody foresaw."""

from __future__ import annotations

import argparse

import orjson
import pytest

from switchboard.cli import main
from switchboard.logs import register_secrets
from switchboard.settings import Settings, get_settings


def test_an_unexpected_error_is_one_masked_log_line_and_exit_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A worker stopped by a failure raised it out of main: Python's traceback, lines of plain
    # text in a JSON log, unmasked.
    register_secrets(["unexpected-s3cr3t"])

    def failing(args: argparse.Namespace, settings: Settings) -> int:
        raise RuntimeError("opt-out change not stored: unexpected-s3cr3t")

    monkeypatch.setattr("switchboard.cli.schema.cmd_schema", failing)
    monkeypatch.setenv("SWITCHBOARD_LOG_FORMAT", "json")
    get_settings.cache_clear()
    try:
        assert main(["schema"]) == 1
    finally:
        get_settings.cache_clear()
    [line] = capsys.readouterr().err.splitlines()
    logged = orjson.loads(line)
    assert (logged["event"], logged["level"], logged["command"]) == (
        "stopped by an unexpected error", "critical", "schema")
    assert logged["exception"].endswith("RuntimeError: opt-out change not stored: ***")
