"""`switchboard --version`: what is installed, for a bug report or before an upgrade. It was
refused ("the following arguments are required: COMMAND", exit 2)."""

from __future__ import annotations

from importlib import metadata

import pytest

import switchboard
from switchboard.cli import build_parser


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"switchboard {metadata.version('switchboard')}"


def test_the_package_says_the_version_pyproject_gives() -> None:
    # Two places hold it; a checkout never installed reports the package's own.
    assert switchboard.__version__ == metadata.version("switchboard")
