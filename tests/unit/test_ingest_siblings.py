"""`serve --workers N`: whichever process answers /readyz speaks for all of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.siblings import CONNECTED_PREFIX, SiblingProcesses, write_process_count
from switchboard.serving import MULTIPROCESS_DIR_ENV


def test_ready_only_once_every_live_process_is_connected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROCESS_DIR_ENV, str(tmp_path))
    assert SiblingProcesses.from_environment() is None  # a single process: nothing shared
    write_process_count(tmp_path, 2)
    siblings = SiblingProcesses.from_environment()
    assert siblings is not None
    assert siblings.problem() == "0 of 2 ingest processes connected to Kafka"
    siblings.connected()
    assert siblings.problem() == "1 of 2 ingest processes connected to Kafka"

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f"{CONNECTED_PREFIX}{gone}").touch()  # a process that died: not counted
    assert siblings.problem() == "1 of 2 ingest processes connected to Kafka"

    (tmp_path / f"{CONNECTED_PREFIX}{os.getppid()}").touch()  # a live sibling
    assert siblings.problem() is None
    siblings.disconnected()  # stopping
    assert siblings.problem() == "1 of 2 ingest processes connected to Kafka"


def test_a_reused_directory_starts_with_no_process_connected(tmp_path: Path) -> None:
    (tmp_path / f"{CONNECTED_PREFIX}1").touch()
    write_process_count(tmp_path, 3)
    assert not list(tmp_path.glob(f"{CONNECTED_PREFIX}*"))
    assert (tmp_path / "ingest-processes").read_text() == "3"
