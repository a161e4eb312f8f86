"""A relative accounts or rules path that is not there says where it was looked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.cli import main
from switchboard.settings import get_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The working directory of a systemd unit or a shell elsewhere, a cluster named."""
    for name in ("SWITCHBOARD_CONFIG", "SWITCHBOARD_ACCOUNTS_FILE", "SWITCHBOARD_RULES_FILE",
                 "SWITCHBOARD_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize("argv", [["serve"], ["worker", "sender"], ["simulate"],
                                  ["send", "demo-infobip", "+41790001111", "--text", "hi"]])
def test_a_relative_accounts_file_not_found_names_the_working_directory(
        argv: list[str], elsewhere: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`accounts_file = "accounts.toml"` in a SWITCHBOARD_CONFIG file beside it is read from
    the working directory: the error said only `accounts file accounts.toml does not exist`,
    next to the file the user was looking at."""
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", "accounts.toml")
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: accounts file accounts.toml does not exist (a relative path is read from the "
        f"working directory, {elsewhere})")


def test_a_relative_rules_file_not_found_names_the_working_directory(
        elsewhere: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLES / "accounts.toml"))
    monkeypatch.setenv("SWITCHBOARD_RULES_FILE", "rules.toml")
    assert main(["worker", "keywords"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: rules file rules.toml does not exist (a relative path is read from the "
        f"working directory, {elsewhere})")


def test_an_absolute_path_not_found_is_said_as_before(
        elsewhere: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(elsewhere / "accounts.toml"))
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: accounts file {elsewhere / 'accounts.toml'} does not exist")
