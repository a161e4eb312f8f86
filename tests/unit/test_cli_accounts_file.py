"""An accounts file that names no account, as each command that reads one says it: one error
line, exit 2, before Kafka is asked or a port is taken (nothing listens at 127.0.0.1:1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.cli import main
from switchboard.localkafka import free_port

COMMANDS = [["serve"], ["worker", "sender"], ["worker", "keywords"], ["simulate"],
            ["send", "x", "+41790001111", "--text", "hi"]]  # and `run`, below


NO_ACCOUNTS = "no accounts: each is a table [accounts.<name>] (see examples/accounts.toml)"
# A typo in the table's name: TOML reads it as another table, and its account as missing.
# Alone, `serve` started with 0 accounts; beside real ones, it started without that one. Both
# answered its webhooks 404.
TYPO = "unknown top-level key 'account': the file holds only [accounts.<name>] tables"
REAL = '[accounts.ok]\nprovider = "infobip"\nauth = { scheme = "basic", username = "u", ' \
       'secrets = ["a-long-enough-secret"] }\n'


@pytest.mark.parametrize(("content", "said"), [
    ('[account.x]\nprovider = "infobip"\n', TYPO),
    (REAL + '[account.x]\nprovider = "infobip"\n', TYPO),
    ('[Accounts.x]\nprovider = "infobip"\n', TYPO.replace("'account'", "'Accounts'")),
    ("", NO_ACCOUNTS),
])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_an_accounts_file_without_accounts_is_refused(
        content: str, said: str, command: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(content)
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(accounts))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_HTTP_PORT", str(free_port()))
    monkeypatch.setenv("SWITCHBOARD_SIMULATOR_PORT", str(free_port()))
    assert main(command) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {accounts}: {said}\n"
    assert captured.out == ""


def test_run_with_an_accounts_file_without_accounts_is_refused(tmp_path: Path) -> None:
    """In a process of its own: `run` takes over the signals and asks what stdout is."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[account.x]\nprovider = "infobip"\n')
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env = clean | {"SWITCHBOARD_ACCOUNTS_FILE": str(accounts),
                   "SWITCHBOARD_DATA_DIR": str(tmp_path / "data")}  # no broker is started
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "run"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr == f"error: {accounts}: {TYPO}\n"
    assert result.stdout == ""
    assert not (tmp_path / "data").exists()
