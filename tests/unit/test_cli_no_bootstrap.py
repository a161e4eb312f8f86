"""A command needing a cluster, without KAFKA_BOOTSTRAP_SERVERS, says where to get one."""

from __future__ import annotations

import pytest

from switchboard.cli import main
from switchboard.settings import get_settings


@pytest.mark.parametrize("argv", [
    ["worker", "sender"], ["worker", "keywords"], ["tail"], ["replay", "--dry-run"],
    ["send", "demo-infobip", "+41790001111", "--text", "hi"]])
def test_a_missing_bootstrap_server_names_the_commands_that_print_one(
        argv: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`worker` said only `set KAFKA_BOOTSTRAP_SERVERS`, the others that `run` prints it:
    `switchboard kafka`, which starts the broker the workers need alone, prints it too."""
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SWITCHBOARD_CONFIG", raising=False)
    get_settings.cache_clear()
    try:
        assert main(argv) == 2
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err.strip() == (
        "error: set KAFKA_BOOTSTRAP_SERVERS (`switchboard run` or `switchboard kafka` prints it)")
