"""`switchboard serve` refusals that need no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.cli import main
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
