"""Without java or mvn the local broker cannot start: the error says what to install, and
that a cluster of one's own needs neither (a new user may have one, and not know the
variable that names it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.localkafka import BrokerError, LocalKafka, ensure_jars, free_port, jar_home
from switchboard.localkafka.jars import _pom


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH on which neither java nor mvn is found."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.usefixtures("bare_path")
def test_without_maven_the_error_offers_a_cluster_of_ones_own(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"Maven \(mvn\) is needed .*install it, or set "
                                          "KAFKA_BOOTSTRAP_SERVERS to use your own cluster"):
        ensure_jars(tmp_path / "cache")


@pytest.mark.usefixtures("bare_path")
def test_without_java_the_error_offers_a_cluster_of_ones_own(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    lib = jar_home(cache, _pom()) / "lib"
    lib.mkdir(parents=True)
    (lib / ".complete").touch()  # fetched already: java is what is missing
    broker = LocalKafka(tmp_path / "data", cache_dir=cache, port=free_port(),
                        controller_port=free_port())
    with pytest.raises(BrokerError, match=r"java \(17\+\) is needed .*install it, or set "
                                          "KAFKA_BOOTSTRAP_SERVERS to use your own cluster"):
        broker.launch()
