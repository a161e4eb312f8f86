"""The collector settings the services apply once started (in a child process: they are
process-wide, and the test process must keep its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from switchboard.heap import YOUNG_GENERATION_THRESHOLD

REPORT = "import gc; print(gc.get_freeze_count(), gc.get_threshold()[0])"


def _run(code: str, **env: str) -> tuple[int, int]:
    result = subprocess.run([sys.executable, "-c", f"{code}\n{REPORT}"], capture_output=True,
                            text=True, check=True, timeout=60, env={**os.environ, **env})
    frozen, young = result.stdout.split()
    return int(frozen), int(young)


def test_settle_freezes_startup_objects_and_makes_young_collections_rarer() -> None:
    frozen, young = _run("from switchboard import heap; heap.settle()")
    assert frozen > 1000  # the interpreter and our modules, at least
    assert young == YOUNG_GENERATION_THRESHOLD


def test_defaults_are_untouched_until_settle_is_called() -> None:
    frozen, young = _run("import switchboard.heap")
    assert (frozen, young) == (0, 700)


def test_the_ingest_factory_settles_the_heap(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[accounts.a]\nprovider = "infobip"\nauth = { scheme = "basic", '
                        'username = "u", secrets = ["a-long-secret"] }\n')
    frozen, young = _run("from ingest.app import app_from_environment; app_from_environment()",
                         SWITCHBOARD_ACCOUNTS_FILE=str(accounts),
                         KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert frozen > 1000
    assert young == YOUNG_GENERATION_THRESHOLD


def test_the_benchmark_ceiling_settles_the_heap_as_ingest_does() -> None:
    """Else the full/ceiling ratio credits ingest with the collector settings."""
    assert _run("import bench.ceiling")[1] == YOUNG_GENERATION_THRESHOLD
