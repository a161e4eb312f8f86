"""`switchboard serve` refusals that need no broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.cli import main
from switchboard.cli.startup import port_taken
from switchboard.localkafka import free_port
from switchboard.serving import MULTIPROCESS_DIR_ENV

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def test_a_metrics_directory_that_does_not_exist_is_one_error_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Several processes share their metrics through it; a missing one was a traceback."""
    missing = tmp_path / "nowhere"
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(missing))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    assert main(["serve", "--workers", "2"]) == 2
    error = capsys.readouterr().err
    assert f"{MULTIPROCESS_DIR_ENV}={missing}: no such directory" in error
    assert "Traceback" not in error and not missing.exists()


@pytest.mark.parametrize(("args", "setting"), [
    (["serve"], "SWITCHBOARD_HTTP_PORT"),
    (["serve", "--workers", "2"], "SWITCHBOARD_HTTP_PORT"),  # bound by uvicorn's supervisor
    (["serve", "--port", "{port}"], "--port"),
    (["simulate"], "SWITCHBOARD_SIMULATOR_PORT"),
    (["simulate", "--port", "{port}"], "--port"),
])
def test_a_port_in_use_is_one_error_line_naming_the_setting(args: list[str],
                                                            setting: str) -> None:
    """As `run` says it: uvicorn's own bind message and exit 3 named no setting."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    with socket.create_server(("127.0.0.1", 0)) as listener:  # another program's server
        port = str(listener.getsockname()[1])
        env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                       "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                       "SWITCHBOARD_HTTP_PORT": port, "SWITCHBOARD_SIMULATOR_PORT": port}
        result = subprocess.run(
            [sys.executable, "-m", "switchboard.cli", *(a.format(port=port) for a in args)],
            env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("error: "), result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert setting in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_free_port_is_left_free_for_uvicorn_to_bind() -> None:
    """`serve --workers` binds in uvicorn's supervisor after the check: nothing may hold it."""
    port = free_port()
    assert port_taken("127.0.0.1", [("ingest", "SWITCHBOARD_HTTP_PORT", port)]) is None
    with socket.create_server(("127.0.0.1", port)):
        pass
