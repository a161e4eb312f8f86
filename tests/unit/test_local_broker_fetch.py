"""Fetching the broker jars on a first run: Maven Central now and then answers 503 or stalls,
which must neither fail the run at once nor hold it for Maven's own 30-minute timeout."""

from __future__ import annotations

import fcntl
import logging
import os
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from switchboard.localkafka import KAFKA_VERSION, BrokerError, ensure_jars, jar_home, jars

# A stand-in for mvn: fails its first $FAILS runs as Central's 503 would, then writes the
# broker jar where copy-dependencies would. $RUNS counts its runs.
FAKE_MVN = """#!/bin/sh
runs=$(($(cat "$RUNS" 2>/dev/null || echo 0) + 1)); echo $runs > "$RUNS"
[ -n "$HANG" ] && exec sleep 30
for arg in "$@"; do case $arg in -DoutputDirectory=*) out=${arg#-DoutputDirectory=};; esac; done
if [ $runs -le "$FAILS" ]; then echo "Could not transfer artifact: status 503"; exit 1; fi
mkdir -p "$out" && touch "$out/kafka_2.13-$VERSION.jar"
"""


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake mvn first on PATH; its run counter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(FAKE_MVN)
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("VERSION", KAFKA_VERSION)
    monkeypatch.setenv("FAILS", "0")
    monkeypatch.delenv("HANG", raising=False)
    monkeypatch.setattr(jars, "_FETCH_RETRY_DELAY_S", 0.0)
    return tmp_path / "runs"


def _runs(counter: Path) -> int:
    return int(counter.read_text())


def test_a_failed_fetch_is_tried_again(tmp_path: Path, runs: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILS", "1")
    lib = ensure_jars(tmp_path / "cache")
    assert (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()
    assert (lib / ".complete").exists()
    assert _runs(runs) == 2
    assert not list(lib.parent.glob("lib.tmp-*"))


def test_a_fetch_that_keeps_failing_says_why_and_leaves_nothing(
        tmp_path: Path, runs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAILS", "99")
    with pytest.raises(BrokerError, match=r"(?s)3 tries.*status 503"):
        ensure_jars(tmp_path / "cache")
    assert _runs(runs) == 3
    home = jar_home(tmp_path / "cache", jars._pom())
    assert not (home / "lib").exists()
    assert not list(home.glob("lib.tmp-*"))


def test_a_stalled_fetch_ends_as_a_broker_error(tmp_path: Path, runs: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANG", "1")
    monkeypatch.setattr(jars, "_FETCH_TIMEOUT_S", 0.5)
    monkeypatch.setattr(jars, "_FETCH_ATTEMPTS", 1)
    with pytest.raises(BrokerError, match="did not finish within"):
        ensure_jars(tmp_path / "cache")


def test_another_pom_gets_its_own_jars(tmp_path: Path, runs: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_jars(tmp_path / "cache")
    assert ensure_jars(tmp_path / "cache") == first  # cached: no second run
    assert _runs(runs) == 1
    monkeypatch.setattr(jars, "_pom", lambda: b"<project><!-- another jar --></project>")
    second = ensure_jars(tmp_path / "cache")
    assert second != first
    assert _runs(runs) == 2
    assert (first / ".complete").exists()  # left to whoever runs a broker from it


def test_the_pom_fetches_the_kafka_version_the_code_expects() -> None:
    name = "{http://maven.apache.org/POM/4.0.0}"
    root = ET.fromstring(jars._pom())  # noqa: S314 - our own file
    assert root.findtext(f"{name}properties/{name}kafka.version") == KAFKA_VERSION


def test_waiting_for_another_process_fetching_is_said(
        tmp_path: Path, runs: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A first `make run` beside a first `make test` waited for the other's fetch, a minute
    # or more, without a line. The other process is this test holding the fetch lock (a
    # second open file's flock conflicts within one process as across two).
    home = jar_home(tmp_path / "cache", jars._pom())
    home.mkdir(parents=True)
    caplog.set_level(logging.INFO)
    with open(home / ".lock", "w") as held, ThreadPoolExecutor(1) as pool:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = pool.submit(ensure_jars, tmp_path / "cache")
        for _ in range(200):  # bounded: up to ~10 s for the line
            if "waiting for another process fetching" in caplog.text or waiting.done():
                break
            time.sleep(0.05)
        said = "waiting for another process fetching the kafka jars" in caplog.text
        # What the other process fetched, then its lock let go: nothing is fetched again.
        (home / "lib").mkdir()
        (home / "lib" / ".complete").touch()
        fcntl.flock(held, fcntl.LOCK_UN)
        lib = waiting.result(timeout=30)
    assert said, caplog.text
    assert lib == home / "lib"
    assert not runs.exists()  # mvn never ran
