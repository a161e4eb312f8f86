"""The broker's jars: fetched once from Maven Central with pom.xml, kept in a cache outside the
repository."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path
from typing import IO

from switchboard.localkafka.errors import OWN_CLUSTER, BrokerError
from switchboard.logs import get_logger

KAFKA_VERSION = "3.9.1"
log = get_logger(__name__)


def _pom() -> bytes:
    return resources.files("switchboard.localkafka").joinpath("pom.xml").read_bytes()


def jar_home(cache_dir: Path, pom: bytes) -> Path:
    """Where the jars of this pom.xml are kept. Named by its content, not only the Kafka
    version: a pom that changes other jars (logging, a fix) must not find the old ones, and
    a checkout with another pom must not replace the jars a running broker still loads."""
    digest = hashlib.sha256(pom).hexdigest()[:8]
    return cache_dir / f"kafka-{KAFKA_VERSION}-{digest}"


def ensure_jars(cache_dir: Path) -> Path:
    """The directory of broker jars, fetched with Maven on first use (safe across processes)."""
    pom_bytes = _pom()
    home = jar_home(cache_dir, pom_bytes)
    lib = home / "lib"
    if (lib / ".complete").exists():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        _lock_saying_who_fetches(lock, lib)
        if (lib / ".complete").exists():
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is needed once to fetch the Kafka jars; install it, "
                              f"{OWN_CLUSTER}")
        pom = home / "pom.xml"
        pom.write_bytes(pom_bytes)
        staging = home / f"lib.tmp-{os.getpid()}"
        log.info("fetching kafka jars from maven central", version=KAFKA_VERSION, into=str(lib))
        try:
            _fetch_jars(mvn, pom, staging)
            shutil.rmtree(lib, ignore_errors=True)
            staging.rename(lib)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (lib / ".complete").touch()
    return lib


def _lock_saying_who_fetches(lock: IO[str], lib: Path) -> None:
    """Take the fetch lock, saying so first when another process holds it: a first `make
    run` beside a first `make test` waited for the test session's fetch, a minute or more,
    without a line, where the one fetching says `fetching kafka jars from maven central`."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("waiting for another process fetching the kafka jars",
                 version=KAFKA_VERSION, into=str(lib))
        fcntl.flock(lock, fcntl.LOCK_EX)


# Maven 3.8 waits 30 minutes on a stalled download and retries no server error, so one bad
# moment of Maven Central fails a first run or holds CI. Here a stall ends after 30 s and a
# failed fetch is run again; what it got already stays in ~/.m2, and failures are not cached.
_FETCH_ATTEMPTS = 3
_FETCH_TIMEOUT_S = 600.0
_FETCH_RETRY_DELAY_S = 5.0
_MAVEN_READ_TIMEOUT_MS = 30_000


def _fetch_jars(mvn: str, pom: Path, staging: Path) -> None:
    failure = ""
    for attempt in range(1, _FETCH_ATTEMPTS + 1):
        if attempt > 1:
            log.warning("fetching kafka jars failed; trying again", attempt=attempt,
                        output=failure[-500:])
            time.sleep(_FETCH_RETRY_DELAY_S * (attempt - 1))
        shutil.rmtree(staging, ignore_errors=True)
        failure = _run_maven(mvn, pom, staging)
        if not failure:
            return
    raise BrokerError(f"mvn could not fetch the Kafka jars ({_FETCH_ATTEMPTS} tries; check "
                      "the network or Maven's proxy settings, ~/.m2/settings.xml, or use a "
                      "running Kafka: KAFKA_BOOTSTRAP_SERVERS):\n" + failure[-3000:])


def _run_maven(mvn: str, pom: Path, staging: Path) -> str:
    """One Maven run into `staging`: what went wrong, or "" once the broker jar is there."""
    command = [
        # -B alone still colours Maven 3.9's errors: escape codes in our error line and logs.
        mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom),
        # The plugin by its full name: a bare `dependency:` prefix is first looked up in
        # Central's plugin-group metadata, and a failure there reads "No plugin found".
        "org.apache.maven.plugins:maven-dependency-plugin:copy-dependencies",
        f"-Dmaven.wagon.rto={_MAVEN_READ_TIMEOUT_MS}",  # Maven 3.8 (wagon)
        f"-Daether.connector.requestTimeout={_MAVEN_READ_TIMEOUT_MS}",  # Maven 3.9+
        "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=_FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"mvn did not finish within {_FETCH_TIMEOUT_S:.0f}s"
    if result.returncode != 0 or not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return (result.stdout + result.stderr) or f"mvn exited with {result.returncode}"
    return ""
