"""One local broker per data directory: a second `run` or `kafka` from the same checkout is
refused before it touches the first one's files (Kafka's own lock fails only after the
config is rewritten and broker.log truncated)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from switchboard.localkafka import BrokerError, LocalKafka


def test_a_second_broker_on_the_same_data_dir_is_refused_and_the_first_untouched(
        tmp_path: Path) -> None:
    first = LocalKafka(tmp_path / "kafka", cache_dir=tmp_path / "cache")
    first._lock_data_dir()  # as start() does first
    first.log_path.write_text("the first broker's log\n")
    second = LocalKafka(tmp_path / "kafka", cache_dir=tmp_path / "cache", port=19092,
                        controller_port=19093)
    with pytest.raises(BrokerError, match=f"in use by another local broker \\(started by pid "
                                          f"{os.getpid()}\\).*SWITCHBOARD_DATA_DIR"):
        second.start()
    assert first.log_path.read_text() == "the first broker's log\n"
    assert not (tmp_path / "cache").exists()  # refused before fetching anything

    first.stop()  # lets the directory go
    second._lock_data_dir()
    second.stop()
